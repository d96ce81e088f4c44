# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing members into a private staging tree, never trusting them.

Every file is created with O_CREAT|O_EXCL|O_NOFOLLOW beneath directories opened one component at a time with
O_NOFOLLOW (never through a symlink), so even a member the reader missed cannot write outside the tree.
setuid and setgid bits are dropped. Writes stop before the archive can fill the filesystem: at the size its
catalog entry announced, and always before the free space (or free inodes) run out. Staged bytes go to the disk
in the background as they are written (Flusher), so the durability barrier before the swap finds little left.
"""

from __future__ import annotations

import collections
import errno
import os
import shutil
import threading

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, NoSpace
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.reader import DamagedArchive
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.swap import sync_filesystem

SAFE_MODE_BITS = 0o1777  # permissions and the sticky bit; never setuid or setgid
IMPLICIT_DIR_MODE = 0o755
RESERVE_BYTES = 64 << 20
RESERVE_INODES = 1000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
FLUSH_STEP = 4 << 20  # a few ms of writeback even on a busy disk: what a live fsync may wait behind
UNFLUSHED_STEPS = 3  # a step on its way to the disk, one being written, one of small files not yet handed over


class Flusher:
    """Writes staged bytes back to the disk in a thread of its own while staging goes on, a ``step`` at a time.

    The page cache would otherwise hold the whole staged database until the barrier before the swap (a syncfs),
    and write hundreds of MB back in one burst that every other writer's fsync on the filesystem (a live
    database's WAL commit) waits behind. A file gets ``fdatasync`` for each step written into it; small files
    (under a step each) are handed over together, a ``syncfs`` once they add up to a step. ``unflushed`` (bytes
    written and not yet known durable) stays at most ``limit``: a write waits while the disk is behind.
    """

    def __init__(self, root: str, step: int = FLUSH_STEP) -> None:
        self.root = root
        self.step = step
        self.limit = UNFLUSHED_STEPS * step
        self.unflushed = 0
        self.high_water = 0  # the most ``unflushed`` ever was: what the disk owed at worst
        self.flushes = 0
        self.error = None  # (OSError, member path) of the first flush that failed
        self._loose = 0  # bytes of closed small files not yet handed over
        self._in_flight = 0  # bytes handed over and not yet flushed
        self._jobs: collections.deque = collections.deque()
        self._changed = threading.Condition()
        self._closing = False
        self._thread = None

    def before_write(self, size: int) -> None:
        """Waits while ``size`` more bytes would leave more than ``limit`` unflushed and a flush is under way."""
        with self._changed:
            while self.error is None and self._in_flight and self.unflushed + size > self.limit:
                self._changed.wait()

    def wrote(self, size: int) -> None:
        with self._changed:
            self.unflushed += size
            self.high_water = max(self.high_water, self.unflushed)

    def hand_over(self, fd: int, size: int, path: str) -> None:
        """Flush ``size`` bytes written to ``fd`` (a duplicate is kept; the caller may close ``fd``)."""
        try:
            self._submit((os.dup(fd), size, path))
        except OSError as error:  # no descriptor left: the next write (or finalize) reports it
            with self._changed:
                self.error = self.error or (error, path)
                self._changed.notify_all()

    def small_file_closed(self, size: int, path: str) -> None:
        self._loose += size
        if self._loose >= self.step:
            self._submit((None, self._loose, path))
            self._loose = 0

    def _submit(self, job: tuple) -> None:
        with self._changed:
            self._jobs.append(job)
            self._in_flight += job[1]
            self._changed.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="staging-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._jobs and not self._closing:
                    self._changed.wait()
                if not self._jobs:
                    return
                fd, size, path = self._jobs[0]
            self._flush(fd, path)
            with self._changed:
                self._jobs.popleft()
                self._in_flight -= size
                self.unflushed -= size
                self._changed.notify_all()

    def _flush(self, fd, path: str) -> None:
        try:
            if self.error is None:
                if fd is None:
                    sync_filesystem(self.root)
                else:
                    os.fdatasync(fd)
                self.flushes += 1
        except OSError as error:
            self.error = (error, path)
        finally:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Waits for what was handed over (at most ``limit`` bytes) and ends the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class StagedFile:
    """The open staging copy of one file member; ``close()`` sets its mode and mtime."""

    def __init__(self, stager: "Stager", fd: int, path: str, member) -> None:
        self.stager = stager
        self.fd = fd
        self.path = path
        self.member = member
        self.remaining = member.size
        self.unsubmitted = 0  # bytes written and not yet handed to the flusher

    def write(self, data: bytes) -> None:
        flusher = self.stager.flusher
        flusher.before_write(len(data))
        self.stager.raise_flush_error()
        self.remaining -= len(data)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
                flusher.wrote(written)
                self.unsubmitted += written
        except OSError as error:
            raise self.stager.write_error(error, self.member.path) from error
        if self.unsubmitted >= flusher.step:
            flusher.hand_over(self.fd, self.unsubmitted, self.member.path)
            self.unsubmitted = 0

    def close(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if self.member.size < self.stager.flusher.step:
                self.stager.flusher.small_file_closed(self.unsubmitted, self.member.path)
            elif self.unsubmitted:
                self.stager.flusher.hand_over(fd, self.unsubmitted, self.member.path)
            if self.remaining == 0:
                os.fchmod(fd, self.member.mode & SAFE_MODE_BITS)
                os.utime(fd, (self.member.mtime, self.member.mtime))
        finally:
            os.close(fd)


class Stager:
    """Stages the members ``wanted(path)`` accepts into the directory ``root`` (which must be new and private).

    ``budget``: at most this many file bytes (the archive's catalog entry says how many it holds), or None.
    ``overlay``: a member may replace what an earlier archive of the same chain staged at its path (a chain's
    later links change the state its root left); within one archive the reader refuses duplicates.
    """

    def __init__(self, root: str, wanted, budget=None) -> None:
        self.root = root
        self.wanted = wanted
        self.budget = budget
        self.entries: dict = {}  # path -> kind of everything staged (implicit directories too)
        self.dirs: dict = {}  # directory path -> (mode, mtime) from its member; implicit ones are absent
        self.cleared: list = []  # members whose setuid/setgid bits were dropped
        self.root_only: set = set()  # members the archive records as root's and unreadable by group and others
        self.written = 0
        stats = os.statvfs(root)
        self._free = stats.f_bavail * stats.f_frsize - RESERVE_BYTES
        self._inodes = (stats.f_favail - RESERVE_INODES) if stats.f_files else None
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._parent = (None, None)  # the last parent directory opened: (path, fd)
        self.on_add = None  # a test hook: called with "member:<path>" before each member is staged
        self.overlay = False
        self.flusher = Flusher(root)

    def close(self) -> None:
        """Closes the folders; waits for the flusher (at most its ``limit`` bytes)."""
        self.flusher.close()
        self._forget_parent()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def _forget_parent(self) -> None:
        if self._parent[1] is not None:
            os.close(self._parent[1])
        self._parent = (None, None)

    def raise_flush_error(self) -> None:
        """A failed flush, as a write error: the staged bytes it owed may never reach the disk."""
        if self.flusher.error is not None:
            error, path = self.flusher.error
            raise self.write_error(error, path) from error

    def write_error(self, error: OSError, path: str) -> BackupError:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return NoSpace("no space left in %s while staging %s; free space there (the destination is "
                           "unchanged)" % (self.root, path))
        if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
            return DamagedArchive("member %s is refused: it would be written through a symlink or over another "
                                  "member (%s)" % (path, error.strerror))
        return BackupError("cannot stage %s in %s: %s" % (path, self.root, error.strerror))

    def _open_parent(self, path: str) -> int:
        """The directory fd that holds ``path``, creating missing parents (0700 until finalize)."""
        parent = path.rpartition("/")[0]
        if not parent:
            return self._root_fd
        if self._parent[0] == parent:
            return self._parent[1]
        self._forget_parent()
        fd = os.dup(self._root_fd)
        walked = []
        try:
            for part in parent.split("/"):
                walked.append(part)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    self._count_inode(path)
                    os.mkdir(part, 0o700, dir_fd=fd)
                    self.entries["/".join(walked)] = "dir"
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as error:
            os.close(fd)
            raise self.write_error(error, path) from error
        self._parent = (parent, fd)
        return fd

    def _count_inode(self, path: str) -> None:
        if self._inodes is not None:
            self._inodes -= 1
            if self._inodes < 0:
                raise NoSpace("staging %s would use up the free inodes of the filesystem holding %s; the archive "
                              "holds more entries than it can take (the destination is unchanged)" % (path, self.root))

    def add(self, member):
        """Stage ``member`` if wanted: directories and symlinks at once, files as a StagedFile to write into."""
        if not self.wanted(member.path):
            return None
        if self.on_add is not None:
            self.on_add("member:" + member.path)
        if member.mode & 0o6000:
            self.cleared.append(member.path)
        self.root_only.discard(member.path)
        if member.kind != "symlink" and root_only(member):
            self.root_only.add(member.path)
        parent_fd = self._open_parent(member.path)
        name = member.path.rpartition("/")[2]
        existing = self.entries.get(member.path)
        if existing is not None and self.overlay and not (existing == "dir" and member.kind == "dir"):
            self._replace(member.path, existing, parent_fd, name)
        try:
            if member.kind == "dir":
                if self.entries.get(member.path) != "dir":
                    self._count_inode(member.path)
                    os.mkdir(name, 0o700, dir_fd=parent_fd)
                self.entries[member.path] = "dir"
                self.dirs[member.path] = (member.mode & SAFE_MODE_BITS, member.mtime)
                return None
            self._count_inode(member.path)
            if member.kind == "symlink":
                os.symlink(member.target, name, dir_fd=parent_fd)
                os.utime(name, (member.mtime, member.mtime), dir_fd=parent_fd, follow_symlinks=False)
                self.entries[member.path] = "symlink"
                return None
            self._reserve(member)
            fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
        except OSError as error:
            raise self.write_error(error, member.path) from error
        self.entries[member.path] = "file"
        return StagedFile(self, fd, os.path.join(self.root, member.path), member)

    def _replace(self, path: str, kind: str, parent_fd: int, name: str) -> None:
        """Remove what an earlier link staged at ``path`` (never following a symlink)."""
        try:
            if kind == "dir":
                shutil.rmtree(os.path.join(self.root, path))
            else:
                os.unlink(name, dir_fd=parent_fd)
        except OSError as error:
            raise self.write_error(error, path) from error
        self.forget(path)

    def forget(self, path: str) -> None:
        """``path`` (and what was beneath it) is no longer staged."""
        prefix = path + "/"
        for staged in [p for p in self.entries if p == path or p.startswith(prefix)]:
            del self.entries[staged]
            self.dirs.pop(staged, None)
            self.root_only.discard(staged)
        if self._parent[0] is not None and (self._parent[0] == path or self._parent[0].startswith(prefix)):
            self._forget_parent()

    def _reserve(self, member) -> None:
        if self.budget is not None and self.written + member.size > self.budget:
            raise DamagedArchive("member %s is refused: the archive holds more than the %d bytes its catalog entry "
                                 "announces; it was altered" % (member.path, self.budget))
        if self.written + member.size > self._free:
            raise NoSpace("not enough free space to stage %s (%d bytes) beside the destination: %d bytes are left "
                          "after %d staged; free space there (the destination is unchanged)"
                          % (member.path, member.size, max(self._free - self.written, 0), self.written))
        self.written += member.size

    def finalize(self) -> None:
        """Give every staged directory its mode and mtime (deepest first, once nothing more is written into it)."""
        self.close()
        self.raise_flush_error()
        for path in sorted((p for p, kind in self.entries.items() if kind == "dir"), key=len, reverse=True):
            mode, mtime = self.dirs.get(path, (IMPLICIT_DIR_MODE, None))
            fd = os.open(os.path.join(self.root, path), _DIR_FLAGS)
            try:
                os.fchmod(fd, mode)
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def root_only(member) -> bool:
    """The archive records ``member`` as root's with no read bit for group or others: only root may read it."""
    uid, uname = getattr(member, "owner", (None, None))
    return uid == 0 and uname in ("root", "", None) and not member.mode & 0o044


def chown_tree(path: str, uid: int, gid: int) -> None:
    """lchown ``path`` and everything beneath it (never following a symlink)."""
    if uid == -1 and gid == -1:
        return
    os.lchown(path, uid, gid)
    if not os.path.isdir(path) or os.path.islink(path):
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)
