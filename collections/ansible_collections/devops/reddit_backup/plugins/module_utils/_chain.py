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

from ._catalog import INDEX_SUFFIX
from ._errors import BackupError
from ._fs import atomic_write_bytes
DEFAULT_CHAIN_MAX = {"database": 24, "incremental": 1000}


def find_parent(backups: list, backup_type: str, chain_max: int = None):
    """The backup a new ``backup_type`` backup builds on, or None when it starts a chain."""
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
    """The chain from its root to ``backup``, oldest first; BackupError names the first missing link."""
    by_name = {}
    for candidate in backups:
        by_name.setdefault(candidate["name"], candidate)
    chain = [backup]
    while chain[0].get("parent"):
        parent = by_name.get(chain[0]["parent"])
        if parent is None:
            raise BackupError("backup %s depends on %s, which is missing from %s; the chain is broken: restore an "
                              "earlier backup or pull the missing one from the remote copy"
                              % (chain[0]["name"], chain[0]["parent"], os.path.dirname(os.path.dirname(
                                  chain[0]["archive"]))))
        chain.insert(0, parent)
        if len(chain) > 100000:
            raise BackupError("the chain of %s loops; the catalog is damaged" % backup["name"])
    return chain


def read_index(archive: str) -> dict:
    path = archive + INDEX_SUFFIX
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise BackupError("the state index %s of the parent backup is missing or unreadable (%s); take a full "
                          "backup to start a new chain" % (path, error)) from error


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
