"""The restore playbooks (through the top-level wrappers) on localhost against the sample app, with its real
health server; services are switched off (reddit_backup_manage_services: false), unit files go to a folder."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.integration.recoveryapp import DB, recovery  # noqa: F401  (a fixture)
from tests.sampleapp import posts


def task(result, prefix: str) -> dict:
    found = [hosts["localhost"] for play in result.data["plays"] for item in play["tasks"]
             if item["task"]["name"].startswith(prefix) and "localhost" in (hosts := item["hosts"])]
    assert found, "no task named %s..." % prefix
    return found[-1]


def rto(result) -> str:
    return task(result, "Report the recovery time against")["msg"]


def test_database_corruption(recovery):  # noqa: F811
    db = recovery.app / DB
    with open(str(db), "r+b") as handle:  # the guide's scenario 1: the database file is damaged
        handle.seek(os.path.getsize(str(db)) // 2)
        handle.write(os.urandom(8192))
    result = recovery.run("restore_database")
    assert not result.failed, result.stderr + json.dumps(result.data)[-3000:]
    restored = task(result, "Restore from the backup")
    assert restored["restored"] == [str(recovery.app / "data")] and restored["verification"]["valid"]
    assert posts(recovery.app) == recovery.posts
    assert task(result, "Wait until the health endpoint")["json"]["integrity"] == "ok"
    line = rto(result)
    assert line.startswith("RTO database corruption: ") and "from start to healthy" in line
    assert "target 1800 s (30 min): met" in line
    damaged = restored["safety_copies"][0]
    assert ".pre-restore-" in damaged and os.path.exists(os.path.join(damaged, "reddit_sentiment.db"))
    again = recovery.run("restore_database")  # safe to re-run: nothing left to restore
    assert not again.failed and task(again, "Restore from the backup")["changed"] is False
    assert rto(again).startswith("RTO database corruption: ")


def test_configuration_loss(recovery):  # noqa: F811
    (recovery.app / "config" / "production.env").write_text("half a line\n")
    (recovery.app / "config" / "logging.conf").unlink()
    result = recovery.run("restore_config")
    assert not result.failed, result.stderr + json.dumps(result.data)[-3000:]
    assert task(result, "Restore from the backup")["restored"][0] == str(recovery.app / "config")
    assert (recovery.app / "config" / "logging.conf").exists()
    assert "production.env" in task(result, "Validate the restored configuration files")["msg"]
    assert "RTO configuration loss: " in rto(result) and "(15 min): met" in rto(result)


def test_systemd_units(recovery):  # noqa: F811
    shutil.rmtree(str(recovery.app / "systemd"))
    result = recovery.run("restore_systemd")
    assert not result.failed, result.stderr + json.dumps(result.data)[-3000:]
    assert sorted(os.listdir(str(recovery.units))) == ["reddit-sentiment-monitor.service",
                                                       "reddit-sentiment-pipeline.service",
                                                       "reddit-sentiment-pipeline.timer"]
    assert (recovery.units / "reddit-sentiment-pipeline.timer").read_bytes() == \
        (recovery.app / "systemd" / "reddit-sentiment-pipeline.timer").read_bytes()
    assert rto(result).startswith("RTO configuration loss (systemd units): ")


def test_complete_system_failure_onto_a_new_server(recovery):  # noqa: F811
    shutil.rmtree(str(recovery.app))  # the application directory is gone; the backups survived elsewhere
    result = recovery.run("restore_full")
    assert not result.failed, result.stderr + json.dumps(result.data)[-3000:]
    assert task(result, "Restore from the backup")["restored"] == [str(recovery.app)]
    assert posts(recovery.app) == recovery.posts and (recovery.units / "reddit-sentiment-pipeline.timer").exists()
    assert os.access(str(recovery.app / "scripts" / "run_pipeline.sh"), os.X_OK)
    assert "RTO complete system failure: " in rto(result) and "(120 min): met" in rto(result)


def test_point_in_time(recovery):  # noqa: F811
    first = recovery.full
    time.sleep(1.1)  # backup names and times are to the second
    conn = sqlite3.connect(str(recovery.app / DB))
    conn.execute("DELETE FROM posts WHERE id > 50")
    conn.commit()
    conn.close()
    create_backup(BackupRequest(app_root=str(recovery.app), backup_dir=str(recovery.backups)))
    result = recovery.run("restore_point_in_time", reddit_backup_restore_before=first["created"],
                          reddit_backup_restore_scope="database")
    assert not result.failed, result.stderr + json.dumps(result.data)[-3000:]
    assert task(result, "Restore from the backup")["archive"] == first["archive"]
    assert task(result, "Say what was restored")["msg"][0].endswith(first["archive"])
    assert posts(recovery.app) == recovery.posts
    assert rto(result).startswith("RTO point-in-time recovery: ")
    too_early = recovery.run("restore_point_in_time", reddit_backup_restore_before="2001-01-01T00:00:00Z")
    assert too_early.failed and "No backup" in task(too_early, "Require one")["msg"]
