"""Mounts: a restored item whose folder is another filesystem than the staging folder (a mount inside dest) cannot
be swapped in by rename, so the restore refuses before anything changes, naming the folder, and dest is as it was;
a backup directory this user cannot write (a read-only mount) is still verified, without the readers' lock."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
from tests.unit.plugins.module_utils.builders import restore_backup as backup, damage, tree  # noqa: F401  (fixtures)


@pytest.fixture
def config_on_tmpfs(app, tmp_path):
    """dest's config/ as its own tmpfs mount, holding what it held before."""
    saved = tmp_path / "config-before"
    shutil.copytree(str(app / "config"), str(saved))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(app / "config")], check=True)
    try:
        for name in os.listdir(str(saved)):
            shutil.copy2(str(saved / name), str(app / "config" / name))
        yield app / "config"
    finally:
        subprocess.run(["umount", str(app / "config")], check=True)


@pytest.mark.needs_root
def test_an_item_on_another_filesystem_than_its_staging_is_refused_before_anything_changes(app, backup,  # noqa: F811
                                                                                          config_on_tmpfs):
    damage(app)
    before = tree(app)
    with pytest.raises(BackupError, match="config is on another filesystem than the staging folder"):
        restore(RestoreRequest(dest=str(app), archive=backup["archive"], scope=["config/production.env"]))
    assert tree(app) == before
    assert not [name for name in os.listdir(str(app.parent)) if name.startswith(".reddit-restore-")]


@pytest.fixture
def read_only_backups(backup, tmp_path):  # noqa: F811
    """The backup directory seen through a read-only bind mount (a backup server's export, a mounted snapshot)."""
    view = tmp_path / "read-only"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(tmp_path / "backups"), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view / os.path.relpath(backup["archive"], str(tmp_path / "backups"))
    finally:
        subprocess.run(["umount", str(view)], check=True)


@pytest.mark.needs_root
def test_a_backup_directory_this_user_cannot_write_is_read_without_the_readers_lock(app, read_only_backups):
    with pytest.raises(OSError):
        open(os.path.join(os.path.dirname(os.path.dirname(str(read_only_backups))), "probe"), "w")
    result = verify_archive(str(read_only_backups), "comprehensive", record=False)
    assert result["status"] == "valid", result
