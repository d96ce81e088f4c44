# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consistent snapshots of live SQLite databases, and the facts the manifest records about them."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from urllib.parse import quote

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils import _nofollow

SQLITE_HEADER = b"SQLite format 3\x00"
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")
INTEGRITY_LEVELS = ("none", "quick", "full")


def is_sqlite_file(path: str, expected: os.stat_result = None) -> bool:
    """True when ``path`` is a regular file (not a symlink, FIFO or device; with ``expected``, that inode) that
    starts with SQLite's 16-byte header."""
    try:
        with _nofollow.open_regular(path, expected) as handle:
            return handle.read(16) == SQLITE_HEADER
    except (OSError, BackupError):
        return False


def _uri(path: str, **params: str) -> str:
    query = "&".join("%s=%s" % item for item in params.items())
    return "file:%s?%s" % (quote(os.path.abspath(path)), query)


def _open_source(src: str, busy_timeout: float) -> sqlite3.Connection:
    # Read-only first, so a backup never writes the live database; a WAL database whose -shm cannot be
    # created read-only falls back to an ordinary connection (what `sqlite3 .backup` uses).
    conn = None
    try:
        conn = sqlite3.connect(_uri(src, mode="ro"), uri=True, timeout=busy_timeout)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error:
        if conn is not None:
            conn.close()  # a descriptor left open would confuse the check of what SQLite opened
        # mode=rw: never create a file where the database was (moved away, or a link planted in its place)
        return sqlite3.connect(_uri(src, mode="rw"), uri=True, timeout=busy_timeout)


def selected_database(src: str) -> os.stat_result:
    """The lstat of the database file ``src`` as given: a symlink is refused, never followed."""
    try:
        info = os.lstat(src)
    except OSError as error:
        raise BackupError("%s is not a SQLite database this run can read (%s); check the path"
                          % (src, error.strerror)) from None
    if stat.S_ISLNK(info.st_mode):
        raise BackupError("database %s is a symlink; give the database's own path (a backup never follows a link "
                          "someone else may have planted)" % src)
    return info


def _open_descriptors() -> set:
    """(descriptor, device, inode) of each file open in this process now (None without /proc); the one listing
    /proc is left out. With the inode, a number another thread closed and SQLite reused still counts as new."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    open_now = set()
    for name in names:
        try:
            info = os.fstat(int(name))
        except OSError:
            continue
        open_now.add((int(name), info.st_dev, info.st_ino))
    return open_now


def _check_opened(src: str, expected: os.stat_result, before) -> None:
    """Refuse a snapshot unless SQLite read the selected inode: a path swapped for a symlink between our check
    and SQLite's open() would otherwise put another (root-only) database in the backup."""
    after = _open_descriptors()
    if before is None or after is None:  # no /proc: the path must still be the selected file
        if not _nofollow.same_file(os.lstat(src), expected):
            raise _nofollow.Replaced("database %s was replaced while it was snapshotted" % src)
        return
    real = os.path.realpath(src)
    siblings = {real + suffix for suffix in SIDE_FILE_SUFFIXES}
    found = False
    for fd, _dev, _ino in sorted(after - before):
        try:
            info = os.fstat(fd)
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if _nofollow.same_file(info, expected):
            found = True
        elif target not in siblings:
            raise _nofollow.Replaced("database %s was swapped while it was snapshotted: SQLite opened %s" % (src, target))
    if not found:
        raise _nofollow.Replaced("database %s was replaced while it was snapshotted" % src)


def _still_selected(path: str, expected: os.stat_result) -> bool:
    try:
        return _nofollow.same_file(os.lstat(path), expected)
    except OSError:
        return False


def snapshot(src: str, dest: str, busy_timeout: float = 30.0, expected: os.stat_result = None) -> dict:
    """Copy the live database ``src`` to the new file ``dest`` as one consistent point in time.

    All pages are copied in one backup step, so the copy is one read transaction: in WAL mode writers go on
    committing meanwhile, and their commits cannot restart the copy. ``expected`` is the lstat taken when the
    database was selected: the snapshot is of that inode or it fails (never of a symlink's target).
    """
    expected = expected or selected_database(src)
    try:
        with _nofollow.open_regular(src, expected) as handle:  # Replaced when it is no longer what was selected
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise BackupError("cannot open database %s: %s; check that it is readable" % (src, error.strerror)) \
            from None
    if header != SQLITE_HEADER:
        raise BackupError("%s is not a SQLite database (no SQLite header); remove it from databases" % src)
    started = time.monotonic()
    before = _open_descriptors()
    try:
        source = _open_source(src, busy_timeout)
    except sqlite3.Error as error:
        if not _still_selected(src, expected):  # moved or swapped between the check above and SQLite's own open
            raise _nofollow.Replaced("database %s was moved or replaced while it was being opened (%s)"
                                     % (src, error)) from None
        raise BackupError("cannot open database %s: %s; check that it exists and is readable" % (src, error)) \
            from error
    try:
        journal_mode = source.execute("PRAGMA journal_mode").fetchone()[0]
        target = sqlite3.connect(dest)
        try:
            target.execute("PRAGMA synchronous=OFF")
            source.backup(target, pages=-1)
        finally:
            target.close()
        _check_opened(src, expected, before)
    except sqlite3.Error as error:
        raise BackupError("snapshot of %s failed: %s; check that the database is readable and not locked "
                          "by a long exclusive transaction" % (src, error)) from error
    finally:
        source.close()
    facts = database_facts(dest)
    facts["journal_mode"] = journal_mode
    facts["snapshot_seconds"] = round(time.monotonic() - started, 3)
    return facts


def database_facts(path: str) -> dict:
    """Page size and page count, read from the file header and size (no connection needed)."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if header[:16] != SQLITE_HEADER:
        raise BackupError("%s is not a SQLite database" % path)
    page_size = int.from_bytes(header[16:18], "big")
    if page_size == 1:
        page_size = 65536
    size = os.path.getsize(path)
    return {"page_size": page_size, "page_count": size // page_size if page_size else 0, "size": size}


def check_integrity(path: str, level: str = "quick") -> str:
    """Run ``PRAGMA quick_check`` or ``integrity_check`` on a snapshot; returns ``ok`` or SQLite's findings.

    The file is opened immutable and read-only, so no -wal or -shm file is created beside it.
    """
    if level == "none":
        return "skipped"
    if level not in INTEGRITY_LEVELS:
        raise BackupError("integrity must be one of %s, not %r" % (", ".join(INTEGRITY_LEVELS), level))
    pragma = "quick_check" if level == "quick" else "integrity_check"
    try:
        conn = sqlite3.connect(_uri(path, mode="ro", immutable="1"), uri=True)
        try:
            rows = conn.execute("PRAGMA %s" % pragma).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        return "error: %s" % error
    return "; ".join(str(row[0]) for row in rows) or "error: no result"


def snapshot_file(src: str, dest: str, integrity: str = "quick") -> dict:
    """The guide's quick database backup (`sqlite3 DB ".backup FILE"` then `PRAGMA integrity_check`), done safely:
    the snapshot is checked before it is renamed into place at ``dest`` (0600), and a damaged one is not kept."""
    if integrity not in INTEGRITY_LEVELS:
        raise BackupError("integrity must be one of %s, not %r" % (", ".join(INTEGRITY_LEVELS), integrity))
    started = time.monotonic()
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise BackupError("the folder of dest %s does not exist; create it first" % dest)
    tmp = _fs.temp_path(directory, os.path.basename(dest))
    try:
        facts = snapshot(src, tmp)
        verdict = check_integrity(tmp, integrity)
        if verdict not in ("ok", "skipped"):
            raise BackupError("the snapshot of %s failed its integrity check (%s); it was not kept. The live "
                              "database is damaged: restore it from an earlier backup" % (src, verdict))
        os.chmod(tmp, _fs.PRIVATE_FILE_MODE)
        sha256 = _fs.sha256_file(tmp)
        _fs.fsync_file(tmp)
        os.replace(tmp, dest)
        _fs.fsync_dir(directory)
    except OSError as error:
        raise _fs.as_backup_error(error, dest) from error
    finally:
        _fs.remove_quietly(tmp)
    facts.pop("snapshot_seconds", None)
    return dict(facts, dest=dest, sha256=sha256, integrity=verdict, duration=round(time.monotonic() - started, 3))
