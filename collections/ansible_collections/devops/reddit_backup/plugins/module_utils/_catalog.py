# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup directory: its layout, backup names, and listing backups from their sidecars (never decompressing)."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone

from ._compress import ARCHIVE_SUFFIXES
from ._errors import BackupError
from ._fs import TEMP_PREFIX, remove_quietly, remove_stale_temps
from ._verdict import VERDICT_SUFFIX, summary as verdict_summary

TYPES = ("full", "incremental", "config", "database")
TYPE_DIRS = {"full": "daily", "incremental": "incremental", "config": "config", "database": "database"}
NAMED_DIR = "manual"
NAME_PREFIXES = {"full": "backup", "incremental": "incremental", "config": "config", "database": "database"}
SUBDIRS = tuple(TYPE_DIRS.values()) + (NAMED_DIR,)
CHECKSUM_SUFFIX = ".sha256"
META_SUFFIX = ".meta.json"
INDEX_SUFFIX = ".index.json"  # the state a chain builds on (see _chain)
SIDECAR_SUFFIXES = (CHECKSUM_SUFFIX, META_SUFFIX, INDEX_SUFFIX, VERDICT_SUFFIX)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STAMP_FORMAT = "%Y%m%d_%H%M%S"


def archive_suffix(filename: str):
    """The archive suffix of ``filename`` (longest first), or None if it is not an archive name."""
    for suffix in ARCHIVE_SUFFIXES:  # longest first: .tar.zst.age before .tar.zst
        if filename.endswith(suffix):
            return suffix
    return None


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or "") or archive_suffix(name):
        raise BackupError("backup name %r is not usable: use letters, digits, '.', '_' and '-' (at most 128, "
                          "no archive suffix), such as pre-maintenance-20250528" % name)
    return name


def new_archive_path(backup_dir: str, backup_type: str, name, suffix: str, created: datetime) -> tuple:
    """(path, name) of a new backup. Named backups go to manual/ under their name; others to their type's folder
    as <prefix>_<UTC stamp>, with -2, -3 ... when two runs share a second."""
    if name:
        path = os.path.join(backup_dir, NAMED_DIR, check_name(name) + suffix)
        if any(os.path.lexists(os.path.join(backup_dir, NAMED_DIR, name + other)) for other in ARCHIVE_SUFFIXES):
            raise BackupError("a backup named %s already exists (%s); choose another name or remove that backup "
                              "first" % (name, path))
        return path, name
    stem = "%s_%s" % (NAME_PREFIXES[backup_type], created.astimezone(timezone.utc).strftime(STAMP_FORMAT))
    candidate, counter = stem, 1
    while any(os.path.lexists(os.path.join(backup_dir, TYPE_DIRS[backup_type], candidate + other))
              for other in ARCHIVE_SUFFIXES):
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
        with open(path, encoding="utf-8") as handle:
            line = handle.readline()
    except OSError as error:
        raise BackupError("checksum sidecar %s is missing or unreadable (%s); the backup is incomplete"
                          % (path, error.strerror)) from error
    fields = line.split()
    if len(fields) != 2 or not re.match(r"^[0-9a-f]{64}$", fields[0]) \
            or fields[1].lstrip("*") != os.path.basename(archive):
        raise BackupError("checksum sidecar %s is malformed; expected '<sha256>  %s'" % (path, os.path.basename(archive)))
    return fields[0]


def remove_incomplete(backup_dir: str) -> list:
    """Remove what killed runs left: temp files, and sidecars whose archive never arrived. Hold the lock."""
    removed = remove_stale_temps(backup_dir)
    for subdir in SUBDIRS:
        folder = os.path.join(backup_dir, subdir)
        removed += remove_stale_temps(folder)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            for sidecar in SIDECAR_SUFFIXES:
                if name.endswith(sidecar) and not os.path.exists(os.path.join(folder, name[: -len(sidecar)])):
                    remove_quietly(os.path.join(folder, name))
                    removed.append(os.path.join(folder, name))
    return removed


def _entry(folder: str, filename: str):
    archive = os.path.join(folder, filename)
    checksum_path, meta_path = sidecar_paths(archive)
    if not (os.path.exists(checksum_path) and os.path.exists(meta_path)):
        return None  # not a complete backup: never listed
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    return {
        "archive": archive,
        "type": meta.get("type"),
        "name": meta.get("name"),
        "created": meta.get("created"),
        "size": meta.get("size"),
        "sha256": meta.get("sha256"),
        "parent": meta.get("parent"),
        "depth": meta.get("depth") or 0,
        "host": meta.get("host"),
        "files": meta.get("files"),
        "bytes": meta.get("bytes"),
        "compression": meta.get("compression"),
        "named": os.path.basename(folder) == NAMED_DIR,
        "databases": [{"path": db.get("path"), "integrity": db.get("integrity"), "sha256": db.get("sha256")}
                      for db in meta.get("databases", [])],
        "verified": verdict_summary(archive, meta.get("sha256")),
    }


def list_backups(backup_dir: str) -> list:
    """Every complete backup in ``backup_dir``, oldest first (by creation time, then name)."""
    backups = []
    for subdir in SUBDIRS:
        folder = os.path.join(backup_dir, subdir)
        if not os.path.isdir(folder):
            continue
        for filename in os.listdir(folder):
            if filename.startswith(TEMP_PREFIX) or archive_suffix(filename) is None:
                continue
            entry = _entry(folder, filename)
            if entry is not None:
                backups.append(entry)
    backups.sort(key=lambda backup: (backup["created"] or "", backup["archive"]))
    _mark_restorable(backups)
    return backups


def _mark_restorable(backups: list) -> None:
    """``restorable``: every link of the backup's chain is present (a full backup always is)."""
    names = {backup["name"] for backup in backups}
    restorable = {}
    for backup in backups:  # oldest first, so a parent is decided before its children
        parent = backup["parent"]
        backup["restorable"] = parent is None or (parent in names and restorable.get(parent, False))
        restorable[backup["name"]] = backup["restorable"]


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
    candidates = [b for b in backups if backup_type is None or b["type"] == backup_type]
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
        latest[backup["type"]] = backup
        counts = by_type.setdefault(backup["type"], {"count": 0, "bytes": 0})
        counts["count"] += 1
        counts["bytes"] += backup["size"] or 0
    return {"latest": latest, "totals": {"count": len(backups), "bytes": sum(b["size"] or 0 for b in backups),
                                         "by_type": by_type},
            "recovery_points": [{"created": b["created"], "name": b["name"], "type": b["type"]}
                                for b in backups if b.get("restorable", True)]}
