# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changing paths below one trusted folder without ever following a symlink.

The application user owns the destination and may swap any folder in it for a symlink at any moment, so a
restore never hands a path string to the kernel below the trusted folder (the destination's parent): it opens
each component with O_NOFOLLOW|O_DIRECTORY from the folder above, and renames, unlinks and removes relative to
the folder's descriptor. A component that is a symlink, or no longer a directory, stops the step with a message
naming it; nothing is done through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class PlantedPath(BackupError):
    """A path a restore must not act through: a symlink or a non-directory where a folder should be."""


class Anchor:
    """The trusted folder ``root`` (an absolute path without symlinks) and the confined steps below it."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") or "/"

    def parts(self, path: str) -> list:
        """``path``'s components below the root; refuses a path outside it or one with '.', '..' or '//'."""
        prefix = self.root if self.root.endswith("/") else self.root + "/"
        if path == self.root:
            return []
        if not path.startswith(prefix):
            raise PlantedPath("refusing to act on %s: it lies outside %s, the folder this restore works in; "
                              "nothing was changed through it" % (path, self.root))
        parts = path[len(prefix):].split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise PlantedPath("refusing to act on %s: it is not a plain path below %s" % (path, self.root))
        return parts

    def open_dir(self, path: str) -> int:
        """A descriptor of the folder ``path``, reached without following any symlink below the root."""
        fd = os.open(self.root, DIR_FLAGS)
        walked = self.root
        try:
            for part in self.parts(path):
                walked = os.path.join(walked, part)
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PlantedPath("refusing to go through %s: it is a symlink or not a directory (planted, or "
                                  "changed while the restore ran); nothing was changed through it, inspect it and "
                                  "run the restore again" % walked) from None
            raise
        return fd

    @contextlib.contextmanager
    def parent(self, path: str):
        """(descriptor of the folder holding ``path``, ``path``'s last name), the folder reached safely."""
        if path == self.root:
            raise PlantedPath("refusing to act on %s itself" % path)
        fd = self.open_dir(os.path.dirname(path))
        try:
            yield fd, os.path.basename(path)
        finally:
            os.close(fd)

    def lstat(self, path: str):
        """``path``'s own lstat, or None when it (or a folder above it) is missing."""
        try:
            with self.parent(path) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def lexists(self, path: str) -> bool:
        return self.lstat(path) is not None

    def is_dir(self, path: str) -> bool:
        info = self.lstat(path)
        return info is not None and stat.S_ISDIR(info.st_mode)

    def rename(self, source: str, target: str) -> None:
        with self.parent(source) as (source_fd, source_name), self.parent(target) as (target_fd, target_name):
            os.rename(source_name, target_name, src_dir_fd=source_fd, dst_dir_fd=target_fd)

    def mkdir(self, path: str, mode: int) -> None:
        with self.parent(path) as (fd, name):
            os.mkdir(name, mode, dir_fd=fd)

    def remove(self, path: str) -> None:
        """Delete ``path`` (a whole tree for a folder) without following a symlink anywhere; gone already is fine."""
        try:
            with self.parent(path) as (fd, name):
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    remove_tree_at(fd, name)
                else:
                    os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass

    def fsync_dir(self, path: str) -> None:
        fd = self.open_dir(path)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Delete the folder ``name`` in ``dir_fd`` and everything in it, each folder opened with O_NOFOLLOW."""
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        for entry in list(os.scandir(fd)):
            if entry.is_dir(follow_symlinks=False):
                remove_tree_at(fd, entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
