# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Locks of a backup directory. flock is released by the kernel when its holder dies, so it never goes stale.

``.lock`` (exclusive): one writing run at a time (create, prune, sync). ``.readers``: restores and verifies hold it
shared while they read archives; prune takes it exclusive before it deletes, so it never removes what is read.
The lock files live in a folder another user may write, so they are opened without following a symlink, never
truncated unless they are regular files this user owns, and never waited on when they are something else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, LockTimeout
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import (
    PRIVATE_FILE_MODE, folder_owner_to_give, open_dir,
)

LOCK_NAME = ".lock"
READERS_NAME = ".readers"
POLL_SECONDS = 0.1
LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class DirectoryLock:
    """``with DirectoryLock(backup_dir, timeout, purpose):`` holds the exclusive lock of ``backup_dir``;
    ``name=READERS_NAME, shared=True`` the readers' lock instead (``shared=False``: exclusive of all readers).
    ``name=None`` locks the folder's own descriptor and writes nothing there (a restore's lock on dest's parent,
    a folder that is not ours to put files in)."""

    def __init__(self, directory: str, timeout: float = 60.0, purpose: str = "backup", name: str = LOCK_NAME,
                 shared: bool = False) -> None:
        self.path = os.path.join(directory, name) if name else directory
        self.on_folder = not name
        self.timeout = timeout
        self.purpose = purpose
        self.shared = shared
        self._fd = None

    def __enter__(self) -> "DirectoryLock":
        fd = self._open()
        deadline = time.monotonic() + max(self.timeout, 0)
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = None if self.on_folder else _read_holder(fd)  # a folder names no holder
                    os.close(fd)
                    raise LockTimeout(self._busy_message(holder)) from None
                time.sleep(POLL_SECONDS)
        if not self.shared and not self.on_folder:  # shared holders are many: none names itself in the file
            holder = {"pid": os.getpid(), "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "purpose": self.purpose}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        return open_dir(self.path) if self.on_folder else open_lock_file(self.path)

    def _busy_message(self, holder: str) -> str:
        folder = os.path.dirname(self.path)
        if self.on_folder:
            return ("another %s is running and held its lock for %s s; wait for it or raise lock_timeout"
                    % (self.purpose, self.timeout))
        if os.path.basename(self.path) == READERS_NAME and not self.shared:
            return ("backups in %s are being read by a restore or verify, which did not finish within %s s; %s waits "
                    "so that it never deletes what they read: run it again later or raise lock_timeout"
                    % (folder, self.timeout, self.purpose))
        if os.path.basename(self.path) == READERS_NAME:
            return ("backup directory %s is being pruned (%s) and stayed so for %s s; wait for it to finish or raise "
                    "lock_timeout" % (folder, holder, self.timeout))
        return ("backup directory %s is locked by another run (%s) and stayed locked for %s s; wait for it to finish "
                "or raise lock_timeout" % (folder, holder, self.timeout))

    def __exit__(self, *exc_info) -> None:
        if self._fd is not None:
            if not self.shared and not self.on_folder:
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class ReadersLock(DirectoryLock):
    """Held shared by a restore or verify reading ``backup_dir``'s archives. A backup directory this user cannot
    write (a read-only mount) cannot be pruned either, so there the read goes on without it."""

    def __init__(self, directory: str, timeout: float = 60.0, purpose: str = "read") -> None:
        super().__init__(directory, timeout, purpose, READERS_NAME, shared=True)
        self.directory = directory

    def __enter__(self) -> "ReadersLock":
        try:
            return super().__enter__()
        except OSError as error:
            if error.errno in (errno.EROFS, errno.EACCES, errno.ENOENT):
                return self
            raise


def ensure_readers_file(backup_dir: str) -> None:
    """Make the readers' lock file with the backup directory, so a later restore or verify changes nothing there."""
    os.close(open_lock_file(os.path.join(backup_dir, READERS_NAME)))


def reading(backup_dir: str = None, timeout: float = 60.0, purpose: str = "read"):
    """The readers' lock of ``backup_dir``; nothing without one (an archive outside any backup directory: no prune
    removes it)."""
    if not backup_dir:
        return contextlib.nullcontext()
    return ReadersLock(os.path.abspath(backup_dir), timeout, purpose)


def open_lock_file(path: str) -> int:
    """The lock file's descriptor: opened inside the backup directory's descriptor, never through a symlink, and
    refused unless it is a regular file with one name that belongs to this user or to the backup directory's owner
    (the app user's scheduled runs and root's playbooks share one backup directory and its locks; writing such a
    file harms nothing its owner could not already change)."""
    folder = open_dir(os.path.dirname(path))
    try:
        owners = {os.geteuid(), os.fstat(folder).st_uid}
        try:
            fd = os.open(os.path.basename(path), LOCK_FLAGS, PRIVATE_FILE_MODE, dir_fd=folder)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise _foreign_lock(path, "it is a symbolic link") from None
            raise
        give_to = folder_owner_to_give(folder)
    finally:
        os.close(folder)
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "it is not a regular file"
    elif info.st_uid not in owners:
        problem = "it belongs to uid %d, neither this run's user (uid %d) nor the backup directory's owner" % (
            info.st_uid, os.geteuid())
    elif info.st_nlink != 1:
        problem = "it has %d hard links" % info.st_nlink
    if problem:
        os.close(fd)
        raise _foreign_lock(path, problem)
    if give_to and info.st_uid == 0 and info.st_size == 0:  # empty: handing it over gives nothing away
        os.fchown(fd, *give_to)
    return fd


def _foreign_lock(path: str, problem: str) -> BackupError:
    return BackupError("lock file %s was not made by this tool (%s); someone with write access to the backup "
                       "directory planted it. Nothing was changed: check who did, remove it, and run again"
                       % (path, problem))


def is_locked(directory: str) -> bool:
    """True while some run holds the lock of ``directory``."""
    path = os.path.join(directory, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
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
    if not isinstance(holder, dict) or not holder:
        return "holder unknown"
    return "PID %s, %s since %s" % (holder.get("pid"), holder.get("purpose", "run"), holder.get("since"))
