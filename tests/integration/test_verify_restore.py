"""devops.reddit_backup.verify_restore (`reddit-backup verify-restore`): passes on a sound application, names a
configuration line that does not parse and a damaged database."""

from __future__ import annotations

import os

from tests.integration.runner import REPO, run_playbook


def check(tmp_path, app):
    return run_playbook(tmp_path, os.path.join(REPO, "playbooks", "verify_restore.yml"), extra_args=[
        "-e", "reddit_backup_hosts=localhost", "-e", "reddit_backup_app_root=%s" % app,
        "-e", "reddit_backup_health_check=false"])


def checked(result) -> dict:
    return result.result("Check the databases (PRAGMA integrity_check, read-only) and the configuration (parsed, "
                         "never executed)")


def test_verify_restore(sample_app, tmp_path):
    sound = check(tmp_path, sample_app)
    assert not sound.failed, sound.stderr
    assert sound.result("Report")["msg"][0].startswith("databases: reddit_sentiment.db")

    env = sample_app / "config" / "production.env"
    original = env.read_text()
    env.write_text(original + "not a setting\n")
    broken = check(tmp_path, sample_app)
    assert broken.failed
    assert "config:config/production.env" in checked(broken)["msg"] and "not a setting" in checked(broken)["msg"]

    env.write_text(original)
    database = sample_app / "data" / "reddit_sentiment.db"
    with open(str(database), "r+b") as handle:
        handle.seek(os.path.getsize(str(database)) // 2)
        handle.write(b"\xff" * 8192)
    damaged = check(tmp_path, sample_app)
    assert damaged.failed
    assert checked(damaged)["failed"] and "database:data/reddit_sentiment.db: PRAGMA integrity_check: " in \
        checked(damaged)["msg"] and "PRAGMA integrity_check: ok" not in checked(damaged)["msg"]
