# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole service at a moment T, in one restore: the files (code, configuration, units) from the newest full
or incremental archive made at or before T, and each replicated database from the Litestream replica as it was at
T. It is the archive restore of scope full (the same pick, verification, staging folder, plan, swap and one safety
copy of the whole app root) whose staged databases are replaced, before anything is swapped, by those Litestream
restored and the integrity check passed: a failure at any step leaves the live service as it was."""

from __future__ import annotations

import functools
import os

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.litestream import Litestream
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.restore import (
    ReplicaRestoreRequest, relative_paths, restore_database_file)
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import parse_time
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.chain import pick_chain
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import (
    SCOPE_TYPES, RestoreJob, RestoreRequest, parse_scope, restore)

SOURCE = "archive+replica"
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def restore_whole_service(request: RestoreRequest, replica: ReplicaRestoreRequest, check_mode: bool = False,
                          pause=None) -> dict:
    """Restore ``request`` (scope full, picked from ``backup_dir`` at or before ``request.before``) with the
    databases ``replica`` names taken from the replica at that moment; returns what backup_restore reports, with
    ``source: archive+replica`` and ``recovery_points``: what each part reached and where it came from."""
    if parse_scope(request.scope).name != "full":
        raise BackupError("the whole service at a moment restores scope full (files from an archive, databases "
                          "from the replica); for the databases alone give replica without backup_dir")
    if not request.backup_dir or request.archive or request.name:
        raise BackupError("the whole service at a moment picks its archive from backup_dir by before (the newest "
                          "at or before it); do not name an archive")
    moment = parse_time(request.before, request.now) if request.before else None
    if moment is not None and moment > request.now:
        raise BackupError("before %s is in the future; give a moment in the past" % request.before)
    files_archive(request.backup_dir, request.before, request.now)  # fail fast, before Litestream runs
    litestream = Litestream(replica.litestream_binary, replica.replica_config, replica.credentials,
                            replica.local_replica)
    overlay = _ReplicaOverlay(litestream, os.path.abspath(replica.app_root), relative_paths(replica.databases),
                              moment, replica.integrity)
    result = restore(request, check_mode, pause, job=functools.partial(_WholeServiceJob, overlay=overlay))
    result.update(overlay.report(result))
    return result


def files_archive(backup_dir: str, before=None, now=None) -> str:
    """The archive the files come from: the newest restorable full or incremental backup made at or before
    ``before`` (the newest without it), picked as a full restore picks it."""
    try:
        return pick_chain(backup_dir=backup_dir, before=before, types=SCOPE_TYPES["full"], now=now)[-1]
    except BackupError as error:
        if before is None:
            raise
        raise BackupError("%s. No archive holds the service's files as they were at %s: nothing was changed. Choose "
                          "a later moment, or restore the databases alone from the replica (restore_database, or "
                          "backup_restore with replica and scope database)" % (error, before)) from None


class _ReplicaOverlay:
    """The databases of the whole-service restore: each restored from the replica into the restore's work folder,
    checked, and put in the staged tree over what the archive held (its record in the staged manifest with it)."""

    def __init__(self, litestream: Litestream, app_root: str, paths: list, moment, integrity: str) -> None:
        self.litestream = litestream
        self.app_root = app_root
        self.paths = paths
        self.moment = moment
        self.integrity = integrity
        self.points: dict = {}
        self.files_point = None  # when the archive restored was made, from its verified manifest

    def apply(self, state: dict, verification: dict, tree, work_dir: str) -> None:
        created = state.get("created")
        self.files_point = parse_time(created).strftime(STAMP) if created else None
        index = {member["path"]: member for member in state["members"]}
        for position, path in enumerate(self.paths):
            restored = os.path.join(work_dir, "whole-replica-%d.db" % position)
            self.points[path], check = restore_database_file(self.litestream, self.app_root, path, restored,
                                                             self.moment, self.integrity)
            verification["checks"].append(dict(check, name="replica:%s" % path))
            index.update(self._stage(path, restored, index.get(path), tree))
        state["members"] = list(index.values())
        known = {database["path"] for database in state["databases"]}
        state["databases"] = list(state["databases"]) + [{"path": path} for path in self.paths if path not in known]

    def _stage(self, path: str, restored: str, archived, tree) -> dict:
        """Records of the staged database (and of the folders made for one the archive lacks), by path."""
        mode = int(archived["mode"], 8) & 0o777 if archived else 0o644
        os.chmod(restored, mode)
        records = {path: {"path": path, "type": "file", "size": os.path.getsize(restored), "mode": "%04o" % mode,
                          "sha256": _fs.sha256_file(restored)}}
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if tree and not os.path.isdir(os.path.join(tree, folder)):
                os.mkdir(os.path.join(tree, folder), 0o755)
                os.chmod(os.path.join(tree, folder), 0o755)
                records[folder] = {"path": folder, "type": "dir", "mode": "0755"}
        if tree:
            os.replace(restored, os.path.join(tree, path))  # the staging folder is root's and 0700: no link there
        return records

    def report(self, result: dict) -> dict:
        """The recovery point each part reached, and its source; ``recovery_point`` is the databases' oldest."""
        created = self.files_point
        parts = [{"part": "files", "source": "archive", "from": result["archive"], "recovery_point": created}]
        parts += [{"part": path, "source": "replica", "from": "litestream replica", "txid": point["txid"],
                   "recovery_point": point["recovery_point"]} for path, point in sorted(self.points.items())]
        reached = "; ".join("%s at %s (%s)" % (part["part"], part["recovery_point"], part["source"]) for part in parts)
        return {"source": SOURCE, "replica": self.points, "recovery_points": parts, "archive_created": created,
                "reached": reached,
                "before": self.moment.strftime(STAMP) if self.moment else None,
                "recovery_point": min((point["recovery_point"] for point in self.points.values()), default=None),
                "replica_lag_seconds": max((point["lag_seconds"] for point in self.points.values()
                                            if point["lag_seconds"] is not None), default=None)}


class _WholeServiceJob(RestoreJob):
    """The archive restore of scope full, with the replica's databases staged over the archive's."""

    def __init__(self, *arguments, overlay: _ReplicaOverlay) -> None:
        super().__init__(*arguments)
        self.overlay = overlay

    def _stage_chain(self, tree, work_dir) -> tuple:
        state, verification, members, stager = super()._stage_chain(tree, work_dir)
        self.overlay.apply(state, verification, tree, work_dir)
        self.pause("replica staged")
        return state, verification, members, stager
