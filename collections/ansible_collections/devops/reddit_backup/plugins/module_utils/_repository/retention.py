# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: which backups a policy keeps, and removing the rest without ever breaking a kept chain."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import READERS_NAME, DirectoryLock

CATEGORIES = _catalog.TYPES + ("manual",)  # manual: the named backups, whatever their type
# The guide's retention table; manual (named) backups are kept until someone removes them on purpose.
DEFAULT_POLICY = {"full": {"keep_within": "30d"}, "incremental": {"keep_within": "7d"},
                  "config": {"keep_within": "90d"}, "database": {"keep_within": "24h"}, "manual": {}}
RULES = ("keep_within", "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
DURATION = re.compile(r"^\s*(\d+)\s*([smhdwy])\s*$")
MAX_DURATION_SECONDS = 1000 * 365 * 86400  # keep_within beyond this reaches before year 1
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
# The buckets of the grandfather-father-son rules: the newest backup in each bucket is kept.
BUCKETS = {"keep_hourly": "%Y-%m-%d %H", "keep_daily": "%Y-%m-%d", "keep_weekly": "%G-W%V", "keep_monthly": "%Y-%m"}


def parse_duration(text) -> timedelta:
    match = DURATION.match(str(text))
    if not match:
        raise BackupError("cannot read the duration %r; use a number and a unit: 30d, 24h, 90m, 2w, 1y" % text)
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise BackupError("the duration %r is longer than 1000 years; to keep every backup of a type, give it no "
                          "rule (policy: {TYPE: {}})" % str(text).strip())
    return timedelta(seconds=seconds)


def _count(category_name: str, rule: str, value) -> int:
    """A keep_* count as a whole number of 0 or more, or a clear error naming the rule."""
    if isinstance(value, bool) or not re.match(r"^\s*\d+\s*$", str(value)):
        raise BackupError("policy.%s.%s must be a whole number of backups (0 or more), not %r"
                          % (category_name, rule, value))
    return int(value)


def effective_policy(policy) -> dict:
    """The guide's defaults, overridden per category by ``policy``; unknown categories or rules are errors."""
    merged = {category: dict(rules) for category, rules in DEFAULT_POLICY.items()}
    for category, rules in (policy or {}).items():
        if category not in CATEGORIES:
            raise BackupError("policy has an unknown backup type %r; use %s" % (category, ", ".join(CATEGORIES)))
        if rules is not None and not isinstance(rules, dict):
            raise BackupError("policy.%s must be a mapping of rules (keep_within: 30d, keep_last: 3), not %r"
                              % (category, rules))
        unknown = set(rules or {}) - set(RULES)
        if unknown:
            raise BackupError("policy for %s has unknown rules %s; use %s"
                              % (category, ", ".join(sorted(unknown)), ", ".join(RULES)))
        merged[category] = dict(rules or {})
    for category_name, rules in merged.items():
        if rules.get("keep_within") is not None:
            parse_duration(rules["keep_within"])
        for rule in RULES[1:]:
            if rules.get(rule) is not None:
                rules[rule] = _count(category_name, rule, rules[rule])
    return merged


def category(backup: dict) -> str:
    return "manual" if backup["named"] else backup["type"]


def plan(backups: list, policy=None, now: datetime = None) -> dict:
    """{archive: [reasons it is kept]} for every backup; an empty list means it goes. Pure: reads nothing."""
    now = now or datetime.now(timezone.utc)
    policy = effective_policy(policy)
    reasons = {backup["archive"]: [] for backup in backups}
    _keep_unclassified(backups, reasons)
    backups = [b for b in backups if not b.get("damaged") and b["type"] in _catalog.TYPES]
    for name in CATEGORIES:
        rules = policy[name]
        members = [b for b in backups if category(b) == name]  # oldest first
        if not rules:
            for backup in members:
                reasons[backup["archive"]].append("no retention rule for %s backups: kept until removed" % name)
            continue
        if rules.get("keep_within") is not None:
            limit = _window_start(now, parse_duration(rules["keep_within"]))
            for backup in members:
                if _catalog.parse_time(backup["created"]) >= limit:
                    reasons[backup["archive"]].append("keep_within %s" % rules["keep_within"])
        if rules.get("keep_last"):
            for backup in members[-int(rules["keep_last"]):]:
                reasons[backup["archive"]].append("keep_last %s" % rules["keep_last"])
        for rule, bucket_format in BUCKETS.items():
            if rules.get(rule):
                _keep_buckets(members, rule, int(rules[rule]), bucket_format, reasons)
    _protect_newest_full(backups, reasons)
    _protect_parents(backups, reasons)
    return reasons


def _keep_unclassified(backups: list, reasons: dict) -> None:
    """What retention cannot classify (a damaged sidecar, a type it does not know) it keeps, and says why."""
    for backup in backups:
        if backup.get("damaged"):
            reasons[backup["archive"]].append("damaged, so retention cannot classify it: kept until removed by "
                                              "hand (%s)" % backup["damaged"])
        elif backup.get("type") not in _catalog.TYPES:
            reasons[backup["archive"]].append("of type %r, which retention does not know: kept until removed by "
                                              "hand" % (backup.get("type"),))


def _window_start(now: datetime, within: timedelta) -> datetime:
    """``now - within``, or the first moment of the calendar when that reaches before year 1."""
    try:
        return now - within
    except OverflowError:
        return datetime.min.replace(tzinfo=timezone.utc)


def _keep_buckets(members: list, rule: str, count: int, bucket_format: str, reasons: dict) -> None:
    seen = []
    for backup in reversed(members):  # newest first: the newest of each bucket wins
        bucket = _catalog.parse_time(backup["created"]).strftime(bucket_format)
        if bucket not in seen:
            if len(seen) == count:
                break
            seen.append(bucket)
            reasons[backup["archive"]].append("%s %d (%s)" % (rule, count, bucket))


def _protect_newest_full(backups: list, reasons: dict) -> None:
    fulls = [b for b in backups if b["type"] == "full" and b.get("restorable", True)]
    verified = [b for b in fulls if (b.get("verified") or {}).get("valid") and (b["verified"] or {}).get("current")]
    if verified:
        reasons[verified[-1]["archive"]].append("the newest verified full backup")
    if fulls and fulls[-1] not in verified[-1:]:
        reasons[fulls[-1]["archive"]].append("the newest full backup")


def _protect_parents(backups: list, reasons: dict) -> None:
    """Every link a kept backup depends on is kept too, so no kept backup loses its chain."""
    for backup in reversed(backups):  # children before parents, so a protected parent protects its own parent
        if not reasons[backup["archive"]] or not (backup.get("parent") or backup.get("parent_sha256")):
            continue
        parent, _missing = _catalog.find_link(backups, backup)
        if parent is not None and "a kept backup depends on it" not in reasons[parent["archive"]]:
            reasons[parent["archive"]].append("a kept backup depends on it")


def prune(backup_dir: str, policy=None, now=None, check_mode: bool = False, lock_timeout: float = 60.0,
          keep_incomplete: bool = False) -> dict:
    """Apply ``policy`` to ``backup_dir``; in check mode, say what would go and delete nothing. ``keep_incomplete``:
    a folder others push into (the backup server's), where a lone sidecar may be a push under way."""
    moment = _catalog.parse_time(now) if now is not None else datetime.now(timezone.utc)
    backup_dir = _catalog.check_backup_dir(backup_dir)
    if not os.path.isdir(backup_dir):
        return outcome([], {}, [])
    if check_mode:
        return _apply(backup_dir, policy, moment, delete=False)
    with DirectoryLock(backup_dir, lock_timeout, "backup_prune"):
        if not keep_incomplete:
            _catalog.remove_incomplete(backup_dir)
        with no_readers(backup_dir, lock_timeout, "backup_prune"):
            return _apply(backup_dir, policy, moment, delete=True)


def no_readers(backup_dir: str, timeout: float, purpose: str) -> DirectoryLock:
    """Held while backups are deleted: waits (up to ``timeout``) until no restore or verify reads the directory."""
    return DirectoryLock(backup_dir, timeout, purpose, name=READERS_NAME)


def _apply(backup_dir: str, policy, now: datetime, delete: bool) -> dict:
    backups = _catalog.list_backups(backup_dir)
    reasons = plan(backups, policy, now)
    doomed = [b for b in backups if not reasons[b["archive"]]]
    deleted = []
    for backup in reversed(doomed):  # newest first: a child goes before the parent it depends on
        if delete:
            remove_backup(backup["archive"])
        deleted.append(deleted_entry(backup))
    return outcome(backups, reasons, deleted)


def deleted_entry(backup: dict) -> dict:
    """A removed backup as a prune or sync result names it."""
    return {"archive": backup["archive"], "type": backup["type"], "name": backup["name"],
            "created": backup["created"], "size": backup["size"] or 0}


def outcome(backups: list, reasons: dict, deleted: list, unclassified: list = ()) -> dict:
    """A prune's result, local or remote: what went, what stayed and why (unclassified: entries retention
    could not judge, each with its reason, kept), and the bytes freed."""
    kept = [{"archive": b["archive"], "type": b["type"], "name": b["name"], "created": b["created"],
             "reasons": reasons[b["archive"]]} for b in backups if reasons[b["archive"]]]
    kept += [{"archive": item["archive"], "type": None, "name": item["name"], "created": None,
              "reasons": ["%s; retention cannot classify it, so it is kept" % item["reason"]]} for item in unclassified]
    return {"changed": bool(deleted), "deleted": deleted, "kept": kept,
            "freed_bytes": sum(item["size"] for item in deleted)}


def remove_backup(archive: str) -> None:
    """The archive first (it is what makes a backup exist), then its sidecars: each a regular file unlinked
    inside its folder's descriptor, never through a link (a linked folder is refused)."""
    folder, filename = os.path.split(archive)
    root = _fs.open_dir(os.path.dirname(folder))
    try:
        folder_fd = _fs.open_dir(os.path.basename(folder), dir_fd=root)
    finally:
        os.close(root)
    try:
        os.unlink(filename, dir_fd=folder_fd)
        for suffix in _catalog.SIDECAR_SUFFIXES:
            try:
                os.unlink(filename + suffix, dir_fd=folder_fd)
            except (FileNotFoundError, IsADirectoryError):
                pass
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)
