# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One lock per backup directory. flock is released by the kernel when its holder dies, so it never goes stale."""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import datetime, timezone

from ._errors import LockTimeout
from ._fs import PRIVATE_FILE_MODE

LOCK_NAME = ".lock"
POLL_SECONDS = 0.1


class DirectoryLock:
    """``with DirectoryLock(backup_dir, timeout, purpose):`` holds the exclusive lock of ``backup_dir``."""

    def __init__(self, directory: str, timeout: float = 60.0, purpose: str = "backup") -> None:
        self.path = os.path.join(directory, LOCK_NAME)
        self.timeout = timeout
        self.purpose = purpose
        self._fd = None

    def __enter__(self) -> "DirectoryLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        deadline = time.monotonic() + max(self.timeout, 0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockTimeout(
                        "backup directory %s is locked by another run (%s) and stayed locked for %s s; wait for "
                        "it to finish or raise lock_timeout" % (os.path.dirname(self.path), holder, self.timeout)
                    ) from None
                time.sleep(POLL_SECONDS)
        holder = {"pid": os.getpid(), "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "purpose": self.purpose}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_locked(directory: str) -> bool:
    """True while some run holds the lock of ``directory``."""
    path = os.path.join(directory, LOCK_NAME)
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except ValueError:
        return "holder unknown"
    if not holder:
        return "holder unknown"
    return "PID %s, %s since %s" % (holder.get("pid"), holder.get("purpose", "run"), holder.get("since"))
