"""A restored item whose folder is another filesystem than the staging folder (a mount inside dest) cannot be
swapped in by rename: the restore refuses before anything changes, naming the folder, and dest is as it was."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import RestoreRequest, restore
from tests.unit.plugins.module_utils.test_restore import backup, damage, tree  # noqa: F401  (fixture)


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
