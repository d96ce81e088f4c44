"""`make demo` runs playbooks/demo.yml on the local inventory: the whole drill must keep working."""

from __future__ import annotations

import os
import signal

from tests.integration.runner import REPO, run_playbook


def test_demo_drill_recovers_the_damaged_database(tmp_path):
    result = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "demo.yml"),
                          inventory=os.path.join(REPO, "inventories", "local"),
                          extra_args=["-e", "reddit_backup_app_root=%s" % (tmp_path / "app"),
                                      "-e", "reddit_backup_backup_dir=%s" % (tmp_path / "backups"),
                                      "-e", "reddit_backup_demo_db_size_mb=5"])
    try:
        pid = int(result.result("Start the health server in the background (the guide's reddit-sentiment-monitor "
                                "service)")["stdout"])
        os.kill(pid, signal.SIGTERM)  # already stopped by the demo when it got that far
    except (KeyError, ValueError, ProcessLookupError):
        pass
    assert not result.failed, result.stderr
    assert result.result("Ask /health/database, which now reports the damage")["status"] == 503
    healthy = result.result("Ask /health/database again")
    assert healthy["status"] == 200 and healthy["json"]["integrity"] == "ok"
    before = result.result("Count the posts before anything happens")["stdout"]
    assert result.result("Count the posts after the recovery")["stdout"] == before
    summary = result.result("Summarise the drill")["msg"]
    assert summary[-1].startswith("RTO database corruption: ") and summary[-1].endswith("met")
    assert any(name.startswith("data.pre-restore-") for name in os.listdir(str(tmp_path / "app")))
