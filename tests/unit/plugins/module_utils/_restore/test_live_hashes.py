"""Dest's databases hashed while the archive is read: reused only while the file is unchanged."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.live_hashes import LiveHashes


def _file(folder, data: bytes) -> str:
    os.makedirs(str(folder), exist_ok=True)
    path = str(folder / "app.db")
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def test_a_file_unchanged_since_it_was_hashed_is_not_read_again(tmp_path):
    path = _file(tmp_path, b"a" * 5000)
    hashes = LiveHashes({path: 5000})
    assert hashes.sha256(path) == hashlib.sha256(b"a" * 5000).hexdigest()
    assert path in hashes._found  # hashed in the thread, reused


def test_a_file_written_after_it_was_hashed_is_hashed_again(tmp_path):
    path = _file(tmp_path, b"a" * 5000)
    hashes = LiveHashes({path: 5000})
    hashes._thread.join()
    time.sleep(0.05)  # past the kernel's clock tick (ctime is as fine as that)
    with open(path, "r+b") as handle:  # same size, same mtime set back: the kernel's ctime still moves
        handle.write(b"b")
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, hashes._found[path][0][3]))
    assert hashes.sha256(path) == hashlib.sha256(b"b" + b"a" * 4999).hexdigest()


def test_a_file_replaced_after_it_was_hashed_is_hashed_again(tmp_path):
    path = _file(tmp_path, b"a" * 5000)
    hashes = LiveHashes({path: 5000})
    hashes._thread.join()
    other = _file(tmp_path / "other", b"c" * 5000)
    os.replace(other, path)
    assert hashes.sha256(path) == hashlib.sha256(b"c" * 5000).hexdigest()


def test_a_file_of_another_size_is_not_read_ahead(tmp_path):
    path = _file(tmp_path, b"a" * 100)
    hashes = LiveHashes({path: 5000, str(tmp_path / "missing.db"): 5000})
    assert hashes.sha256(path) == hashlib.sha256(b"a" * 100).hexdigest() and not hashes._found


def test_a_symlink_planted_in_its_place_is_never_followed(tmp_path):
    target = _file(tmp_path, b"a" * 5000)
    link = str(tmp_path / "planted.db")
    os.symlink(target, link)
    hashes = LiveHashes({link: 5000})
    with pytest.raises(BackupError, match="symbolic link"):
        hashes.sha256(link)
    assert not hashes._found
