# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe writes: temp file beside the target, fsync, rename, fsync the directory."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil

from ._errors import BackupError, NoSpace

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
TEMP_PREFIX = ".tmp-"


def ensure_private_dir(path: str) -> bool:
    """Create ``path`` (and parents) as 0700, or tighten an existing one to 0700. Returns True if anything changed."""
    changed = False
    if not os.path.isdir(path):
        if os.path.lexists(path):
            raise BackupError("%s exists but is not a directory; move it away or choose another backup_dir" % path)
        os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
        changed = True
    if os.stat(path).st_mode & 0o7777 != PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
        changed = True
    return changed


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
    """Open a new file for binary writing with mode 0600 from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
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
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
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


def remove_stale_temps(directory: str) -> list:
    """Remove temp files a killed run left in ``directory``. Call only while holding the directory's lock."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        if name.startswith(TEMP_PREFIX):
            remove_quietly(os.path.join(directory, name))
            removed.append(os.path.join(directory, name))
    return removed


def as_backup_error(error: OSError, path: str) -> BackupError:
    """Turn an OSError into a message that says what to do; ENOSPC becomes NoSpace."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(
            "no space left on the device holding %s while writing it; free space there or choose another "
            "backup_dir (earlier backups are untouched and the partial file was removed)" % path
        )
    if error.errno in (errno.EACCES, errno.EPERM):
        return BackupError("permission denied on %s: %s; fix its ownership or mode, or run as its owner"
                           % (path, error.strerror))
    return BackupError("%s: %s" % (path, error.strerror or error))
