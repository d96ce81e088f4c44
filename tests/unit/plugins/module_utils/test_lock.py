from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import LockTimeout
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import DirectoryLock, is_locked
from tests.unit.plugins.module_utils.builders import hold_in_child


def test_second_run_times_out_naming_the_holder(tmp_path):
    child = hold_in_child(tmp_path)
    try:
        assert is_locked(str(tmp_path))
        with pytest.raises(LockTimeout, match=r"locked by another run \(PID %d, test holder since" % child.pid):
            with DirectoryLock(str(tmp_path), timeout=0.3):
                pass
    finally:
        child.kill()
        child.wait()


def test_lock_of_a_killed_run_never_blocks(tmp_path):
    child = hold_in_child(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    started = time.monotonic()
    with DirectoryLock(str(tmp_path), timeout=5):
        assert time.monotonic() - started < 5
    assert not is_locked(str(tmp_path))


def test_waiting_run_gets_the_lock_when_released(tmp_path):
    child = hold_in_child(tmp_path)
    try:
        subprocess.Popen(["sh", "-c", "sleep 0.5; kill %d" % child.pid])
        with DirectoryLock(str(tmp_path), timeout=10):
            assert child.wait(timeout=5) is not None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_folder_lock_writes_nothing_there_and_excludes_a_second_holder(tmp_path):
    """name=None: the lock a restore takes on dest's parent, a folder that is not ours to put files in."""
    with DirectoryLock(str(tmp_path), 5, "restore into %s" % tmp_path, name=None):
        assert os.listdir(str(tmp_path)) == []
        with pytest.raises(LockTimeout, match="another restore into %s is running" % tmp_path):
            with DirectoryLock(str(tmp_path), 0.2, "restore into %s" % tmp_path, name=None):
                pass
    with DirectoryLock(str(tmp_path), 0.2, "restore into %s" % tmp_path, name=None):
        assert os.listdir(str(tmp_path)) == []
