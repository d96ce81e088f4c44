# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore of the databases from the Litestream replica, to the latest moment or to a second: each database is
restored by Litestream into the restore's own staging folder, integrity-checked there, and swapped in by the
archive restore's machinery (the same lock, staging folder, recovery of a killed run, plan, safety copies and
swap), so a replica restore keeps every promise an archive restore of scope database keeps."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica import settings as _settings
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.litestream import Litestream
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.status import last_commit
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import parse_time
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import safety as _safety
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import (
    RestoreJob, RestoreRequest, Scope, check_open_databases, owner_ids)

SOURCE = "replica"


@dataclass
class ReplicaRestoreRequest:
    """Restore ``databases`` (relative to the app root) of ``app_root`` from the replica that ``replica_config``
    (the litestream role's configuration) names, into ``dest`` (the app root unless told), as they were at
    ``before`` (a moment, to the second) or at the latest moment."""

    app_root: str
    databases: list
    replica_config: str
    litestream_binary: str
    credentials: dict = field(default_factory=dict)
    local_replica: str = None
    dest: str = None
    before: str = None
    integrity: str = "full"
    safety_copy: bool = True
    safety_copies_keep: int = _safety.DEFAULT_KEEP
    safety_copies_max_age: str = _safety.DEFAULT_MAX_AGE
    owner: str = None
    group: str = None
    force: bool = False
    lock_timeout: float = 60.0
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def request_from_settings(settings_path: str, databases=None, **options) -> ReplicaRestoreRequest:
    """A request for the replica the litestream role set up, named by its settings file (``replica.json``): all of
    its databases unless ``databases`` names some of them."""
    settings = _settings.load(settings_path)
    chosen = list(databases or settings["databases"])
    unknown = sorted(set(chosen) - set(settings["databases"]))
    if unknown:
        raise BackupError("%s is not replicated (the replica holds %s); restore it from an archive"
                          % (", ".join(unknown), ", ".join(settings["databases"])))
    return ReplicaRestoreRequest(app_root=settings["app_root"], databases=chosen, replica_config=settings["config"],
                                 litestream_binary=settings["binary"], credentials=settings.get("credentials", {}),
                                 local_replica=settings.get("replica_path"),
                                 **options)


def restore_from_replica(request: ReplicaRestoreRequest, check_mode: bool = False, pause=None) -> dict:
    """Restore the databases from the replica; returns what backup_restore reports, with ``source: replica`` and,
    per database, the recovery point reached (the time of the newest transaction restored) and how far it was
    behind the live database's newest commit (``lag_seconds``; the most of them as ``replica_lag_seconds``)."""
    started = time.monotonic()
    paths = relative_paths(request.databases)
    moment = parse_time(request.before, request.now) if request.before else None
    if moment is not None and moment > request.now:
        raise BackupError("before %s is in the future; give a moment in the replica's window" % request.before)
    dest = os.path.realpath(os.path.abspath(request.dest or request.app_root))
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise BackupError("dest %s exists but is not a directory; move it away or choose another dest" % dest)
    litestream = Litestream(request.litestream_binary, request.replica_config, request.credentials,
                            request.local_replica)
    check_open_databases(dest, paths, request.force)  # fail fast; checked again just before the swap
    job = _ReplicaJob(request, litestream, paths, moment, dest, check_mode, pause)
    result = job.run()
    result.update(source=SOURCE, replica=job.points, recovery_point=min(
        (point["recovery_point"] for point in job.points.values()), default=None),
        before=moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None, archive=None, chain=[],
        replica_lag_seconds=max((point["lag_seconds"] for point in job.points.values()
                                 if point["lag_seconds"] is not None), default=None))
    result["duration"] = round(time.monotonic() - started, 3)
    return result


def lag_behind(committed: float, recovery_point: str):
    """Seconds from the recovery point to the live database's newest commit (0: it holds it; None: no live
    database), to the second: Litestream times its files to the second, so a finer lag would be noise."""
    if not committed:
        return None
    point = datetime.fromisoformat(recovery_point.replace("Z", "+00:00")).timestamp()
    return float(max(0, math.floor(committed) - math.floor(point)))


def restore_database_file(litestream: Litestream, app_root: str, path: str, restored: str, moment,
                          integrity: str) -> tuple:
    """Restore the replica of ``path`` (relative to ``app_root``) into the new file ``restored`` and check it:
    (its point: {path, txid, recovery_point, lag_seconds}, the integrity check's record). Raises when it fails."""
    live = os.path.join(app_root, path)
    committed = last_commit(live)  # before the restore: what the live database held when it began
    point = dict(litestream.plan(live, restored, moment), path=path)
    point["lag_seconds"] = lag_behind(committed, point["recovery_point"])
    summary = litestream.restore(live, restored, moment)
    point["txid"] = summary.get("txid", point["txid"])
    verdict = _sqlite.check_integrity(restored, integrity)
    if verdict not in ("ok", "skipped"):
        raise BackupError("the replica of %s restored to a database that fails its integrity check (%s); "
                          "nothing was changed" % (path, verdict))
    return point, {"name": "database:%s" % path, "ok": True, "detail": verdict}


def relative_paths(databases) -> list:
    paths = []
    for path in databases or ():
        clean = os.path.normpath(str(path))
        if os.path.isabs(clean) or clean.startswith("..") or clean in (".", ""):
            raise BackupError("database %r must be a path relative to the app root, inside it (data/x.db)" % path)
        paths.append(clean)
    if not paths:
        raise BackupError("no database to restore from the replica; name them (the litestream role's databases)")
    return sorted(set(paths))


class _ReplicaJob(RestoreJob):
    """The archive restore's job, whose staged databases come from the replica instead of an archive."""

    def __init__(self, request: ReplicaRestoreRequest, litestream: Litestream, paths: list, moment, dest: str,
                 check_mode: bool, pause) -> None:
        restore_request = RestoreRequest(
            dest=dest, scope="database", safety_copy=request.safety_copy, keep=[],
            safety_copies_keep=request.safety_copies_keep, safety_copies_max_age=request.safety_copies_max_age,
            owner=request.owner, group=request.group, force=request.force, lock_timeout=request.lock_timeout,
            now=request.now)
        described = "%s (litestream replica of %s)" % (request.replica_config, request.app_root)
        super().__init__(restore_request, [described], [None], dest, Scope("database", tuple(paths)),
                         owner_ids(request.owner, request.group), check_mode, pause)
        self.litestream = litestream
        self.app_root = os.path.abspath(request.app_root)
        self.paths = paths
        self.moment = moment
        self.integrity = request.integrity
        self.points: dict = {}

    def _stage_chain(self, tree, work_dir) -> tuple:
        """Each database restored by Litestream into ``work_dir``, checked there, then renamed into the staged
        tree; returns what the archive restore's plan reads (a manifest of these databases)."""
        members, checks = [], []
        for position, path in enumerate(self.paths):
            restored = os.path.join(work_dir, "replica-%d.db" % position)
            self.points[path], check = restore_database_file(self.litestream, self.app_root, path, restored,
                                                             self.moment, self.integrity)
            checks.append(check)
            members.append(self._staged_member(path, restored, tree))
        self.pause("staged")
        manifest = {"members": members, "databases": [{"path": path} for path in self.paths],
                    "app_root": self.app_root}
        verification = {"valid": True, "status": "valid", "checks": checks, "errors": [],
                        "reason": "each database restored from the replica passed PRAGMA %s" % (
                            "integrity_check" if self.integrity == "full" else "quick_check")}
        return manifest, verification, len(members), None

    def _staged_member(self, path: str, restored: str, tree) -> dict:
        """The manifest record of a restored database, moved into the staged tree with the live file's mode."""
        live = os.path.join(self.dest, path)
        mode = os.lstat(live).st_mode & 0o777 if os.path.isfile(live) and not os.path.islink(live) else 0o644
        os.chmod(restored, mode)
        record = {"path": path, "type": "file", "size": os.path.getsize(restored), "mode": "%04o" % mode,
                  "sha256": _fs.sha256_file(restored)}
        if tree:
            staged = os.path.join(tree, path)
            os.makedirs(os.path.dirname(staged), 0o700, exist_ok=True)
            os.rename(restored, staged)
        return record
