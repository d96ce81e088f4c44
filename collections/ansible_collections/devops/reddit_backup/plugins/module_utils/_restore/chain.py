# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a chain: which archives a backup needs (its root first), and how each link after the root changes
the staged state: members replace what is staged, deleted paths go, page deltas are applied to the staged
databases (each step checked against the snapshot sha256 it must give)."""

from __future__ import annotations

import os

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import chain as _chain
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import pages as _pages
from ansible_collections.devops.reddit_backup.plugins.module_utils._confined import Anchor, PlantedPath
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.pages import DELTA_SUFFIX
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.tarsafe import check_path, escaping_symlinks

DELTA_ALLOWANCE = 64 << 10  # a page delta's header, beyond 4 bytes of page number per page


def pick_chain(archive=None, backup_dir=None, before=None, name=None, types=None, now=None) -> list:
    """The archives to restore, root first: those of the chain that ends at ``archive``, or at the backup picked
    from ``backup_dir`` (by ``name``, else the newest at or before ``before``, else the newest) among the
    restorable backups of ``types``. An archive outside any catalog stands alone."""
    if archive:
        if backup_dir or before or name:
            raise BackupError("give either archive, or backup_dir with before or name; not both")
        archive = os.path.abspath(archive)
        backups = _catalog.list_backups(os.path.dirname(os.path.dirname(archive)))
        chosen = next((b for b in backups if os.path.realpath(b["archive"]) == os.path.realpath(archive)), None)
        if chosen is None:
            return [archive]
        return [link["archive"] for link in _chain.resolve(backups, chosen)]
    if not backup_dir:
        raise BackupError("give archive (a backup archive's path), or backup_dir to pick a backup from")
    backups = _catalog.list_backups(backup_dir)
    candidates = [b for b in backups if (types is None or b["type"] in types) and b.get("restorable", True)]
    chosen = _catalog.choose(candidates, before=before, name=name, now=now)
    if chosen is None:
        wanted = ["named %s" % name] if name else []
        if before is not None:
            wanted.append("made at or before %s" % _catalog.parse_time(before, now).strftime("%Y-%m-%dT%H:%M:%SZ"))
        broken = [b["name"] for b in backups if not b.get("restorable", True)]
        raise BackupError("no restorable %sbackup %sin %s%s; list the backups with backup_info"
                          % ("/".join(types) + " " if types else "", " ".join(wanted) + " " if wanted else "",
                             backup_dir, " (%s have a missing link in their chain)" % ", ".join(broken[:5])
                             if broken else ""))
    return [link["archive"] for link in _chain.resolve(backups, chosen)]


def link_budget(meta):
    """The most file bytes a link may stage: what its catalog entry announces, plus room for its page deltas
    (which the entry does not count), or None without a catalog entry."""
    if not meta or not isinstance(meta.get("bytes"), int):
        return None
    extra = 0
    for database in meta.get("databases") or []:
        if isinstance(database, dict) and database.get("delta"):
            extra += int(database.get("page_count") or 0) * (int(database.get("page_size") or 0) + 4)
            extra += DELTA_ALLOWANCE
    return meta["bytes"] + extra


def merge_state(index: dict, manifest: dict) -> None:
    """Fold one link's manifest into ``index`` (path -> member record): the state after that link, with each page
    delta turned into the record of the database it rebuilds."""
    for path in manifest.get("deleted") or []:
        index.pop(path, None)
    databases = {database["path"]: database for database in manifest["databases"]}
    for record in manifest["members"]:
        if record["type"] != "pagedelta":
            index[record["path"]] = record
            continue
        database = databases.get(record["database"])
        if database is None:
            raise BackupError("page delta %s names database %s, which the manifest does not list; the archive is "
                              "damaged" % (record["path"], record["database"]))
        index[database["path"]] = {"path": database["path"], "type": "file", "size": database["size"],
                                   "mode": record["mode"], "mtime": record["mtime"], "sha256": database["sha256"]}


def check_link(previous, manifest: dict, previous_sha256: str = None) -> None:
    """A link must build on the one before it, as its manifest says: by name, and by the archive checksum it
    recorded (a backup of the same name is not the same backup)."""
    if previous is None:
        if manifest.get("parent"):
            raise BackupError("backup %s builds on %s, which is not part of this restore; restore it from its backup "
                              "directory so that its chain is found" % (manifest.get("name"), manifest["parent"]))
        return
    if manifest.get("parent") != previous.get("name"):
        raise BackupError("backup %s builds on %s, not on %s; the chain is damaged (nothing was changed)"
                          % (manifest.get("name"), manifest.get("parent"), previous.get("name")))
    wanted = manifest.get("parent_sha256")
    if wanted and previous_sha256 and wanted != previous_sha256:
        raise BackupError("backup %s builds on the archive with sha256 %s, and the %s found for it has sha256 %s: "
                          "another backup took its name; the chain is refused (nothing was changed)"
                          % (manifest.get("name"), wanted, previous.get("name"), previous_sha256))


def check_composed(index: dict, name) -> None:
    """Judge the state the chain composes up to backup ``name`` (``index``, as merge_state built it), not each
    link alone: no member may lie beneath a symlink or a file, and no symlink may lead outside the destination,
    also through links that other links of the chain added."""
    symlinks = {path: record.get("target") or "" for path, record in index.items() if record["type"] == "symlink"}
    for path in sorted(index):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = index.get("/".join(parts[:depth]))
            if parent is not None and parent["type"] != "dir":
                raise BackupError("refusing to restore: once the chain is composed up to backup %s, %s lies beneath "
                                  "%s, which is a %s; the chain was altered (nothing was changed)"
                                  % (name, path, parent["path"], parent["type"]))
    for path, target in escaping_symlinks(symlinks):
        raise BackupError("refusing to restore: once the chain is composed up to backup %s, symlink %s -> %s leads "
                          "outside the destination (through the other links of the chain); the chain was altered "
                          "(nothing was changed)" % (name, path, target))


def apply_link(tree: str, manifest: dict, wants, stager) -> list:
    """Make the staged ``tree`` the state after this link: remove what it deleted, apply its page deltas to the
    staged databases. Returns the databases rebuilt from deltas (their integrity is checked by the caller).
    A deleted path is removed without following any symlink; one beneath a symlink is not in the tree at all."""
    anchor = Anchor(tree)
    for path in sorted(manifest.get("deleted") or [], reverse=True):
        if check_path(path) is None and wants(path) and _staged(anchor, os.path.join(tree, path)):
            anchor.remove(os.path.join(tree, path))
            stager.forget(path)
    rebuilt = []
    for database in manifest["databases"]:
        if not database.get("delta") or not wants(database["path"]):
            continue
        staged, delta = os.path.join(tree, database["path"]), os.path.join(tree, database["delta_member"])
        if database["delta_member"] != database["path"] + DELTA_SUFFIX or not os.path.isfile(delta):
            raise BackupError("the page delta of %s is missing from backup %s"
                              % (database["path"], manifest.get("name")))
        if not os.path.isfile(staged) or os.path.islink(staged):
            raise BackupError("database %s has no earlier snapshot in the chain to apply backup %s's page delta to"
                              % (database["path"], manifest.get("name")))
        info = os.stat(delta)
        _pages.apply_delta(staged, delta)
        os.chmod(staged, info.st_mode & 0o1777)
        os.utime(staged, (info.st_mtime, info.st_mtime))
        os.unlink(delta)
        stager.forget(database["delta_member"])
        rebuilt.append(database["path"])
    return rebuilt


def _staged(anchor: Anchor, path: str) -> bool:
    try:
        return anchor.lexists(path)
    except PlantedPath:
        return False  # beneath a symlink or a file: never followed, so not part of the staged tree
