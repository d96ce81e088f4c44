"""Every setting an operator writes, written where an operator writes it: an inventory's group_vars/all.yml
(never -e), the top-level playbook run as an operator runs it, and the effect checked on disk."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sqlite3
import subprocess
import zipfile

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.ansiblerun import failure
from tests.integration.inventory import run, where
from tests.integration.recoveryapp import recovery  # noqa: F401  (a fixture)
from tests.integration.runnerhost import apphost, installed_from_inventory, wheelhouse  # noqa: F401  (a fixture)
from tests.notifyservers import webhook  # noqa: F401  (a fixture)
from tests.sampleapp import DB, posts, seed_app
from tests.servers import backup_server  # noqa: F401  (a fixture)

SECRET = "POSTGRES_PASSWORD"  # a line of the sample app's config/production.env


def created(result) -> dict:
    return result.result("Take the backup")


def age_key(path) -> str:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    os.chmod(str(path), 0o600)  # backup_verify and backup_restore refuse an identity others can read
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def members(archive_bytes: bytes, *decompress: str) -> str:
    """The tar listing of an archive, through the given decompressor."""
    plain = subprocess.run(list(decompress), input=archive_bytes, capture_output=True, check=True).stdout
    return subprocess.run(["tar", "-t"], input=plain, capture_output=True, check=True).stdout.decode()


@pytest.mark.skipif(shutil.which("age-keygen") is None, reason="age is needed (tools/setup.sh installs it)")
def test_encryption_and_gzip_from_group_vars(sample_app, tmp_path):
    identity = tmp_path / "operator.agekey"
    recipients = tmp_path / "recipients.txt"
    recipients.write_text("# the operator's key\n%s\n" % age_key(identity))
    result = run(tmp_path, "backup", where(sample_app, tmp_path, reddit_backup_compression="gzip",
                                           reddit_backup_encryption=True,
                                           reddit_backup_encryption_recipients_file=str(recipients)))
    assert not result.failed, result.stderr + failure(result)
    archive = created(result)["archive"]
    assert archive.endswith(".tar.gz.age") and created(result)["encrypted"]
    with open(archive, "rb") as handle:
        data = handle.read()
    assert data.startswith(b"age-encryption.org/v1") and SECRET.encode() not in data
    with pytest.raises(subprocess.CalledProcessError):  # not a gzip stream as it lies on disk
        members(data, "gzip", "-dc")
    decrypted = subprocess.run(["age", "-d", "-i", str(identity)], input=data, capture_output=True, check=True).stdout
    assert decrypted[:2] == b"\x1f\x8b"  # gzip inside
    assert "config/production.env" in members(decrypted, "gzip", "-dc")


def test_gzip_and_full_integrity_from_group_vars(sample_app, tmp_path):
    result = run(tmp_path, "backup", where(sample_app, tmp_path, reddit_backup_compression="gzip",
                                           reddit_backup_integrity="full", reddit_backup_type="database"))
    assert not result.failed, result.stderr + failure(result)
    made = created(result)
    assert made["type"] == "database" and made["archive"].endswith(".tar.gz") and not made["encrypted"]
    assert [database["integrity"] for database in made["databases"]] == ["ok"]
    with open(made["archive"], "rb") as handle:
        assert "MANIFEST.json" in members(handle.read(), "gzip", "-dc")


@pytest.mark.parametrize("integrity, delta_level", [(None, "quick"), ("full", "full")], ids=["default", "full"])
def test_an_explicit_full_integrity_in_group_vars_reaches_the_page_delta(sample_app, tmp_path, integrity,
                                                                         delta_level):
    """The default checks an incremental's page delta with quick_check; integrity full, written in group_vars, runs
    the full check on it too. Both record the check that ran."""
    settings = where(sample_app, tmp_path, **({"reddit_backup_integrity": integrity} if integrity else {}))
    full = run(tmp_path, "backup", settings)
    assert not full.failed, full.stderr + failure(full)
    conn = sqlite3.connect(str(sample_app / DB))
    conn.execute("UPDATE posts SET body = 'edited' WHERE id % 10 = 0")  # a few pages change: a page delta
    conn.commit()
    conn.close()
    incremental = run(tmp_path, "backup", dict(settings, reddit_backup_type="incremental"))
    assert not incremental.failed, incremental.stderr + failure(incremental)
    assert [d["integrity_level"] for d in created(full)["databases"]] == ["full"]
    delta = created(incremental)["databases"]
    assert [(d["delta"], d["integrity_level"], d["integrity"]) for d in delta] == [(True, delta_level, "ok")]


def test_wheelhouse_from_group_vars(sample_app, tmp_path):
    wheels = tmp_path / "controller-wheels"
    wheels.mkdir()
    with zipfile.ZipFile(str(wheels / "requests-2.32.3-py3-none-any.whl"), "w") as wheel:
        wheel.writestr("requests/__init__.py", "")
    dest = tmp_path / "host-wheelhouse"
    result = run(tmp_path, "backup", where(sample_app, tmp_path, reddit_backup_wheelhouse=str(wheels),
                                           reddit_backup_wheelhouse_dest=str(dest)))
    assert not result.failed, result.stderr + failure(result)
    assert (dest / "requests-2.32.3-py3-none-any.whl").is_file()
    assert created(result)["wheelhouse"]["wheels"] == 1
    with open(created(result)["archive"], "rb") as handle:
        assert "wheelhouse/requests-2.32.3-py3-none-any.whl" in members(handle.read(), "zstd", "-dc")


def days_ago(days: int) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)


@pytest.mark.parametrize("retention", [
    {"reddit_backup_retention_days": {"full": 1, "incremental": 7, "config": 90, "database": 1}},
    {"reddit_backup_retention_policy": {"full": {"keep_last": 1}}},
], ids=["days", "policy"])
def test_retention_from_group_vars(sample_app, tmp_path, retention):
    backups = tmp_path / "backups"
    older, newer = (create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(backups), now=days_ago(age)))
                    for age in (3, 2))
    untouched = run(tmp_path, "cleanup", where(sample_app, tmp_path))  # the guide's 30 days: nothing goes
    assert not untouched.failed and untouched.result("Apply the retention policy")["deleted"] == []
    result = run(tmp_path, "cleanup", where(sample_app, tmp_path, **retention))
    assert not result.failed, result.stderr + failure(result)
    assert [gone["name"] for gone in result.result("Apply the retention policy")["deleted"]] == [older["name"]]
    assert not os.path.exists(older["archive"]) and os.path.exists(newer["archive"])


def test_remote_push_from_group_vars(sample_app, tmp_path, backup_server):  # noqa: F811
    result = run(tmp_path, "backup", where(sample_app, tmp_path, reddit_backup_remote_sync=True,
                                           reddit_backup_remote=backup_server.remote,
                                           reddit_backup_remote_ssh_key=backup_server.ssh_key,
                                           reddit_backup_remote_known_hosts=backup_server.known_hosts))
    assert not result.failed, result.stderr + failure(result)
    name = os.path.basename(created(result)["archive"])
    pushed = result.result("Push the new backup to the remote copy")
    assert [item["name"] for item in pushed["transferred"]] == [created(result)["name"]]
    on_server = [files for _root, _dirs, files in os.walk(backup_server.folder)]
    assert any(name in files and name + ".sha256" in files for files in on_server)


def test_notification_from_group_vars(tmp_path, webhook):  # noqa: F811
    missing = tmp_path / "no-such-app"  # the backup fails: the webhook hears of it
    result = run(tmp_path, "backup", where(missing, tmp_path, reddit_backup_notification=True,
                                           reddit_backup_notification_webhook_url=webhook.url("/hooks/t0ken")))
    assert result.failed
    requests = webhook.wait_for(1)
    assert len(requests) == 1
    path, _headers, body = requests[0]
    assert path == "/hooks/t0ken" and body["status"] == "failed" and body["operation"] == "backup"
    assert str(missing) in json.dumps(body)
    quiet = run(tmp_path, "backup", where(missing, tmp_path, reddit_backup_notification=False,
                                          reddit_backup_notification_webhook_url=webhook.url("/hooks/t0ken")))
    assert quiet.failed and len(webhook.wait_for(2, timeout=2)) == 1  # notification off: nothing sent


@pytest.mark.parametrize("settings, named", [
    ({"reddit_backup_restore_nmae": "daily"}, "reddit_backup_restore_nmae"),
    ({"reddit_backup_compression": 7}, "reddit_backup_compression"),
    ({"reddit_backup_retention_days": "30"}, "reddit_backup_retention_days"),
    ({"reddit_backup_encryption": True}, "reddit_backup_encryption_recipients"),
    ({"reddit_backup_remote_sync": True}, "reddit_backup_remote is empty"),
], ids=["misspelt", "wrong-value", "wrong-type", "encryption-without-recipients", "sync-without-remote"])
def test_a_wrong_setting_fails_before_anything_is_written(sample_app, tmp_path, settings, named):
    result = run(tmp_path, "backup", where(sample_app, tmp_path, **settings))
    assert result.failed and named in failure(result), failure(result)
    assert not (tmp_path / "backups").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("age-keygen") is None, reason="age is needed (tools/setup.sh installs it)")
def test_the_scheduled_command_honours_group_vars(apphost, tmp_path):  # noqa: F811
    """A second application on the shared host, its runner applied from an inventory whose group_vars say gzip,
    encryption, the identity and the schedule: the full backup's timer fires at the schedule, the `reddit-backup
    create` it runs writes an encrypted gzip archive, and `reddit-backup verify --comprehensive` decrypts it with
    the identity."""
    app = tmp_path / "sealed-app"
    seed_app(str(app))
    identity = tmp_path / "operator.agekey"
    settings = where(app, tmp_path, reddit_backup_compression="gzip", reddit_backup_encryption=True,
                     reddit_backup_encryption_recipients=[age_key(identity)],
                     reddit_backup_identity_file=str(identity), reddit_backup_schedule="30 1 * * *",
                     # the runner role's own variables, as an operator keeps them beside the settings
                     runner_root=apphost.root, runner_app_name="sealed", runner_user="root", runner_group="root",
                     runner_scheduler="systemd", runner_wheelhouse=wheelhouse(),
                     runner_playbook_vars={"reddit_backup_manage_services": False})
    with installed_from_inventory(tmp_path, settings, ["runner"]):
        made = apphost.run("--app", "sealed", "create")
        verified = apphost.run("--app", "sealed", "verify", "--comprehensive")
        with open(os.path.join(apphost.units, "reddit-backup-sealed-full.timer")) as handle:
            timer = handle.read()
    assert made.returncode == 0, made.stdout + made.stderr
    archives = [os.path.join(root, name) for root, _dirs, files in os.walk(str(tmp_path / "backups"))
                for name in files if name.endswith(".age")]
    assert len(archives) == 1 and archives[0].endswith(".tar.gz.age"), archives
    with open(archives[0], "rb") as handle:
        data = handle.read()
    assert SECRET.encode() not in data
    decrypted = subprocess.run(["age", "-d", "-i", str(identity)], input=data, capture_output=True, check=True).stdout
    assert "config/production.env" in members(decrypted, "gzip", "-dc")
    assert verified.returncode == 0 and "VALID" in verified.stdout, verified.stdout + verified.stderr
    assert re.search(r"^OnCalendar=.*01:30:00$", timer, re.M), timer  # reddit_backup_schedule from group_vars


@pytest.mark.parametrize("integrity", [None, "quick"])
def test_the_integrity_setting_decides_whether_a_restore_checks_the_database_again(recovery, tmp_path, integrity):  # noqa: F811
    """After the default full check at backup time, a restore of the same bytes (same sha256, unsigned) runs only
    PRAGMA quick_check; after a quick one, the restore runs the full check itself."""
    settings = where(recovery.app, tmp_path, reddit_backup_type="database", reddit_backup_manage_services=False,
                     reddit_backup_health_url=recovery.url, reddit_backup_systemd_dir=str(recovery.units),
                     reddit_backup_health_retries=5, reddit_backup_health_delay=1)
    if integrity:
        settings["reddit_backup_integrity"] = integrity
    made = run(tmp_path, "backup", settings)
    assert not made.failed, made.stderr + failure(made)
    assert [d["integrity_level"] for d in created(made)["databases"]] == [integrity or "full"]
    with open(str(recovery.app / DB), "r+b") as handle:  # the guide's scenario 1: the database file is damaged
        handle.seek(os.path.getsize(str(recovery.app / DB)) // 2)
        handle.write(os.urandom(8192))
    result = run(tmp_path, "restore_database", settings)
    assert not result.failed, result.stderr + failure(result)
    restored = result.result("Restore from the backup, scope database")
    assert restored["archive"] == created(made)["archive"] and posts(recovery.app) == recovery.posts
    detail = next(c["detail"] for c in restored["verification"]["checks"] if c["name"] == "database:" + DB)
    if integrity == "quick":
        assert detail.startswith("PRAGMA integrity_check: ok; the recorded snapshot"), detail
    else:
        assert detail.startswith("PRAGMA quick_check: ok; PRAGMA integrity_check passed at backup time"), detail
