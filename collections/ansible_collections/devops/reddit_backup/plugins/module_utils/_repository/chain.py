# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup chains: which backup a new one builds on, the state index each backup leaves for the next, and the
links from any backup back to its root.

How chains form:

* ``incremental`` builds on the newest backup of type ``full`` or ``incremental`` (named ones included). With no
  full backup to build on, it is taken as a full backup, with a warning (pgBackRest does the same).
* ``database`` builds on the newest ``database`` backup until the chain is ``chain_max`` long; then a new base
  (a whole snapshot) starts the next chain, so retention can drop old chains whole.
* ``full`` and ``config`` backups stand alone.

Every backup that can be built on leaves ``<archive>.index.json``: the state of the application after it (each
path's type, size, mode, mtime, sha256) and each database's page hashes. It names no file contents.
"""

from __future__ import annotations

import json
import os

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import (
    INDEX_LIMIT, INDEX_SUFFIX, find_link, healthy,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import atomic_write_bytes, read_regular
DEFAULT_CHAIN_MAX = {"database": 24, "incremental": 1000}


def find_parent(backups: list, backup_type: str, chain_max: int = None):
    """The backup a new ``backup_type`` backup builds on, or None when it starts a chain."""
    backups = [b for b in healthy(backups) if b.get("restorable", True)]
    if backup_type == "incremental":
        candidates = [b for b in backups if b["type"] in ("full", "incremental")]
    elif backup_type == "database":
        candidates = [b for b in backups if b["type"] == "database" and not b["named"]]
    else:
        return None
    if not candidates:
        return None
    parent = candidates[-1]
    limit = chain_max or DEFAULT_CHAIN_MAX[backup_type]
    if (parent.get("depth") or 0) + 1 >= limit or not os.path.exists(parent["archive"] + INDEX_SUFFIX):
        return None
    return parent


def resolve(backups: list, backup: dict) -> list:
    """The chain from its root to ``backup``, oldest first, each link found by the archive sha256 its child
    recorded (by name only for backups made before that, and only when the name is unique); BackupError names
    the first missing link."""
    chain = [backup]
    while chain[0].get("parent") or chain[0].get("parent_sha256"):
        parent, missing = find_link(backups, chain[0])
        if parent is None:
            where = os.path.dirname(os.path.dirname(chain[0]["archive"]))
            raise BackupError("backup %s depends on %s, which is %s; the chain is broken: restore an earlier backup or "
                              "pull the missing one from the remote copy"
                              % (chain[0]["name"], chain[0].get("parent"), missing.format(where=where)))
        if any(link is parent for link in chain) or len(chain) > 100000:
            raise BackupError("the chain of %s loops; the catalog is damaged" % backup["name"])
        chain.insert(0, parent)
    return chain


def read_index(archive: str) -> dict:
    path = archive + INDEX_SUFFIX
    try:
        index = json.loads(read_regular(path, INDEX_LIMIT, what="state index").decode("utf-8"))
    except (OSError, ValueError, BackupError) as error:
        raise BackupError("the state index %s of the parent backup is missing or unreadable (%s); take a full "
                          "backup to start a new chain" % (path, error)) from error
    if not isinstance(index, dict) or not isinstance(index.get("members"), dict) \
            or not isinstance(index.get("databases", {}), dict):
        raise BackupError("the state index %s of the parent backup has the wrong shape; take a full backup to start "
                          "a new chain" % path)
    return index


def write_index(archive: str, index: dict) -> str:
    path = archive + INDEX_SUFFIX
    atomic_write_bytes(path, json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
    return path


def member_state(record: dict) -> dict:
    """What the index keeps of a manifest member: enough to decide next time whether it changed."""
    state = {key: record[key] for key in ("type", "size", "mode", "mtime", "sha256") if key in record}
    if "target" in record:
        state["target"] = record["target"]
    return state
