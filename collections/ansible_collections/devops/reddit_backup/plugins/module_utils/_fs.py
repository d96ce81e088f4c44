# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe writes: temp file beside the target, fsync, rename, fsync the directory."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import stat

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, NoSpace

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
TEMP_PREFIX = ".tmp-"
# Only names this tool makes with temp_path() are ever cleaned up as temp files.
TEMP_NAME = re.compile(r"\A\.tmp-[A-Za-z0-9._-]+-[0-9a-f]{1,32}\Z")
PULL_STAGING = re.compile(r"\A\.tmp-pull-[0-9a-f]{12}\Z")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_LINK_HOPS = 40


class PermissionDenied(BackupError):
    """This run's user may not open a path (another user's private folder or file)."""


def _trusted_uid(uid: int) -> bool:
    """A link or file made by root or by this run's user; anything else someone else could have planted."""
    return uid in (0, os.geteuid())


def _refuse_link(path: str) -> BackupError:
    return BackupError("%s is a symbolic link (or not a directory) that this tool did not make, and it never follows "
                       "such a link in the backup directory: someone replaced a folder with it. Check where it points, "
                       "remove it (a real directory is made again) and run again" % path)


def open_dir(path: str, create: bool = False, dir_fd: int = None) -> int:
    """A descriptor of the directory ``path``. Relative to ``dir_fd`` (a folder of the backup directory): the
    name must be a real directory, never a symlink. Absolute: walked component by component; a symlink on the
    way is followed only if root or this user made it (an operator's link), never one another user planted.
    With ``create``, missing components are made 0700."""
    if dir_fd is not None:
        return _open_component(dir_fd, path, create, os.path.join(_fd_path(dir_fd), path))
    fd = os.open("/", DIR_FLAGS)
    parts = [part for part in os.path.abspath(path).split("/") if part]
    walked, hops = "", 0
    try:
        while parts:
            part = parts.pop(0)
            try:
                following = _open_component(fd, part, create, walked + "/" + part, links_ok=True)
            except _TrustedLink as link:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise BackupError("%s: too many symbolic links on the way" % path) from None
                parts[:0] = [item for item in link.target.split("/") if item]
                if link.target.startswith("/"):
                    os.close(fd)
                    fd, walked = os.open("/", DIR_FLAGS), ""
                continue
            os.close(fd)
            fd = following
            walked = os.path.normpath(walked + "/" + part)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fd_path(dir_fd: int) -> str:
    """Where a directory descriptor points, for messages only."""
    try:
        return os.readlink("/proc/self/fd/%d" % dir_fd)
    except OSError:
        return "(an open folder)"


class _TrustedLink(Exception):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def _open_component(dir_fd: int, name: str, create: bool, shown: str, links_ok: bool = False) -> int:
    try:
        return os.open(name, DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
        try:
            os.mkdir(name, PRIVATE_DIR_MODE, dir_fd=dir_fd)
        except FileExistsError:
            return _open_component(dir_fd, name, False, shown, links_ok)
        made = _open_component(dir_fd, name, False, shown, links_ok)
        _give_new_folder(dir_fd, made)
        return made
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise as_backup_error(error, shown) from error
    if links_ok and name not in (".", ".."):
        link = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:  # the link itself: who made it, and where it points, read from one descriptor (no swap between)
            if stat.S_ISLNK(os.fstat(link).st_mode) and _trusted_uid(os.fstat(link).st_uid):
                raise _TrustedLink(os.readlink("", dir_fd=link))
        finally:
            os.close(link)
    if not stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
        raise BackupError("%s exists but is not a directory; move it away or choose another backup_dir" % shown)
    raise _refuse_link(shown)


def folder_owner_to_give(dir_fd: int):
    """(uid, gid) of the folder ``dir_fd`` when this run is root and the folder belongs to another user (the backup
    directory's owner, whose scheduled runs must use what root writes there), else None."""
    if os.geteuid() != 0:
        return None
    info = os.fstat(dir_fd)
    return None if info.st_uid == 0 else (info.st_uid, info.st_gid)


def _give_new_folder(parent_fd: int, fd: int) -> None:
    """Give the folder root just made to the owner of the folder it was made in; only while it is still root's
    and empty (the name may have been swapped meanwhile: an empty folder gives nothing away)."""
    owner = folder_owner_to_give(parent_fd)
    info = os.fstat(fd)
    if owner and info.st_uid == 0 and not os.listdir(fd):
        os.fchown(fd, *owner)


def give_new_file(fd: int, path: str) -> None:
    """Give the file root just created at ``path`` (its open descriptor ``fd``) to the owner of its folder, if the
    name in that folder is still this very file; the folder is reached as open_dir reaches it (never through a link
    another user made, which could point at a third user's folder), and only what was created is given."""
    if os.geteuid() != 0:
        return
    try:
        folder = open_dir(os.path.dirname(os.path.abspath(path)))
    except (OSError, BackupError):
        return  # reached only through a planted link: it stays root's, which nobody else can read
    try:
        owner = folder_owner_to_give(folder)
        if owner is None:
            return
        named = os.stat(os.path.basename(path), dir_fd=folder, follow_symlinks=False)
        created = os.fstat(fd)
        if (named.st_dev, named.st_ino) == (created.st_dev, created.st_ino) and created.st_uid == 0:
            os.fchown(fd, *owner)
    except OSError:
        pass  # gone or swapped: it stays root's, which nobody else can read
    finally:
        os.close(folder)


def ensure_private_dir(path: str, dir_fd: int = None) -> bool:
    """Create ``path`` (and parents) as 0700, or tighten an existing one to 0700, through its descriptor (never
    through a link someone planted). Relative to ``dir_fd`` when given. Returns True if anything changed."""
    existed = os.path.lexists(path) if dir_fd is None else lexists_at(dir_fd, path)
    fd = open_dir(path, create=True, dir_fd=dir_fd)
    try:
        changed = not existed
        if os.fstat(fd).st_mode & 0o7777 != PRIVATE_DIR_MODE:
            os.fchmod(fd, PRIVATE_DIR_MODE)
            changed = True
    finally:
        os.close(fd)
    return changed


def lexists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def open_regular(path: str, dir_fd: int = None, limit: int = None, what: str = "file") -> int:
    """A descriptor of the regular file ``path``, opened without following a final symlink and without blocking
    (a FIFO or device planted in its place is refused, never waited on); ``limit`` caps its size."""
    try:
        fd = os.open(path, READ_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BackupError("%s %s is a symbolic link; this tool reads only regular files there: remove the link"
                              % (what, path)) from None
        if error.errno in (errno.EACCES, errno.EPERM):
            raise PermissionDenied(unreadable_message(what, path, dir_fd)) from None
        raise
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file (a FIFO, device or directory); remove it"
    elif limit is not None and info.st_size > limit:
        problem = "is %d bytes, more than the %d such a file can hold; it is not one this tool wrote" % (
            info.st_size, limit)
    if problem:
        os.close(fd)
        raise BackupError("%s %s %s" % (what, path, problem))
    return fd


def read_regular(path: str, limit: int, dir_fd: int = None, what: str = "sidecar") -> bytes:
    """The bytes of a small regular file (see open_regular); OSError when it cannot be opened."""
    fd = open_regular(path, dir_fd, limit, what)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BackupError("%s %s grew past %d bytes while it was read; it is not one this tool wrote"
                          % (what, path, limit))
    return data


def fsync_dir(path: str) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(directory: str, stem: str) -> str:
    """A hidden, unique name in ``directory``; the catalog never lists it and the next locked run removes it."""
    return os.path.join(directory, "%s%s-%s" % (TEMP_PREFIX, stem, secrets.token_hex(6)))


def open_private(path: str):
    """Open a new file for binary writing with mode 0600 from its first byte; made by root in a folder another
    user owns (the backup directory's owner), it is given to that user."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    give_new_file(fd, path)
    return os.fdopen(fd, "wb")


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600) so that readers see the old file or the whole new one, never a part."""
    directory = os.path.dirname(path) or "."
    tmp = temp_path(directory, os.path.basename(path))
    try:
        with open_private(tmp) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        remove_quietly(tmp)
        raise as_backup_error(error, path) from error
    fsync_dir(directory)


def commit_no_clobber(tmp: str, final: str) -> None:
    """Move a finished temp file to ``final``; never replace an existing file there."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise BackupError("%s already exists; refusing to overwrite a backup" % final) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            raise as_backup_error(error, final) from error
        # Filesystems without hard links: check, then rename (we hold the directory lock).
        if os.path.lexists(final):
            raise BackupError("%s already exists; refusing to overwrite a backup" % final) from None
        os.rename(tmp, final)
    else:
        os.unlink(tmp)
    fsync_dir(os.path.dirname(final) or ".")


def sha256_file(path: str) -> str:
    """The sha256 of a regular file's bytes (never through a final symlink, never a FIFO), in 1 MiB chunks."""
    with os.fdopen(open_regular(path, what="archive"), "rb") as handle:
        return sha256_of(handle)


def sha256_of(handle) -> str:
    """The sha256 of what is left to read in the open binary file ``handle``, in 1 MiB chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def remove_quietly(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def remove_stale_temps(directory: str, dir_fd: int = None) -> list:
    """Remove temp files a killed run left in ``directory`` (listed through ``dir_fd`` when given): only regular
    files named as temp_path() names them, and pull staging folders this user made. Nothing else, however it is
    named, and never through a symlink. Call only while holding the directory's lock."""
    removed = []
    try:
        fd = open_dir(directory) if dir_fd is None else os.dup(dir_fd)
    except FileNotFoundError:
        return removed
    try:
        for name in os.listdir(fd):
            if TEMP_NAME.match(name) and _remove_own_temp(fd, name):
                removed.append(os.path.join(directory, name))
    finally:
        os.close(fd)
    return removed


def _remove_own_temp(dir_fd: int, name: str) -> bool:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(info.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            return True
        if stat.S_ISDIR(info.st_mode) and PULL_STAGING.match(name) and info.st_uid == os.geteuid() \
                and info.st_mode & 0o777 == PRIVATE_DIR_MODE:
            shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: never leaves the folder through a link
            return True
    except FileNotFoundError:
        pass
    return False


def unreadable_message(what: str, path: str, dir_fd: int = None) -> str:
    """Why this run's user cannot read ``path`` (whose it is, its mode) and what the operator does about it."""
    try:
        info = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
        whose = "owned by uid %d, mode %04o" % (info.st_uid, info.st_mode & 0o7777)
    except OSError:
        whose = "its folder is closed to this user"
    shown = path if dir_fd is None else os.path.join(_fd_path(dir_fd), path)
    return ("%s %s cannot be read by uid %d (%s): it was written by another user (root running a playbook before "
            "this version gave what it writes to the backup directory's owner). As root, give it to the backup "
            "directory's owner (chown -R OWNER: BACKUP_DIR) and run again" % (what, shown, os.geteuid(), whose))


def as_backup_error(error: OSError, path: str) -> BackupError:
    """Turn an OSError into a message that says what to do; ENOSPC becomes NoSpace."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(
            "no space left on the device holding %s while writing it; free space there or choose another "
            "backup_dir (earlier backups are untouched and the partial file was removed)" % path
        )
    if error.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied("permission denied on %s: %s; fix its ownership or mode, or run as its owner"
                                % (path, error.strerror))
    return BackupError("%s: %s" % (path, error.strerror or error))
