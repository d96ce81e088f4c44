"""A configuration backup never records a damaged configuration as the newest good one, and a configuration restore
names (or, told to, takes) the newest backup that passes verification (issue 12 item 6)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.unit.plugins.module_utils.builders import REPO

T0 = datetime(2025, 5, 28, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def good_app(app):
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    return app


def config_backup(app, backups, hours: float, **options) -> dict:
    return create_backup(BackupRequest(str(app), str(backups), type="config", now=T0 + timedelta(hours=hours),
                                       **options))


def test_a_config_backup_missing_required_files_is_refused_and_not_recorded(good_app, tmp_path):
    backups = tmp_path / "backups"
    good = config_backup(good_app, backups, 0)
    os.unlink(str(good_app / "config" / "logging.conf"))
    os.unlink(str(good_app / "config" / "monitoring.yml"))
    for check_mode in (True, False):
        with pytest.raises(BackupError, match=r"configuration backup refused: required configuration files are "
                                              r"missing under .*: config/logging.conf, config/monitoring.yml\. .*"
                                              r"nothing was written"):
            create_backup(BackupRequest(str(good_app), str(backups), type="config", now=T0 + timedelta(hours=1)),
                          check_mode=check_mode)
    assert [b["name"] for b in _catalog.list_backups(str(backups))] == [good["name"]]
    assert sorted(os.listdir(str(backups / "config"))) == sorted(
        os.path.basename(good["archive"]) + suffix for suffix in ("", ".sha256", ".meta.json"))
    # What the application needs can be said; an empty list takes the backup without the check.
    config_backup(good_app, backups, 2, required=["config/production.env"])
    config_backup(good_app, backups, 3, required=[])
    with pytest.raises(BackupError, match="required entry 1 is empty"):
        config_backup(good_app, backups, 4, required=[""])
    full = create_backup(BackupRequest(str(good_app), str(backups), now=T0 + timedelta(hours=5)))
    assert full["type"] == "full"  # a full backup is still taken: it is the whole service's record


def test_a_config_restore_names_or_takes_the_newest_backup_that_passes(good_app, tmp_path):
    backups = tmp_path / "backups"
    good = config_backup(good_app, backups, 0)
    os.unlink(str(good_app / "config" / "logging.conf"))
    damaged = config_backup(good_app, backups, 1, required=[])  # what an earlier version recorded
    before = (good_app / "config" / "production.env").read_text()
    with pytest.raises(BackupError) as refused:
        restore(RestoreRequest(dest=str(good_app), backup_dir=str(backups), scope="config"))
    message = str(refused.value)
    assert "refusing to restore from %s: it failed verification" % damaged["archive"] in message
    assert "config/logging.conf is required but not in the archive" in message
    assert "The newest backup that passes verification is %s (made 2025-05-28T02:00:00Z)" % good["name"] in message
    assert "reddit_backup_restore_newest_good: true" in message
    assert not (good_app / "config" / "logging.conf").exists() and \
        (good_app / "config" / "production.env").read_text() == before
    result = restore(RestoreRequest(dest=str(good_app), backup_dir=str(backups), scope="config", newest_good=True))
    assert result["archive"] == good["archive"] and result["passed_over"] == [damaged["archive"]]
    assert any("failed verification, so the newest one that passes, %s" % good["name"] in warning
               for warning in result["warnings"])
    assert (good_app / "config" / "logging.conf").exists()
    # Chosen by name, a failing backup is refused and never swapped for another.
    with pytest.raises(BackupError, match="failed verification") as named:
        restore(RestoreRequest(dest=str(good_app), backup_dir=str(backups), scope="config", name=damaged["name"],
                               newest_good=True))
    assert "newest backup that passes" not in str(named.value)


def test_when_no_older_backup_passes_the_message_says_so(good_app, tmp_path):
    backups = tmp_path / "backups"
    os.unlink(str(good_app / "config" / "logging.conf"))
    config_backup(good_app, backups, 0, required=[])
    config_backup(good_app, backups, 1, required=[])
    with pytest.raises(BackupError, match="no older backup of that kind in .* passes verification either"):
        restore(RestoreRequest(dest=str(good_app), backup_dir=str(backups), scope="config", newest_good=True))
