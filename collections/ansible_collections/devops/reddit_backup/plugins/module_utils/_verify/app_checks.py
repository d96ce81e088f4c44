# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guide's ``verify-restore`` on an application tree in place (after a restore, or in a recovery drill's
temporary folder): every SQLite database through ``PRAGMA integrity_check``, the configuration files through the
same parsers the archive verification uses (``_config_checks``, nothing executed), and the paths that must be
there. Read-only; nothing under the tree is followed through a symlink. Returns checks shaped as backup_verify's
(name, status passed/failed/skipped, detail)."""

from __future__ import annotations

import os
import sqlite3
import stat
from urllib.parse import quote

from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.config_checks import (
    CONFIG_DIRS, TEXT_LIMIT, checker_for,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import CONTROL_CHARACTERS
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.sqlite import SQLITE_HEADER

DATABASE_DIR = "data"
DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def _regular_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_sqlite(path: str) -> bool:
    if not _regular_file(path):
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def find_databases(app_root: str) -> list:
    """Relative paths of the SQLite databases under ``data/`` (regular files with SQLite's header), sorted."""
    found = []
    top = os.path.join(app_root, DATABASE_DIR)
    if os.path.islink(top):  # a data/ that points elsewhere is not the restored tree
        return found
    for folder, dirs, files in os.walk(top):  # os.walk never descends into a symlinked folder
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(DATABASE_SUFFIXES) and _is_sqlite(path):
                found.append(os.path.relpath(path, app_root))
    return sorted(found)


def integrity(path: str) -> str:
    """``PRAGMA integrity_check`` read-only: ``ok`` or SQLite's findings. With a ``-wal`` beside it the log is read
    too (its committed pages are part of the database); without, the file is opened immutable, so no ``-shm`` or
    ``-wal`` is created in the tree."""
    params = "mode=ro" if os.path.exists(path + "-wal") else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect("file:%s?%s" % (quote(os.path.abspath(path)), params), uri=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        return "error: %s" % error
    return "; ".join(str(row[0]) for row in rows) or "error: no result"


def check_database(app_root: str, relative: str) -> dict:
    path = os.path.join(app_root, relative)
    name = "database:%s" % relative
    if not _is_sqlite(path):
        detail = "%s is not a SQLite database (missing, not a regular file, or no SQLite header)" % path
        return {"name": name, "status": "failed", "detail": detail}
    verdict = integrity(path)
    return {"name": name, "status": "passed" if verdict == "ok" else "failed",
            "detail": "PRAGMA integrity_check: %s" % verdict}


def config_files(app_root: str) -> list:
    """Relative paths of the configuration files a checker exists for (config/, monitoring/, systemd/), sorted."""
    found = []
    for top in CONFIG_DIRS:
        folder_path = os.path.join(app_root, top.rstrip("/"))
        if os.path.islink(folder_path):  # a configuration folder that points elsewhere is not the restored tree
            continue
        for folder, dirs, files in os.walk(folder_path):
            dirs.sort()
            for name in sorted(files):
                relative = os.path.relpath(os.path.join(folder, name), app_root)
                if checker_for(relative) is not None:
                    found.append(relative)
    return found


def check_config(app_root: str, relative: str) -> dict:
    path = os.path.join(app_root, relative)
    name = "config:%s" % relative
    if not _regular_file(path):
        return {"name": name, "status": "failed", "detail": "%s is not a regular file" % path}
    if os.lstat(path).st_size > TEXT_LIMIT:
        return {"name": name, "status": "skipped", "detail": "skipped: larger than %d bytes" % TEXT_LIMIT}
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        return {"name": name, "status": "failed", "detail": "cannot read %s: %s" % (path, error.strerror)}
    status, detail = checker_for(relative)(data)
    return {"name": name, "status": status, "detail": detail}


def check_required(app_root: str, relative: str) -> dict:
    present = os.path.lexists(os.path.join(app_root, relative))
    return {"name": "required:%s" % relative, "status": "passed" if present else "failed",
            "detail": "present" if present else "%s is missing" % os.path.join(app_root, relative)}


def verify_app(app_root: str, databases=None, config: bool = True, required=()) -> dict:
    """Check the application at ``app_root``: ``databases`` (relative paths; None finds them under data/),
    the configuration files when ``config``, and the ``required`` paths. ``valid`` is true when nothing failed."""
    if not os.path.isdir(app_root):
        raise BackupError("app_root %s is not a directory: give the application directory to check" % app_root)
    for relative in list(databases or []) + list(required):
        if not isinstance(relative, str) or not relative.strip("/") or CONTROL_CHARACTERS.search(relative) \
                or os.path.isabs(relative) or ".." in relative.split("/"):
            raise BackupError("%r must be a path inside app_root, relative to it, without control characters (such "
                              "as data/app.db)" % (relative,))
    chosen = find_databases(app_root) if databases is None else list(databases)
    checks = [check_required(app_root, relative) for relative in required]
    checks += [check_database(app_root, relative) for relative in chosen]
    if config:
        checks += [check_config(app_root, relative) for relative in config_files(app_root)]
    errors = ["%s: %s" % (check["name"], check["detail"]) for check in checks if check["status"] == "failed"]
    return {"valid": not errors, "app_root": app_root, "databases": chosen, "checks": checks, "errors": errors}
