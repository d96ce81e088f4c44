# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup directory: its layout, backup names, and listing backups from their sidecars (never decompressing)."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import datetime, timedelta, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.compress import ARCHIVE_SUFFIXES
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import TEMP_PREFIX
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.sshsig import (
    SIGNATURE_SUFFIX, signature_summary,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.verdict import (
    VERDICT_SUFFIX, summary as verdict_summary,
)

TYPES = ("full", "incremental", "config", "database")
TYPE_DIRS = {"full": "daily", "incremental": "incremental", "config": "config", "database": "database"}
NAMED_DIR = "manual"
NAME_PREFIXES = {"full": "backup", "incremental": "incremental", "config": "config", "database": "database"}
SUBDIRS = tuple(TYPE_DIRS.values()) + (NAMED_DIR,)
CHECKSUM_SUFFIX = ".sha256"
META_SUFFIX = ".meta.json"
INDEX_SUFFIX = ".index.json"  # the state a chain builds on (see _chain)
SIDECAR_SUFFIXES = (CHECKSUM_SUFFIX, META_SUFFIX, SIGNATURE_SUFFIX, INDEX_SUFFIX, VERDICT_SUFFIX)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # used with fullmatch: no trailing newline
AUTOMATIC_NAME = re.compile(r"(backup|incremental|config|database)_\d{8}_\d{6}(-\d+)?")
STAMP_FORMAT = "%Y%m%d_%H%M%S"
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
# Sidecars are small; a larger one (or a FIFO, a device, a link) is not one this tool wrote and is never read.
META_LIMIT = 4 << 20
CHECKSUM_LIMIT = 4 << 10
INDEX_LIMIT = 1 << 30  # a state index names every file and every database page: large trees need room


def archive_suffix(filename: str):
    """The archive suffix of ``filename`` (longest first), or None if it is not an archive name."""
    for suffix in ARCHIVE_SUFFIXES:  # longest first: .tar.zst.age before .tar.zst
        if filename.endswith(suffix):
            return suffix
    return None


def check_backup_name(name) -> str:
    """The name of an existing backup someone asked for: the strict character set (no newline, no slash), no
    archive suffix."""
    if not isinstance(name, str) or not is_valid_stem(name):
        raise BackupError("backup name %r is not usable: use 1 to 128 letters, digits, '.', '_' and '-', starting with "
                          "a letter or digit (no spaces, newlines or slashes, no archive suffix), such as "
                          "pre-maintenance-20250528" % (name,))
    return name


def check_name(name) -> str:
    """A name for a new named backup: as check_backup_name, and not of the automatic names' form (so a named
    backup can never pass for an automatic one)."""
    check_backup_name(name)
    if AUTOMATIC_NAME.fullmatch(name):
        raise BackupError("backup name %r has the form of the names automatic backups get (%s_YYYYmmdd_HHMMSS); "
                          "choose another name, such as pre-maintenance-%s" % (name, name.split("_")[0],
                                                                               name.split("_")[1]))
    return name


def is_valid_stem(stem: str) -> bool:
    """A file name stem the catalog accepts: what check_name allows, or an automatic name."""
    return bool(NAME_PATTERN.fullmatch(stem)) and not archive_suffix(stem)


def _taken(backup_dir: str, stem: str) -> str:
    """The path of a backup (or half-made one) called ``stem`` in any folder of ``backup_dir``, or None."""
    for subdir in SUBDIRS:
        for suffix in ARCHIVE_SUFFIXES:
            for extra in ("",) + SIDECAR_SUFFIXES:
                path = os.path.join(backup_dir, subdir, stem + suffix + extra)
                if os.path.lexists(path):
                    return path
    return None


def new_archive_path(backup_dir: str, backup_type: str, name, suffix: str, created: datetime) -> tuple:
    """(path, name) of a new backup. Named backups go to manual/ under their name; others to their type's folder
    as <prefix>_<UTC stamp>, with -2, -3 ... when two runs share a second. A name is unique across every folder,
    so a name always means one backup."""
    if name:
        path = os.path.join(backup_dir, NAMED_DIR, check_name(name) + suffix)
        existing = _taken(backup_dir, name)
        if existing:
            raise BackupError("a backup named %s already exists (%s); choose another name or remove that backup "
                              "first" % (name, existing))
        return path, name
    stem = "%s_%s" % (NAME_PREFIXES[backup_type], created.astimezone(timezone.utc).strftime(STAMP_FORMAT))
    candidate, counter = stem, 1
    while _taken(backup_dir, candidate):
        counter += 1
        candidate = "%s-%d" % (stem, counter)
    return os.path.join(backup_dir, TYPE_DIRS[backup_type], candidate + suffix), candidate


def sidecar_paths(archive: str) -> tuple:
    return archive + CHECKSUM_SUFFIX, archive + META_SUFFIX


def checksum_line(sha256: str, archive: str) -> bytes:
    """The `.sha256` sidecar: `sha256sum -c` format, so an operator can check it by hand."""
    return ("%s  %s\n" % (sha256, os.path.basename(archive))).encode()


def read_checksum(archive: str) -> str:
    """The sha256 recorded in the archive's sidecar; raises BackupError when it is missing or malformed."""
    path = archive + CHECKSUM_SUFFIX
    try:
        line = _fs.read_regular(path, CHECKSUM_LIMIT, what="checksum sidecar").decode("utf-8", "replace")
    except OSError as error:
        raise BackupError("checksum sidecar %s is missing or unreadable (%s); the backup is incomplete"
                          % (path, error.strerror)) from error
    fields = line.split("\n")[0].split()
    if len(fields) != 2 or not re.match(r"^[0-9a-f]{64}$", fields[0]) \
            or fields[1].lstrip("*") != os.path.basename(archive):
        raise BackupError("checksum sidecar %s is malformed; expected '<sha256>  %s'" % (path, os.path.basename(archive)))
    return fields[0]


def remove_incomplete(backup_dir: str) -> list:
    """Remove what killed runs left: this tool's temp files, and sidecars whose archive never arrived. Works in
    the folders' descriptors, never through a symlink (a linked folder is refused). Hold the lock."""
    root = _fs.open_dir(backup_dir)
    try:
        removed = _fs.remove_stale_temps(backup_dir, root)
        for subdir in SUBDIRS:
            try:
                folder_fd = _fs.open_dir(subdir, dir_fd=root)
            except FileNotFoundError:
                continue
            try:
                removed += _remove_orphans(os.path.join(backup_dir, subdir), folder_fd)
            finally:
                os.close(folder_fd)
    finally:
        os.close(root)
    return removed


def _remove_orphans(folder: str, folder_fd: int) -> list:
    removed = _fs.remove_stale_temps(folder, folder_fd)
    names = set(os.listdir(folder_fd))
    for name in sorted(names):
        for sidecar in SIDECAR_SUFFIXES:
            stem = name[: -len(sidecar)]
            if name.endswith(sidecar) and archive_suffix(stem) and stem not in names \
                    and _is_regular_at(folder_fd, name):
                os.unlink(name, dir_fd=folder_fd)
                removed.append(os.path.join(folder, name))
    return removed


def _is_regular_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _meta_problem(meta, folder: str, stem: str):
    """Why a `.meta.json` cannot be trusted for the catalog (wrong shape, or it claims another backup), or None."""
    if not isinstance(meta, dict):
        return "its .meta.json is a JSON %s, not an object" % type(meta).__name__
    if meta.get("type") not in TYPES:
        return "its .meta.json names type %r, which this tool does not know" % (meta.get("type"),)
    if meta.get("name") != stem:
        return "its .meta.json names it %r, not %r as its file name does" % (meta.get("name"), stem)
    if os.path.basename(folder) not in (NAMED_DIR, TYPE_DIRS[meta["type"]]):
        return "its .meta.json says type %s, which does not belong in %s/" % (meta["type"], os.path.basename(folder))
    try:
        if not isinstance(meta.get("created"), str):
            raise BackupError("not a string")
        parse_time(meta["created"])
    except (BackupError, ValueError, OverflowError):
        return "its .meta.json has no readable creation time (%r)" % (meta.get("created"),)
    if not isinstance(meta.get("sha256"), str) or not SHA256_PATTERN.fullmatch(meta["sha256"]):
        return "its .meta.json has no sha256 of the archive"
    for key in ("parent_sha256",):
        if meta.get(key) is not None and (not isinstance(meta[key], str) or not SHA256_PATTERN.fullmatch(meta[key])):
            return "its .meta.json has a malformed %s" % key
    for key, kinds in (("size", int), ("depth", int), ("files", int), ("bytes", int), ("parent", str),
                       ("host", str), ("compression", str), ("databases", list)):
        if meta.get(key) is not None and (not isinstance(meta[key], kinds) or isinstance(meta[key], bool)):
            return "its .meta.json field %s is a %s, not a %s" % (key, type(meta[key]).__name__, kinds.__name__)
    if not all(isinstance(db, dict) for db in meta.get("databases") or []):
        return "its .meta.json lists databases that are not objects"
    return None


def read_entry(folder: str, filename: str, dir_fd: int = None, sidecars_only: bool = False):
    """The catalog entry of one archive, None when it is not a complete backup, or one marked ``damaged`` (with
    the reason) when its sidecar cannot be trusted: listed, never chosen, never built on, never pruned.
    ``sidecars_only``: the archive is elsewhere (a remote's sidecars fetched into a private folder)."""
    archive = os.path.join(folder, filename)
    where = (lambda name: name) if dir_fd is not None else (lambda name: os.path.join(folder, name))
    stem = filename[: -len(archive_suffix(filename))]
    try:
        for suffix in (CHECKSUM_SUFFIX, META_SUFFIX):
            info = os.stat(where(filename + suffix), dir_fd=dir_fd, follow_symlinks=False)
        if not sidecars_only:
            info = os.stat(where(filename), dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None  # not a complete backup: never listed
    problem = None
    meta = {}
    if not stat.S_ISREG(info.st_mode):
        problem = "the archive is not a regular file (a symbolic link, FIFO or device was planted)"
    elif not is_valid_stem(stem):
        problem = "its file name is not one this tool makes"
    else:
        try:
            meta = json.loads(_fs.read_regular(where(filename + META_SUFFIX), META_LIMIT, dir_fd,
                                               "catalog sidecar").decode("utf-8"))
            problem = _meta_problem(meta, folder, stem)
        except FileNotFoundError:
            return None
        except BackupError as error:
            problem = str(error)
        except (OSError, ValueError) as error:
            problem = "its .meta.json is unreadable or not JSON (%s)" % error
    if problem:
        return _damaged_entry(archive, folder, stem, info, problem)
    return {
        "archive": archive,
        "type": meta.get("type"),
        "name": meta.get("name"),
        "created": meta.get("created"),
        "size": meta.get("size"),
        "sha256": meta.get("sha256"),
        "parent": meta.get("parent"),
        "parent_sha256": meta.get("parent_sha256"),
        "depth": meta.get("depth") or 0,
        "host": meta.get("host"),
        "files": meta.get("files"),
        "bytes": meta.get("bytes"),
        "compression": meta.get("compression"),
        "named": os.path.basename(folder) == NAMED_DIR,
        "databases": [{"path": db.get("path"), "integrity": db.get("integrity"), "sha256": db.get("sha256")}
                      for db in meta.get("databases") or []],
        "verified": verdict_summary(archive, meta.get("sha256")),
        "damaged": None,
        **signature_summary(archive),  # untrusted: which key the signature names, not whether it is good
    }


def _damaged_entry(archive: str, folder: str, stem: str, info, problem: str) -> dict:
    created = datetime.fromtimestamp(info.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"archive": archive, "type": None, "name": stem, "created": created, "size": info.st_size,
            "sha256": None, "parent": None, "parent_sha256": None, "depth": 0, "host": None, "files": None,
            "bytes": None, "compression": None, "named": os.path.basename(folder) == NAMED_DIR, "databases": [],
            "verified": None, "restorable": False, "signed": False, "signature_key": None,
            "damaged": "%s: %s; it is listed but never chosen, built on or pruned: inspect it, then restore its "
                       "sidecars from a remote copy or remove it by hand" % (archive, problem)}


def list_backups(backup_dir: str) -> list:
    """Every complete backup in ``backup_dir``, oldest first (by creation time, then name). Read through the
    folders' descriptors; a folder replaced by a symlink is refused, and a damaged sidecar marks one entry."""
    backups = []
    try:
        root = _fs.open_dir(backup_dir)
    except FileNotFoundError:
        return backups
    try:
        for subdir in SUBDIRS:
            try:
                folder_fd = _fs.open_dir(subdir, dir_fd=root)
            except FileNotFoundError:
                continue
            except _fs.PermissionDenied:  # named, never silently left out: its backups are unknown to this user
                backups.append(_unreadable_folder(backup_dir, subdir, root))
                continue
            try:
                for filename in sorted(os.listdir(folder_fd)):
                    if filename.startswith(TEMP_PREFIX) or archive_suffix(filename) is None:
                        continue
                    entry = read_entry(os.path.join(backup_dir, subdir), filename, folder_fd)
                    if entry is not None:
                        backups.append(entry)
            finally:
                os.close(folder_fd)
    finally:
        os.close(root)
    backups.sort(key=lambda backup: (backup["created"] or "", backup["archive"]))
    mark_restorable(backups)
    return backups


def _unreadable_folder(backup_dir: str, subdir: str, root_fd: int) -> dict:
    """A damaged entry for a type folder this user cannot open: the backups in it are listed as unknown."""
    info = os.stat(subdir, dir_fd=root_fd, follow_symlinks=False)
    problem = _fs.unreadable_message("folder", subdir, root_fd).split(" ", 2)[2]
    return _damaged_entry(os.path.join(backup_dir, subdir), backup_dir, subdir + "/", info,
                          "the backups in it cannot be listed: it " + problem)


def healthy(backups: list) -> list:
    """The backups whose sidecars could be trusted: the only ones chosen, built on or restored."""
    return [backup for backup in backups if not backup.get("damaged")]


def find_link(backups: list, backup: dict):
    """(the backup ``backup`` builds on, or None; why it cannot be found, with a ``{where}`` placeholder for the
    folder, or None). By the parent's archive sha256
    when recorded (names are not proof), else by a name that must be unique."""
    if not backup.get("parent") and not backup.get("parent_sha256"):
        return None, None
    if backup.get("parent_sha256"):
        found = [b for b in healthy(backups) if b["sha256"] == backup["parent_sha256"]]
        if found:
            return found[0], None
        return None, "missing from {where} (no backup there has the sha256 %s it recorded)" % backup["parent_sha256"]
    found = [b for b in healthy(backups) if b["name"] == backup["parent"]]
    if len(found) == 1:
        return found[0], None
    if not found:
        return None, "missing from {where}"
    return None, "ambiguous in {where}: %d backups carry that name (%s)" % (
        len(found), ", ".join(b["archive"] for b in found))


def mark_restorable(backups: list) -> None:
    """``restorable``: every link of the backup's chain is present (a full backup always is), found by checksum."""
    restorable = {}
    for backup in backups:  # oldest first, so a parent is decided before its children
        if backup.get("damaged"):
            backup["restorable"] = False
            continue
        parent, _missing = find_link(backups, backup)
        has_parent = bool(backup.get("parent") or backup.get("parent_sha256"))
        backup["restorable"] = not has_parent or (parent is not None and restorable.get(id(parent), False))
        restorable[id(backup)] = backup["restorable"]


def parse_time(text, now: datetime = None) -> datetime:
    """A moment from ISO-8601 (`2025-05-28T14:00:00Z`, naive = UTC), `YYYYmmdd_HHMMSS`, epoch seconds, `now`,
    or `N minutes|hours|days|weeks ago`."""
    now = now or datetime.now(timezone.utc)
    value = str(text).strip()
    try:
        return _parse_moment(value, now)
    except (OverflowError, OSError, ValueError):  # a date past year 9999 or before year 1
        raise BackupError("the time %r is out of range (years 1 to 9999); give a real moment such as "
                          "2025-05-28T14:00:00Z or '6 hours ago'" % value) from None


def _parse_moment(value: str, now: datetime) -> datetime:
    relative = re.match(r"^(\d+)\s*(second|minute|hour|day|week)s?\s+ago$", value, re.IGNORECASE)
    if relative:
        return now - timedelta(**{relative.group(2).lower() + "s": int(relative.group(1))})
    if value.lower() == "now":
        return now
    if re.match(r"^\d+(\.\d+)?$", value):
        return datetime.fromtimestamp(float(value), timezone.utc)
    for form in (STAMP_FORMAT, "%Y%m%d"):
        try:
            return datetime.strptime(value, form).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise BackupError("cannot read the time %r; use ISO-8601 (2025-05-28T14:00:00Z), YYYYmmdd_HHMMSS, epoch "
                          "seconds or a phrase such as '6 hours ago'" % value) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)  # raises OverflowError at the ends of the calendar, here, not later


def choose(backups: list, before=None, name=None, backup_type=None, now: datetime = None):
    """The backup a restore or verify means: by ``name``, else the newest at or before ``before`` (of
    ``backup_type`` if given), else the newest. None when nothing matches."""
    candidates = [b for b in healthy(backups) if backup_type is None or b["type"] == backup_type]
    if name:
        named = [b for b in candidates if b["name"] == name or os.path.basename(b["archive"]) == name]
        return named[-1] if named else None
    if before is not None:
        limit = parse_time(before, now)
        candidates = [b for b in candidates if parse_time(b["created"]) <= limit]
    return candidates[-1] if candidates else None


def summarize(backups: list) -> dict:
    """Totals and the newest backup of each type."""
    latest = {}
    by_type = {}
    for backup in backups:
        if not backup.get("damaged"):
            latest[backup["type"]] = backup
        counts = by_type.setdefault("damaged" if backup.get("damaged") else backup["type"], {"count": 0, "bytes": 0})
        counts["count"] += 1
        counts["bytes"] += backup["size"] or 0
    return {"latest": latest, "totals": {"count": len(backups), "bytes": sum(b["size"] or 0 for b in backups),
                                         "by_type": by_type},
            "recovery_points": [{"created": b["created"], "name": b["name"], "type": b["type"]}
                                for b in backups if b.get("restorable", True)]}


def check_backup_dir(backup_dir, app_root: str = None) -> str:
    """The absolute path of a backup directory this tool may create, lock and tighten to 0700: never the
    filesystem's root, nor the app root or a folder above it (the backup would then hold itself, and the app root
    or a home folder would be closed to its owner)."""
    if not isinstance(backup_dir, str) or not backup_dir.strip() or "\0" in backup_dir:
        raise BackupError("backup_dir %r is not a usable path: give the absolute path of a folder for the backups, "
                          "such as /home/cayir/cicd_project/backups" % (backup_dir,))
    path = os.path.abspath(backup_dir)
    if path == os.path.abspath(os.sep):
        raise BackupError("backup_dir %s is the filesystem's root; give a folder of its own for the backups, such "
                          "as /home/cayir/cicd_project/backups" % backup_dir)
    if app_root is not None:
        root = os.path.abspath(app_root)
        if root == path or root.startswith(path.rstrip(os.sep) + os.sep):
            raise BackupError("backup_dir %s is the app root %s or a folder above it; give a folder of its own for "
                              "the backups, such as %s" % (backup_dir, app_root, os.path.join(root, "backups")))
    return path


def backup_dir_of(archive: str):
    """The backup directory ``archive`` lies in (its folder is one of the type folders), or None."""
    folder = os.path.dirname(os.path.abspath(archive))
    return os.path.dirname(folder) if os.path.basename(folder) in SUBDIRS else None


def pick_archive(archive=None, backup_dir=None, before=None, name=None, types=None, now=None) -> str:
    """The archive a verify or restore means: ``archive`` itself, or from ``backup_dir`` the backup called
    ``name``, else the newest at or before ``before``, else the newest (of ``types`` when given)."""
    if archive:
        if backup_dir or before or name:
            raise BackupError("give either archive, or backup_dir with before or name; not both")
        return os.path.abspath(archive)
    if not backup_dir:
        raise BackupError("give archive (a backup archive's path), or backup_dir to pick a backup from")
    backups = [b for b in list_backups(backup_dir) if types is None or b["type"] in types]
    chosen = choose(backups, before=before, name=name, now=now)
    if chosen is None:
        wanted = []
        if name:
            wanted.append("named %s" % name)
        if before is not None:
            wanted.append("made at or before %s" % _manifest.utc_timestamp(parse_time(before, now)))
        raise BackupError("no complete %sbackup %sin %s; list the backups with backup_info"
                          % ("/".join(types) + " " if types else "", " ".join(wanted) + " " if wanted else "",
                             backup_dir))
    return chosen["archive"]


def read_meta(archive: str):
    """The archive's `.meta.json` catalog entry, or None. Only a plan: everything in it is checked again."""
    try:
        meta = json.loads(_fs.read_regular(archive + META_SUFFIX, META_LIMIT).decode("utf-8"))
    except (OSError, ValueError, BackupError):
        return None
    return meta if isinstance(meta, dict) else None


def meta_database_paths(meta):
    """The database paths a catalog entry names, or None when it names none reliably."""
    if not meta or not isinstance(meta.get("databases"), list):
        return None
    paths = [db.get("path") for db in meta["databases"] if isinstance(db, dict)]
    return paths if all(isinstance(path, str) for path in paths) else None
