# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safety copies: what restores moved aside instead of deleting it. ``<item>.pre-restore-<stamp>`` below the app
root (a partial restore's replaced folder or file), ``<app root>.pre-restore-<stamp>`` beside it (a full restore),
``pre-restore-<stamp>`` inside it (a full restore of an app root that is a mount point).

They are never backed up (they would come back with every full restore), and a retention rule keeps the newest
few of each item and none past an age. The app user owns the app root and may plant folders and links named like
safety copies: every step here goes through folder descriptors and never follows a symlink (``_confined``), so
whatever is planted, a removal stays inside the app root and its parent, and only removes names of this form.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils import _lock
from ansible_collections.devops.reddit_backup.plugins.module_utils._confined import DIR_FLAGS, Anchor
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.retention import parse_duration

SAFETY_INFIX = ".pre-restore-"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# The names restores give them (``_restore_plan``): a stamp, and -N when two restores shared a second.
ITEM_COPY = re.compile(r"\A(?P<item>.+)\.pre-restore-(?P<stamp>\d{8}T\d{6}Z)(?:-\d{1,6})?\Z")
ROOT_COPY = re.compile(r"\Apre-restore-(?P<stamp>\d{8}T\d{6}Z)(?:-\d{1,6})?\Z")
STAGING_PREFIX = ".reddit-restore-"
DEFAULT_KEEP = 3
DEFAULT_MAX_AGE = "7d"
WHOLE_APP = "(the whole app root)"


def is_safety_copy(name: str, top_level: bool = False) -> bool:
    """True for a name a restore gives a safety copy (``pre-restore-<stamp>`` only at the app root's top)."""
    return bool(ITEM_COPY.match(name) or (top_level and ROOT_COPY.match(name)))


def _stamp(match) -> datetime:
    try:
        return datetime.strptime(match.group("stamp"), STAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _copy(path: str, item: str, created: datetime, info: os.stat_result, now: datetime) -> dict:
    kind = "dir" if stat.S_ISDIR(info.st_mode) else "symlink" if stat.S_ISLNK(info.st_mode) else "file"
    return {"path": path, "item": item, "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "kind": kind,
            "age_seconds": max(int((now - created).total_seconds()), 0)}


def list_safety_copies(app_root: str, now: datetime = None, skip=()) -> list:
    """Every safety copy of ``app_root``, oldest first: beside it, at its top and below it (found through folder
    descriptors, never through a symlink; a safety copy's own contents and the ``skip`` folders are not searched)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)  # naive: local time, as restores stamp
    app_root = os.path.abspath(app_root).rstrip("/")
    parent, base = os.path.dirname(app_root), os.path.basename(app_root)
    found = []
    try:
        beside = list(os.scandir(parent))
    except FileNotFoundError:
        return found  # no app root and no folder for it: no restore ever left anything here
    except OSError as error:
        raise BackupError("cannot list %s, the folder holding app_root: %s" % (parent, error.strerror)) from None
    for entry in beside:
        match = ITEM_COPY.match(entry.name)
        if match and match.group("item") == base and _stamp(match):
            found.append(_copy(entry.path, WHOLE_APP, _stamp(match), entry.stat(follow_symlinks=False), now))
    try:
        root_fd = os.open(app_root, DIR_FLAGS)
    except FileNotFoundError:
        return sorted(found, key=lambda copy: (copy["created"], copy["path"]))  # only what lies beside it
    except OSError as error:
        raise BackupError("app_root %s is not a directory this tool can open without following a link (%s)"
                          % (app_root, error.strerror)) from None
    try:
        _search(root_fd, app_root, "", now, found, {os.path.abspath(path) for path in skip})
    finally:
        os.close(root_fd)
    found.sort(key=lambda copy: (copy["created"], copy["path"]))
    return found


def _search(dir_fd: int, folder: str, relative: str, now: datetime, found: list, skip: set) -> None:
    for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
        path = os.path.join(folder, entry.name)
        match = ITEM_COPY.match(entry.name) or (ROOT_COPY.match(entry.name) if not relative else None)
        created = _stamp(match) if match else None
        if created:
            item = WHOLE_APP if "item" not in match.re.groupindex else os.path.join(relative, match.group("item"))
            found.append(_copy(path, item, created, entry.stat(follow_symlinks=False), now))
            continue
        if not entry.is_dir(follow_symlinks=False) or entry.name.startswith(STAGING_PREFIX) or path in skip:
            continue
        try:
            child = os.open(entry.name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # swapped for a link or gone since the listing, or closed to this user: nothing to find
        try:
            _search(child, path, os.path.join(relative, entry.name), now, found, skip)
        finally:
            os.close(child)


def plan(copies: list, keep: int = DEFAULT_KEEP, max_age=DEFAULT_MAX_AGE, protect=()) -> tuple:
    """(removed, kept) under the rule: of each item's safety copies the ``keep`` newest are kept, and none older
    than ``max_age`` (None: no age limit; ``keep`` None: no count limit); ``protect`` (the copies a restore just
    made) are always kept."""
    keep = check_keep(keep) if keep is not None else None
    limit = parse_duration(max_age).total_seconds() if max_age not in (None, "") else None
    removed, kept = [], []
    by_item: dict = {}
    for copy in copies:
        by_item.setdefault(copy["item"], []).append(copy)
    for item_copies in by_item.values():
        for rank, copy in enumerate(sorted(item_copies, key=lambda c: (c["created"], c["path"]), reverse=True)):
            if copy["path"] in protect:
                kept.append(dict(copy, reason="made by this restore"))
            elif keep is not None and rank >= keep:
                removed.append(dict(copy, reason="more than the %d newest safety copies of %s" % (keep, copy["item"])))
            elif limit is not None and copy["age_seconds"] > limit:
                removed.append(dict(copy, reason="older than %s" % max_age))
            else:
                kept.append(dict(copy, reason=_kept_reason(keep, max_age)))
    return removed, kept


def _kept_reason(keep, max_age) -> str:
    if keep is None and max_age in (None, ""):
        return "no retention rule applied"
    newest = "one of the %d newest" % keep if keep is not None else "any of them"
    return "%s, within %s" % (newest, max_age) if max_age not in (None, "") else newest


def check_rule(keep, max_age) -> None:
    """A clear error for a retention rule that cannot be applied, before anything is done."""
    if keep is not None:
        check_keep(keep)
    if max_age not in (None, ""):
        parse_duration(max_age)


def check_keep(keep) -> int:
    if isinstance(keep, bool) or not re.match(r"^\s*\d+\s*$", str(keep)):
        raise BackupError("the number of safety copies to keep must be a whole number (0 or more), not %r" % (keep,))
    return int(keep)


def prune_safety_copies(app_root: str, keep=DEFAULT_KEEP, max_age=DEFAULT_MAX_AGE, remove=(), now: datetime = None,
                        check_mode: bool = False, lock_timeout: float = 60.0, skip=(),
                        leave_unremovable: bool = False) -> dict:
    """List the safety copies of ``app_root`` and remove those the rule (``keep``, ``max_age``) no longer keeps,
    and those named in ``remove`` (paths as listed). Holds the lock a restore holds on the app root's parent, so
    it never removes what a running restore makes. With ``leave_unremovable`` the rule's removals this user may
    not make (a full restore's copy in the root-owned folder beside the app root) are left and listed in ``left``."""
    check_rule(keep, max_age)
    app_root = os.path.abspath(app_root)
    if check_mode or not os.path.isdir(os.path.dirname(app_root)):  # no folder to lock: nothing was ever left there
        return _prune(app_root, keep, max_age, remove, now, check_mode, skip, leave_unremovable)
    with _lock.DirectoryLock(os.path.dirname(app_root), lock_timeout, "safety copy cleanup", name=None):
        return _prune(app_root, keep, max_age, remove, now, False, skip, leave_unremovable)


def may_remove(path: str) -> bool:
    """Whether this user may remove ``path``: its folder writable (and, when sticky, one of the two ours) and, for
    a folder, the folder itself writable, so a removal does not stop half way at its first entry."""
    folder = os.path.dirname(path)
    try:
        info, parent = os.lstat(path), os.stat(folder)
    except OSError:
        return False
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    if parent.st_mode & stat.S_ISVTX and os.geteuid() not in (0, info.st_uid, parent.st_uid):
        return False
    return not stat.S_ISDIR(info.st_mode) or os.access(path, os.W_OK | os.X_OK)


def prune_held(app_root: str, keep, max_age, now: datetime, protect=(), skip=()) -> list:
    """The rule applied by a restore that already holds the lock on ``app_root``'s parent; returns what went."""
    removed, _kept = plan(list_safety_copies(app_root, now, skip), keep, max_age, protect)
    anchor = Anchor(os.path.dirname(os.path.abspath(app_root)))
    for copy in removed:
        anchor.remove(copy["path"])
    return removed


def _prune(app_root: str, keep, max_age, remove, now, check_mode: bool, skip, leave_unremovable: bool) -> dict:
    copies = list_safety_copies(app_root, now, skip)
    listed = {copy["path"]: copy for copy in copies}
    unknown = [path for path in remove or () if os.path.abspath(path) not in listed]
    if unknown:
        raise BackupError("%s %s not a safety copy of %s (nothing was removed); list them first and give paths "
                          "as listed" % (", ".join(unknown), "is" if len(unknown) == 1 else "are", app_root))
    removed, kept = plan(copies, keep, max_age)
    left = [copy for copy in removed if not may_remove(copy["path"])] if leave_unremovable else []
    removed = [copy for copy in removed if copy not in left]
    asked = {os.path.abspath(path) for path in remove or ()}
    removed += [dict(copy, reason="named in remove") for copy in kept if copy["path"] in asked]
    kept = [copy for copy in kept if copy["path"] not in asked]
    if not check_mode:
        anchor = Anchor(os.path.dirname(app_root))
        for copy in removed:
            anchor.remove(copy["path"])
    result = {"changed": bool(removed), "safety_copies": copies, "removed": sorted(removed, key=lambda c: c["path"]),
              "kept": kept}
    if leave_unremovable:
        result["left"] = sorted(left, key=lambda c: c["path"])
    return result
