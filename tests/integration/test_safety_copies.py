"""Safety copies (issue 12 item 10) the operator's way: the settings in the inventory's group_vars, the `cleanup`
and `backup` playbooks run as an operator runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.ansiblerun import failure
from tests.integration.inventory import run, where


def restored(app, backup: dict, days_ago: float, scope: str = "database") -> None:
    """A restore some days ago, after a change, leaving its safety copy (the setup: what earlier restores left)."""
    if scope == "config":
        (app / "config" / "production.env").write_text("CHANGED=1\n")
    else:
        with sqlite3.connect(str(app / "data" / "reddit_sentiment.db")) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS later (x)")
        conn.close()
    restore(RestoreRequest(dest=str(app), archive=backup["archive"], scope=scope, safety_copies_max_age=None,
                           safety_copies_keep=9,
                           now=datetime.now(timezone.utc) - timedelta(days=days_ago)))


def copies(app) -> list:
    return sorted(name for name in os.listdir(str(app)) if ".pre-restore-" in name)


def test_cleanup_keeps_what_group_vars_say_and_no_backup_takes_safety_copies(sample_app, tmp_path):
    backup = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(tmp_path / "backups")))
    for days in (9, 3, 2, 1):
        restored(sample_app, backup, days)
    restored(sample_app, backup, 1, scope="config")
    assert len(copies(sample_app)) == 5
    listed = run(tmp_path, "cleanup", where(sample_app, tmp_path, reddit_backup_safety_copies_prune=False))
    assert not listed.failed, listed.stderr + failure(listed)
    assert sorted(copy["item"] for copy in listed.result("Apply the safety copies' retention rule")["safety_copies"]) \
        == ["config", "data", "data", "data", "data"]
    assert len(copies(sample_app)) == 5
    taken = run(tmp_path, "backup", where(sample_app, tmp_path))
    assert not taken.failed, taken.stderr + failure(taken)
    listing = subprocess.run(["tar", "--zstd", "-tf", taken.result("Take the backup")["archive"]], check=True,
                             capture_output=True, text=True).stdout
    assert "pre-restore-" not in listing and "data/reddit_sentiment.db" in listing
    pruned = run(tmp_path, "cleanup", where(sample_app, tmp_path, reddit_backup_safety_copies_keep=2))
    assert not pruned.failed, pruned.stderr + failure(pruned)
    removed = pruned.result("Apply the safety copies' retention rule")["removed"]
    assert [copy["reason"] for copy in removed] == ["more than the 2 newest safety copies of data"] * 2
    assert len(copies(sample_app)) == 3 and os.path.exists(str(sample_app / "data" / "reddit_sentiment.db"))
    aged = run(tmp_path, "cleanup", where(sample_app, tmp_path, reddit_backup_safety_copies_max_age="36h"))
    assert [copy["reason"] for copy in aged.result("Apply the safety copies' retention rule")["removed"]] == \
        ["older than 36h"]
    wrong = run(tmp_path, "cleanup", where(sample_app, tmp_path, reddit_backup_safety_copies_remove=[
        str(sample_app / "data")]))
    assert wrong.failed and "is not a safety copy of" in failure(wrong)
    assert os.path.exists(str(sample_app / "data" / "reddit_sentiment.db"))
