"""An encrypted backup's .index.json (every path, file sha256 and page hash: enough to confirm a guess about a
file's content) stays on the app server: a push to a real sshd on 127.0.0.1 sends the archive and its catalog
sidecars only, while a plain backup's index travels (the control that shows the check would see it)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import SyncRequest, sync
from tests.servers import backup_server  # noqa: F401  (fixture)


def pushed_files(folder: str) -> list:
    return sorted(os.path.relpath(os.path.join(path, name), folder)
                  for path, _dirs, files in os.walk(folder) for name in files)


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_an_encrypted_backups_index_never_leaves_the_app_server(app, tmp_path, backup_server, encrypted):  # noqa: F811
    subprocess.run(["rm", "-rf", backup_server.folder], check=True)
    os.makedirs(backup_server.folder, 0o700)
    key = tmp_path / "operator.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout
    backup_dir = tmp_path / "backups"
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir),
                                       encryption_recipients=[recipient.strip()] if encrypted else []))
    local_index = made["archive"] + ".index.json"
    assert os.path.isfile(local_index)  # the next incremental builds on it, here
    sync(SyncRequest(backup_dir=str(backup_dir), **backup_server.options()))
    pushed = pushed_files(backup_server.folder)
    archive = os.path.relpath(made["archive"], str(backup_dir))
    assert archive in pushed and archive + ".meta.json" in pushed and archive + ".sha256" in pushed
    assert (archive + ".index.json" in pushed) is not encrypted, pushed
