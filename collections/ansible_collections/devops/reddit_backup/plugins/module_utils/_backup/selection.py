# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which files a backup takes: the guide's include/exclude rules and database detection."""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass, field

from ansible_collections.devops.reddit_backup.plugins.module_utils import _nofollow
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.safety import is_safety_copy
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.sqlite import (
    SIDE_FILE_SUFFIXES, is_sqlite_file,
)

# The guide's full-backup excludes: tar --exclude='backups' --exclude='logs/*.log.*' --exclude='venv'
# --exclude='__pycache__'.
DEFAULT_EXCLUDES = ("backups", "logs/*.log.*", "venv", "__pycache__")
# The guide's configuration backup: config/, systemd/ and the two Prometheus files.
CONFIG_INCLUDES = ("config", "systemd", "monitoring/alerting_rules.yml", "monitoring/prometheus_config.yml")
DATABASE_DIR = "data"
LITESTREAM_STATE_SUFFIX = "-litestream"
TYPES_WITH_DATABASES = ("full", "database")


@dataclass
class Entry:
    """One thing to archive: ``path`` relative to the app root, ``kind`` file, dir or symlink."""

    path: str
    source: str
    kind: str
    stat: os.stat_result
    database: bool = False


@dataclass
class Selection:
    entries: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def databases(self) -> list:
        return [entry for entry in self.entries if entry.database]


def is_excluded(path: str, patterns) -> bool:
    """tar's --exclude: a pattern with a slash matches the path from the app root (or a parent of it); one
    without matches any single path component."""
    parts = path.split("/")
    for pattern in patterns:
        pattern = pattern.strip("/")
        if "/" in pattern:
            if any(fnmatch.fnmatchcase("/".join(parts[:depth]), pattern) for depth in range(1, len(parts) + 1)):
                return True
        elif any(fnmatch.fnmatchcase(part, pattern) for part in parts):
            return True
    return False


def default_includes(backup_type: str) -> tuple:
    if backup_type == "config":
        return CONFIG_INCLUDES
    if backup_type == "database":
        return ()
    return (".",)


def _relative(app_root: str, path: str) -> str:
    absolute = os.path.normpath(os.path.join(app_root, path))
    relative = os.path.relpath(absolute, app_root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        raise BackupError("%s is outside app_root %s; list paths relative to the app root" % (path, app_root))
    return "." if relative == os.curdir else relative


def _entry(app_root: str, relative: str, info: os.stat_result = None) -> Entry:
    source = os.path.join(app_root, relative)
    info = info or _nofollow.lstat_in(app_root, relative)
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "dir"
    elif stat.S_ISREG(info.st_mode):
        kind = "file"
    else:
        kind = "special"
    return Entry(path=relative.replace(os.sep, "/"), source=source, kind=kind, stat=info)


def _walk(app_root: str, start: str, excludes, selection: Selection, seen: set) -> None:
    stack = [(start, None)]
    while stack:
        relative, info = stack.pop()
        if relative in seen:
            continue
        entry = _entry(app_root, relative, info)
        if relative != "." and (is_excluded(entry.path, excludes) or _is_safety_copy(entry.path)):
            continue
        seen.add(relative)
        if entry.kind == "special":
            selection.warnings.append("%s skipped: sockets, FIFOs and devices are not backed up" % entry.path)
            continue
        if entry.path.endswith(SIDE_FILE_SUFFIXES) and is_sqlite_file(entry.source[: entry.source.rfind("-")]):
            continue  # a live database's -wal/-shm/-journal: the snapshot already holds what they hold
        if entry.kind == "dir" and _is_replication_state(entry.source):
            continue
        if relative != ".":
            selection.entries.append(entry)
        if entry.kind == "dir":
            try:
                children = _list_dir(app_root, entry)
            except _nofollow.Replaced as error:
                selection.warnings.append("%s: its contents were left out of this backup" % error)
                continue
            stack.extend((os.path.normpath(os.path.join(relative, name)), child) for name, child in children)


def _is_replication_state(source: str) -> bool:
    """Litestream's local state beside a live database (``.<name>-litestream/``: a whole copy of the database and
    the transactions not yet shipped): the replica is its own backup, and a restored copy would only mislead the
    Litestream started after a restore, which begins afresh from the restored database."""
    folder, name = os.path.split(source)
    if not (name.startswith(".") and name.endswith(LITESTREAM_STATE_SUFFIX)):
        return False
    return is_sqlite_file(os.path.join(folder, name[1:-len(LITESTREAM_STATE_SUFFIX)]))


def _is_safety_copy(path: str) -> bool:
    """What a restore moved aside is never backed up, whatever the include/exclude options say: it would come back
    with every full restore."""
    return is_safety_copy(os.path.basename(path), top_level="/" not in path)


def _list_dir(app_root: str, entry: Entry) -> list:
    """[(name, lstat)] of the selected directory ``entry``, read through a descriptor reached without following a
    symlink and checked to be the selected directory, so a directory swapped for a link cannot pull a tree in."""
    try:
        fd = _nofollow.open_dir(app_root, entry.path, entry.stat)
    except PermissionError:
        raise BackupError("cannot list %s: permission denied; fix its mode or exclude it" % entry.source) from None
    try:
        names = sorted(os.listdir(fd), reverse=True)
        children = []
        for name in names:
            try:
                children.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
            except FileNotFoundError:
                continue  # removed since the listing: nothing to back up
        return children
    finally:
        os.close(fd)


def select(app_root: str, backup_type: str, include=None, exclude=None, databases=None,
           backup_dir: str = None) -> Selection:
    """Walk ``app_root`` and return what a ``backup_type`` backup takes, in a stable order."""
    if not os.path.isdir(app_root):
        raise BackupError("app_root %s does not exist or is not a directory; check the path (for a new server, "
                          "restore into it instead of backing it up)" % app_root)
    app_root = os.path.abspath(app_root)
    excludes = list(DEFAULT_EXCLUDES if exclude is None else exclude)
    if backup_dir:
        inside = os.path.relpath(os.path.abspath(backup_dir), app_root)
        if not inside.startswith(os.pardir):
            excludes.append(inside.replace(os.sep, "/"))  # never back up the backups
    selection = Selection()
    seen: set = set()
    for path in (default_includes(backup_type) if include is None else include):
        relative = _relative(app_root, path)
        if not os.path.lexists(os.path.join(app_root, relative)):
            selection.missing.append(path)
            continue
        try:
            if relative != ".":
                _add_parents(app_root, relative, selection, seen)
            _walk(app_root, relative, excludes, selection, seen)
        except _nofollow.Replaced as error:
            selection.warnings.append("%s skipped: %s" % (path, error))
    if backup_type in TYPES_WITH_DATABASES:
        _mark_databases(app_root, selection, databases, seen)
    _check_readable(selection)
    return selection


def _add_parents(app_root: str, relative: str, selection: Selection, seen: set) -> None:
    parts = relative.split(os.sep)[:-1]
    for depth in range(1, len(parts) + 1):
        parent = os.sep.join(parts[:depth])
        if parent not in seen:
            seen.add(parent)
            selection.entries.append(_entry(app_root, parent))


def _mark_databases(app_root: str, selection: Selection, databases, seen: set) -> None:
    by_path = {entry.path: entry for entry in selection.entries}
    if databases is None:
        found = [entry for entry in selection.entries
                 if entry.kind == "file" and (entry.path + "/").startswith(DATABASE_DIR + "/")
                 and is_sqlite_file(entry.source, entry.stat)]
        if not found and _is_real_dir(app_root, DATABASE_DIR) \
                and not any(e.path == DATABASE_DIR for e in selection.entries):
            # database backups take only the databases: find them under data/ without taking the rest.
            under_data = Selection()
            _walk(app_root, DATABASE_DIR, (), under_data, set())
            found = [entry for entry in under_data.entries
                     if entry.kind == "file" and is_sqlite_file(entry.source, entry.stat)]
        wanted = found
    else:
        wanted = []
        for path in databases:
            relative = _relative(app_root, path)
            source = os.path.join(app_root, relative)
            info = _lstat_or_none(app_root, relative)
            if info is None or not stat.S_ISREG(info.st_mode):
                raise BackupError("database %s does not exist under app_root %s as a regular file reached without "
                                  "symlinks; fix the databases option" % (path, app_root))
            if not is_sqlite_file(source, info):
                raise BackupError("%s is not a SQLite database (no SQLite header); remove it from databases"
                                  % path)
            wanted.append(by_path.get(relative.replace(os.sep, "/")) or _entry(app_root, relative, info))
    for entry in wanted:
        entry.database = True
        if entry.path not in by_path:
            _add_parents(app_root, entry.path, selection, seen)
            selection.entries.append(entry)
            by_path[entry.path] = entry


def _lstat_or_none(app_root: str, relative: str):
    try:
        return _nofollow.lstat_in(app_root, relative)
    except _nofollow.Replaced:
        return None


def _is_real_dir(app_root: str, relative: str) -> bool:
    info = _lstat_or_none(app_root, relative)
    return info is not None and stat.S_ISDIR(info.st_mode)


def _still_there(entry: Entry) -> bool:
    """False for a file moved or replaced since its selection: reading leaves it out (with a warning) then."""
    try:
        return _nofollow.same_file(os.lstat(entry.source), entry.stat)
    except OSError:
        return False


def _check_readable(selection: Selection) -> None:
    unreadable = [entry.path for entry in selection.entries
                  if entry.kind == "file" and not os.access(entry.source, os.R_OK) and _still_there(entry)]
    if unreadable:
        raise BackupError("cannot read %s under the app root (permission denied); fix their modes, run as their "
                          "owner, or exclude them" % ", ".join(unreadable[:10]))
