"""Staging writes its bytes back to the disk as it goes (issue 16): a restore never leaves hundreds of MB dirty for
the barrier before the swap to write back in one burst that a live writer's fsync waits behind. Real files on the
real filesystem of tmp_path; the flusher counts only fdatasync/syncfs calls that returned."""

from __future__ import annotations

import hashlib
import os
import resource
import tarfile

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.reader import Member
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.staging import FLUSH_STEP, Flusher, Stager

MIB = 1 << 20


def file_member(path: str, size: int) -> Member:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
    return Member(None, info, path, "file", None)


def stage(stager: Stager, path: str, size: int, chunk: int = MIB) -> str:
    """Writes ``size`` bytes into the staged file ``path`` in the reader's 1 MiB chunks; returns their sha256."""
    staged = stager.add(file_member(path, size))
    digest = hashlib.sha256()
    try:
        for index in range(size // chunk):
            data = index.to_bytes(8, "big") * (chunk // 8)
            digest.update(data)
            staged.write(data)
    finally:
        staged.close()
    return digest.hexdigest()


def sha256_of(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture
def stager(tmp_path):
    root = tmp_path / "tree"
    root.mkdir(mode=0o700)
    made = Stager(str(root), lambda path: True)
    yield made
    made.close()


def test_a_large_staged_file_never_leaves_more_than_the_limit_unflushed(stager):
    expected = stage(stager, "data/app.db", 64 * MIB)
    stager.close()
    flusher = stager.flusher
    assert flusher.error is None
    assert flusher.limit == 3 * FLUSH_STEP < 64 * MIB
    assert 0 < flusher.high_water <= flusher.limit  # without the flusher all 64 MiB stay dirty until the barrier
    assert flusher.flushes == 64 * MIB // FLUSH_STEP  # one fdatasync per step written
    assert flusher.unflushed == 0  # close waited for what was handed over
    assert sha256_of(os.path.join(stager.root, "data/app.db")) == expected


def test_the_tail_of_a_large_file_is_flushed_when_it_closes(stager):
    stage(stager, "data/app.db", FLUSH_STEP + 3 * MIB)
    stager.close()
    assert stager.flusher.flushes == 2  # the first step while writing, the last 3 MiB at close
    assert stager.flusher.unflushed == 0


def test_small_files_are_flushed_together_once_they_add_up_to_a_step(stager):
    stager.flusher = Flusher(stager.root, step=4 * MIB)
    for index in range(10):
        stage(stager, "config/file-%d" % index, MIB)
    stager.close()
    flusher = stager.flusher
    assert flusher.flushes == 2  # a syncfs after 4 and after 8 files, never one per small file
    assert flusher.unflushed == 2 * MIB  # the last two are left to the barrier before the swap (under a step)
    assert flusher.high_water <= flusher.limit


def test_a_flush_that_cannot_be_made_stops_staging_with_a_clear_message(stager):
    staged = stager.add(file_member("data/app.db", 2 * FLUSH_STEP))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open("/", os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no descriptor left for the flusher's copy
    try:
        with pytest.raises(BackupError, match=r"cannot stage data/app.db in .*tree: Too many open files") as raised:
            for _index in range(2 * FLUSH_STEP // MIB):
                staged.write(b"\0" * MIB)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        staged.close()
    assert "Errno" not in str(raised.value)
    with pytest.raises(BackupError, match="Too many open files"):
        stager.finalize()  # the swap never follows a flush that was not made
