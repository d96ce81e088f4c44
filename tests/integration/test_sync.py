"""backup_sync and backup_prune's remote option through ansible-playbook on localhost, against an sshd on
127.0.0.1 (the backup server) and moto's server mode on 127.0.0.1, an implementation of the S3 API (no S3 server
can be installed here). The modules run under the targets' python (Debian's, with its python3-boto3)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.integration.runner import TARGET_PYTHON
from tests.servers import backup_server, s3_server  # noqa: F401  (fixtures)


def task(name, module, **options) -> dict:
    return {"name": name, "devops.reddit_backup." + module: options}


def test_push_pull_and_remote_retention_over_ssh(backup_server, sample_app, tmp_path, play):  # noqa: F811
    backups = tmp_path / "backups"
    first = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(backups), now=_at("2025-05-26")))
    second = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(backups), now=_at("2025-05-27")))
    server = backup_server.options()
    preview = play([task("push", "backup_sync", backup_dir=str(backups), **server)], check=True)
    assert not preview.failed, preview.stderr
    assert len(preview.result("push")["transferred"]) == 2 and os.listdir(backup_server.folder) == []
    result = play([
        task("push", "backup_sync", backup_dir=str(backups), **server),
        task("push again", "backup_sync", backup_dir=str(backups), **server),
        task("pull", "backup_sync", backup_dir=str(tmp_path / "new-server"), direction="pull", select="latest",
             type="full", **server),
        task("pull before", "backup_sync", backup_dir=str(tmp_path / "before"), direction="pull", select="before",
             before="2025-05-26T12:00:00Z", **server),
        task("prune", "backup_prune", backup_dir=str(backups), policy={"full": {"keep_last": 1}},
             now="2025-05-27T12:00:00Z", **server),
        task("info", "backup_info", backup_dir=str(tmp_path / "new-server")),
    ])
    assert not result.failed, result.stderr
    pushed = result.result("push")
    assert pushed["changed"] and [item["name"] for item in pushed["transferred"]] == [first["name"], second["name"]]
    assert all(item["size"] > 0 and "seconds" in item for item in pushed["transferred"])
    again = result.result("push again")
    assert not again["changed"] and len(again["skipped_backups"]) == 2 and not again.get("skipped")
    assert [item["name"] for item in result.result("pull")["transferred"]] == [second["name"]]
    assert [item["name"] for item in result.result("pull before")["transferred"]] == [first["name"]]
    pruned = result.result("prune")
    assert [item["name"] for item in pruned["deleted"]] == [first["name"]] and pruned["remote"].startswith("ssh://")
    assert [b["name"] for b in result.result("info")["backups"]] == [second["name"]]
    remaining = sorted(os.listdir(os.path.join(backup_server.folder, "daily")))
    assert remaining and all(second["name"] in name for name in remaining)


def test_push_and_pull_with_s3(s3_server, sample_app, tmp_path, play):  # noqa: F811
    if subprocess.run([TARGET_PYTHON, "-c", "import boto3"], capture_output=True, check=False).returncode != 0:
        pytest.skip("boto3 is missing on the targets' python %s (Debian package python3-boto3)" % TARGET_PYTHON)
    backups = tmp_path / "backups"
    made = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(backups)))
    bucket = s3_server.make_bucket("integration")
    options = s3_server.options(bucket, prefix="app1")
    result = play([
        task("push", "backup_sync", backup_dir=str(backups), **options),
        task("pull", "backup_sync", backup_dir=str(tmp_path / "new-server"), direction="pull", select="latest",
             **options),
        task("verify", "backup_verify", backup_dir=str(tmp_path / "new-server")),
    ])
    assert not result.failed, result.stderr
    assert result.result("push")["transferred"][0]["name"] == made["name"]
    assert "app1/" + os.path.relpath(made["archive"], str(backups)) in s3_server.keys(bucket)
    assert result.result("pull")["transferred"][0]["name"] == made["name"]
    assert result.result("verify")["valid"]
    # The secret key is no_log: it is in no result and no message.
    printed = json.dumps(result.data) + result.stderr
    assert s3_server.SECRET_KEY not in printed


def test_a_bad_remote_fails_with_a_clear_message(tmp_path, play):
    result = play([task("sync", "backup_sync", backup_dir=str(tmp_path / "b"), remote="ftp://example/x")])
    assert result.failed and "ssh://user@host[:port]/path" in result.result("sync")["msg"]


def _at(day: str):
    from datetime import datetime, timezone  # pylint: disable=import-outside-toplevel
    return datetime.strptime(day + " 02:00", "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
