"""Safety copies (issue 12 item 10): never backed up, kept under a retention rule (the newest few of each item,
none past an age) applied after each restore and by cleanup, listed and removed on request, and safe against what
the app user plants in the app root (attacker steps as ``nobody``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import safety as _safety
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.unit.plugins.module_utils.builders import REPO, damage

T0 = datetime(2026, 5, 28, 14, 0, tzinfo=timezone.utc)
ATTACKER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def backup(app, tmp_path):
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups")))


def members(archive: str) -> list:
    return subprocess.run(["tar", "--zstd", "-tf", archive], check=True, capture_output=True, text=True).stdout.split()


def restore_at(app, backup, hours: float, scope="database", **options) -> dict:
    damage(app)
    return restore(RestoreRequest(dest=str(app), archive=backup["archive"], scope=scope,
                                  now=T0 + timedelta(hours=hours), **options))


def test_safety_copies_are_left_out_of_every_backup_type(app, backup, tmp_path):
    restore_at(app, backup, 0, scope="full")
    restore_at(app, backup, 1)
    restore_at(app, backup, 2, scope="config")
    assert (tmp_path / "app.pre-restore-20260528T140000Z").is_dir()
    assert (app / "data.pre-restore-20260528T150000Z").is_dir()
    assert (app / "config.pre-restore-20260528T160000Z").is_dir()
    (app / "config" / "production.env.pre-restore-20260528T150000Z").write_text("old\n")
    for kind in ("full", "config", "database"):
        archive = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), type=kind))["archive"]
        assert not [path for path in members(archive) if "pre-restore-" in path], kind
    full = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), include=["."], exclude=[]))["archive"]
    assert not [path for path in members(full) if "pre-restore-" in path]
    assert "data/reddit_sentiment.db" in members(full)


def test_each_restore_keeps_the_newest_three_of_an_item_and_none_older_than_seven_days(app, backup):
    for hour in range(5):
        result = restore_at(app, backup, hour)
        assert result["safety_copies"] == [str(app / ("data.pre-restore-%s" % (T0 + timedelta(hours=hour))
                                                      .strftime("%Y%m%dT%H%M%SZ")))]
    left = sorted(name for name in os.listdir(str(app)) if "pre-restore-" in name)
    assert left == ["data.pre-restore-20260528T%02d0000Z" % hour for hour in (16, 17, 18)]
    assert result["safety_copies_removed"] == [str(app / "data.pre-restore-20260528T150000Z")]
    later = restore_at(app, backup, 24 * 8)  # a week and a day on: only the new copy is within the age
    assert sorted(name for name in os.listdir(str(app)) if "pre-restore-" in name) == \
        ["data.pre-restore-20260605T140000Z"]
    assert len(later["safety_copies_removed"]) == 3


def test_cleanup_lists_applies_the_rule_and_removes_on_request(app, backup):
    restore_at(app, backup, 0, safety_copies_max_age=None)
    restore_at(app, backup, 1, scope="config", safety_copies_max_age=None)
    listed = _safety.prune_safety_copies(str(app), now=T0 + timedelta(hours=2), check_mode=True)
    assert [(copy["item"], copy["kind"]) for copy in listed["safety_copies"]] == \
        [("data", "dir"), ("config", "dir"), ("systemd", "dir")]
    assert listed["removed"] == [] and os.path.isdir(str(app / "data.pre-restore-20260528T140000Z"))
    named = _safety.prune_safety_copies(str(app), remove=[str(app / "data.pre-restore-20260528T140000Z")],
                                        now=T0 + timedelta(hours=2))
    assert [copy["reason"] for copy in named["removed"]] == ["named in remove"]
    assert not (app / "data.pre-restore-20260528T140000Z").exists()
    assert (app / "data" / "reddit_sentiment.db").exists()
    aged = _safety.prune_safety_copies(str(app), now=T0 + timedelta(days=8))
    assert [copy["item"] for copy in aged["removed"]] == ["config", "systemd"]
    assert "older than 7d" in aged["removed"][0]["reason"]
    with pytest.raises(BackupError, match=r"config is not a safety copy of .*nothing was removed"):
        _safety.prune_safety_copies(str(app), remove=[str(app / "config")])
    assert (app / "config" / "production.env").exists()
    with pytest.raises(BackupError, match="whole number"):
        _safety.prune_safety_copies(str(app), keep="three")
    with pytest.raises(BackupError, match="cannot read the duration"):
        _safety.prune_safety_copies(str(app), max_age="a week")


@pytest.fixture
def hostile_app():
    """An app root the app user (nobody) owns, beside a victim folder it must never reach."""
    home = tempfile.mkdtemp(prefix="safety-", dir="/tmp")
    os.chmod(home, 0o755)
    app, victim = os.path.join(home, "app"), os.path.join(home, "victim")
    os.makedirs(os.path.join(app, "config"))
    os.makedirs(os.path.join(victim, "data.pre-restore-20200101T000000Z"))
    with open(os.path.join(victim, "precious"), "w") as handle:
        handle.write("precious\n")
    subprocess.run(["chown", "-R", "nobody:nogroup", app], check=True)
    yield home, app, victim
    shutil.rmtree(home, ignore_errors=True)


def test_planted_links_and_fake_folders_lead_nowhere_outside(hostile_app):
    home, app, victim = hostile_app
    plant = [
        "ln -s %s %s/data.pre-restore-20200101T000000Z" % (victim, app),          # a safety copy that is a link
        "ln -s %s %s/app.pre-restore-20200101T000000Z" % (victim, home),          # beside the app root: refused by
        "mkdir -p %s/logs/x.pre-restore-20200101T000000Z/y" % app,                # ... home's owner (root) below
        "ln -s %s %s/linked" % (victim, app),                                      # a folder link hiding copies
        "ln -s %s/precious %s/config/app.env.pre-restore-20200101T000000Z" % (victim, app),
    ]
    subprocess.run(["ln", "-s", victim, os.path.join(home, "app.pre-restore-20200101T000000Z")], check=True)
    for step in plant[:1] + plant[2:]:
        subprocess.run(ATTACKER + ["sh", "-c", step], check=True)
    found = _safety.list_safety_copies(app, now=T0)
    assert sorted(os.path.relpath(copy["path"], home) for copy in found) == [
        "app.pre-restore-20200101T000000Z", "app/config/app.env.pre-restore-20200101T000000Z",
        "app/data.pre-restore-20200101T000000Z", "app/logs/x.pre-restore-20200101T000000Z"]
    result = _safety.prune_safety_copies(app, now=T0)
    assert len(result["removed"]) == 4
    assert sorted(os.listdir(victim)) == ["data.pre-restore-20200101T000000Z", "precious"]
    assert open(os.path.join(victim, "precious")).read() == "precious\n"
    assert os.path.islink(os.path.join(app, "linked")) and sorted(os.listdir(app)) == ["config", "linked", "logs"]


def test_an_app_root_that_does_not_exist_has_no_safety_copies(tmp_path):
    assert _safety.prune_safety_copies(str(tmp_path / "nowhere" / "app"))["safety_copies"] == []
    assert _safety.prune_safety_copies(str(tmp_path / "app"))["removed"] == []
