from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, NoSpace


def test_atomic_write_is_private_and_leaves_no_temp(tmp_path):
    target = str(tmp_path / "file")
    _fs.atomic_write_bytes(target, b"one")
    _fs.atomic_write_bytes(target, b"two")
    assert open(target, "rb").read() == b"two"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert os.listdir(str(tmp_path)) == ["file"]


def test_commit_never_overwrites_a_backup(tmp_path):
    (tmp_path / "backup.tar").write_text("old")
    (tmp_path / "tmp").write_text("new")
    with pytest.raises(BackupError, match="refusing to overwrite"):
        _fs.commit_no_clobber(str(tmp_path / "tmp"), str(tmp_path / "backup.tar"))
    assert (tmp_path / "backup.tar").read_text() == "old"


def test_private_dir_is_tightened(tmp_path):
    path = tmp_path / "backups"
    path.mkdir(mode=0o755)
    assert _fs.ensure_private_dir(str(path)) is True
    assert os.stat(str(path)).st_mode & 0o777 == 0o700
    assert _fs.ensure_private_dir(str(path)) is False


def test_enospc_becomes_no_space_with_advice():
    error = _fs.as_backup_error(OSError(errno.ENOSPC, "No space left on device"), "/b/daily/x.tar.zst")
    assert isinstance(error, NoSpace) and "no space left" in str(error) and "/b/daily/x.tar.zst" in str(error)


def test_stale_temps_removed(tmp_path):
    (tmp_path / ".tmp-backup-abc").write_text("partial")
    (tmp_path / "keep.tar.zst").write_text("x")
    assert _fs.remove_stale_temps(str(tmp_path)) == [str(tmp_path / ".tmp-backup-abc")]
    assert os.listdir(str(tmp_path)) == ["keep.tar.zst"]
