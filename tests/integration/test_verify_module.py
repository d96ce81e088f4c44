"""backup_verify through ansible-playbook on localhost: verdicts, check mode, the catalog's view, the docs."""

from __future__ import annotations

import hashlib
import os
import subprocess

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.integration.runner import BIN, REPO, ansible_env


def verify(task="verify", **options) -> dict:
    return {"name": task, "devops.reddit_backup.backup_verify": options}


def test_verify_records_a_verdict_the_catalog_shows(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    made = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(backups)))
    checked = play([verify(backup_dir=str(backups))], check=True)
    assert not checked.failed, checked.stderr
    assert checked.result("verify")["valid"] and checked.result("verify")["verdict"] is None
    assert not os.path.exists(made["archive"] + ".verify.json")  # check mode writes nothing
    result = play([
        verify("quick", archive=made["archive"], level="quick"),
        verify("full", backup_dir=str(backups), type="full"),
        {"name": "info", "devops.reddit_backup.backup_info": {"backup_dir": str(backups)}},
    ])
    assert not result.failed, result.stderr
    quick, full = result.result("quick"), result.result("full")
    assert quick["status"] == "valid" and not quick["changed"] and len(quick["checks"]) == 5
    assert full["status"] == "valid" and full["archive"] == made["archive"] and full["errors"] == []
    names = {check["name"] for check in full["checks"]}
    assert {"content", "database:data/reddit_sentiment.db", "required", "config:config/production.env",
            "config:config/logging.conf", "config:config/monitoring.yml"} <= names
    verified = result.result("info")["backups"][0]["verified"]
    assert verified["status"] == "valid" and verified["level"] == "comprehensive" and verified["current"]


def test_an_altered_archive_fails_the_task_and_names_the_member(sample_app, tmp_path, play):
    made = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(tmp_path / "b"), compression="none"))
    archive = made["archive"]
    data = bytearray(open(archive, "rb").read())
    offset = data.index(b"APP_NAME=reddit-sentiment-pipeline")  # inside config/production.env
    data[offset + 4] ^= 0x20
    open(archive, "wb").write(bytes(data))
    with open(archive + ".sha256", "w") as handle:  # whoever altered it fixed the sidecar too
        handle.write("%s  %s\n" % (hashlib.sha256(bytes(data)).hexdigest(), os.path.basename(archive)))
    result = play([verify(archive=archive)])
    assert result.failed
    failed = result.result("verify")
    assert failed["status"] == "invalid" and "config/production.env" in failed["msg"]
    reported = play([verify(archive=archive, fail_on_invalid=False)])
    assert not reported.failed and reported.result("verify")["valid"] is False
    assert any("config/production.env: its bytes do not match" in e for e in reported.result("verify")["errors"])
    info = play([{"name": "info", "devops.reddit_backup.backup_info": {"backup_dir": str(tmp_path / "b")}}])
    assert info.result("info")["backups"][0]["verified"]["status"] == "invalid"


def test_the_module_docs_render(tmp_path):
    for module in ("backup_verify", "backup_restore"):
        completed = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", "module",
                                    "devops.reddit_backup." + module], capture_output=True, text=True,
                                   env=ansible_env(tmp_path), cwd=REPO)
        assert completed.returncode == 0, completed.stderr
        assert "RETURN VALUES" in completed.stdout or "RETURN" in completed.stdout
