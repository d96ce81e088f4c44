# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the app tree, which its (possibly compromised) owner may change while we read it: directories are
reached one component at a time without following a symlink, files are opened without following one and
without blocking on a FIFO, and what was opened must be the very inode that was selected (device and inode)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: a FIFO swapped in opens at once (and is then refused) instead of hanging the backup.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
# What a swap looks like to open(): a symlink met with O_NOFOLLOW, a file where a directory was, or nothing at all.
SWAPPED_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.ENXIO)


class Replaced(BackupError):
    """What was selected is no longer there as it was selected: swapped for a link, a FIFO, another file, or gone."""


def same_file(first: os.stat_result, second: os.stat_result) -> bool:
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def components(relative: str) -> list:
    return [part for part in relative.replace(os.sep, "/").split("/") if part not in ("", ".")]


def open_dir(root: str, relative: str, expected: os.stat_result = None) -> int:
    """A descriptor of ``root/relative`` reached without following any symlink below ``root``; with ``expected``,
    it must be that directory (device and inode). The caller closes it."""
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        for part in components(relative):
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        if expected is not None and not same_file(os.fstat(fd), expected):
            raise Replaced("%s was replaced by another directory while the backup read it"
                           % os.path.join(root, relative))
    except OSError as error:
        os.close(fd)
        if error.errno not in SWAPPED_ERRNOS:
            raise
        raise Replaced("%s is no longer a directory reached without symlinks (%s)"
                       % (os.path.join(root, relative), error.strerror)) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_in(root: str, relative: str) -> os.stat_result:
    """lstat of ``root/relative`` with every parent reached without following a symlink."""
    parent, name = os.path.split(os.path.normpath(relative))
    if name in ("", "."):
        return os.lstat(root)
    fd = open_dir(root, parent)
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError as error:
        if error.errno not in SWAPPED_ERRNOS:
            raise
        raise Replaced("%s is gone (%s)" % (os.path.join(root, relative), error.strerror)) from None
    finally:
        os.close(fd)


def open_regular(path: str, expected: os.stat_result = None):
    """``path`` opened for binary reading if it is (still) a regular file and, with ``expected``, the same inode;
    never follows a final symlink and never blocks. Raises Replaced otherwise."""
    try:
        fd = os.open(path, FILE_FLAGS)
    except OSError as error:
        if error.errno not in SWAPPED_ERRNOS:
            raise
        raise Replaced("%s can no longer be opened as it was selected (%s; a symlink is never followed)"
                       % (path, error.strerror)) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (expected is not None and not same_file(info, expected)):
        os.close(fd)
        raise Replaced("%s was replaced (by another file, a FIFO or a device) after it was selected" % path)
    return os.fdopen(fd, "rb")


def sha256_selected(path: str, expected: os.stat_result) -> str:
    """The sha256 of the selected file ``path``; Replaced if it is no longer that file."""
    digest = hashlib.sha256()
    with open_regular(path, expected) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_link(root: str, relative: str, expected: os.stat_result) -> str:
    """The target of the selected symlink ``root/relative``, read through its parent's descriptor."""
    parent, name = os.path.split(os.path.normpath(relative))
    fd = open_dir(root, parent)
    try:
        if not same_file(os.stat(name, dir_fd=fd, follow_symlinks=False), expected):
            raise Replaced("%s was replaced after it was selected" % os.path.join(root, relative))
        return os.readlink(name, dir_fd=fd)
    except OSError as error:
        if error.errno not in SWAPPED_ERRNOS + (errno.EINVAL,):
            raise
        raise Replaced("%s is no longer the symlink that was selected (%s)"
                       % (os.path.join(root, relative), error.strerror)) from None
    finally:
        os.close(fd)
