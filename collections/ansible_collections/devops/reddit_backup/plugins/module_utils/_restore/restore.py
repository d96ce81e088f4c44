# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore from start to finish: pick the archive, stage what the scope takes beside the destination while
verifying every member, decide, then swap each item in with renames and keep what it replaced.

Nothing in the destination changes until the whole archive has been read and every member matched its
manifest (and, with verify_first, every check of a comprehensive verification passed). See _swap for why a
kill at any moment leaves each item old or new.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils import _lock
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import procs as _procs
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import safety as _safety
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import signing as _signing
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import swap as _swap
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import verdict as _verdict
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import (
    backup_dir_of, list_backups, meta_database_paths, parse_time, read_checksum, read_meta,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._confined import Anchor
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.pages import DELTA_SUFFIX
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.manifest_checks import (
    catalog_check, catalog_says_known_format, check,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.reader import (
    ArchiveReader, DamagedArchive, UnknownFormat, run_pass,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.chain import (
    apply_link, check_composed, check_link, link_budget, merge_state, pick_chain,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.plan import (
    SAFETY_INFIX, STAGING_PREFIX, Plan, Target, under,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.selection import (
    CONFIG_INCLUDES, DEFAULT_EXCLUDES,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.unit_states import (
    recorded as recorded_unit_states,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.live_hashes import LiveHashes
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.staging import Stager
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.tarsafe import check_path
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import (
    Verifier, judge, signature_check, verify_archive,
)

SCOPES = ("full", "database", "config", "systemd")
# The backup types that hold each scope, for picking "the newest backup" when no archive is named.
SCOPE_TYPES = {"full": ("full", "incremental"), "database": ("full", "incremental", "database"),
               "config": ("full", "incremental", "config"), "systemd": ("full", "incremental", "config")}
SCOPE_PATHS = {"config": CONFIG_INCLUDES, "systemd": ("systemd",)}
DEFAULT_KEEP = ("backups", "venv")
KEPT_REASONS = {"venv": "never in a backup, left as it is (rebuild it from the wheelhouse when it is missing)",
                "backups": "the backups themselves, left as they are"}
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
LEGACY_STAGING_PREFIX = ".tmp-restore-"  # earlier versions: it matched the temp prefix that create and prune remove


@dataclass
class RestoreRequest:
    """What ``backup_restore`` was asked for; None means the default."""

    dest: str
    archive: str = None
    backup_dir: str = None
    before: str = None
    name: str = None
    scope: object = "full"
    verify_first: bool = True
    safety_copy: bool = True
    safety_copies_keep: int = _safety.DEFAULT_KEEP  # of each item's safety copies, the newest kept after a restore
    safety_copies_max_age: str = _safety.DEFAULT_MAX_AGE  # and none older (None: no age limit)
    owner: str = None
    group: str = None
    force: bool = False
    keep: list = field(default_factory=lambda: list(DEFAULT_KEEP))
    required: list = None
    identity_file: str = None  # the age private key file encrypted archives need (only age reads it)
    allowed_signers: str = None  # an OpenSSH allowed_signers file: every link must be signed by a key in it
    trusted_signing_keys: list = None  # public key lines, trusted like allowed_signers
    require_same_root: bool = False  # refuse a dest other than the app root the backup recorded
    temp_dir: str = None
    newest_good: bool = False  # picked from backup_dir and failing verification: take the newest one that passes
    lock_timeout: float = 60.0
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class Scope:
    name: str  # full, database, config, systemd or paths
    paths: tuple = None  # None: everything (full) or not yet known (database)

    def wants(self, path: str) -> bool:
        """Stage ``path``: it lies in the scope, or is a folder above something that does (a database's page
        delta goes with its database)."""
        if self.paths is None:
            return True
        if path.endswith(DELTA_SUFFIX):
            path = path[:-len(DELTA_SUFFIX)]
        return any(path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in self.paths)


def parse_scope(scope) -> Scope:
    if isinstance(scope, str) and scope in SCOPES:
        return Scope(scope, tuple(SCOPE_PATHS[scope]) if scope in SCOPE_PATHS else None)
    if not isinstance(scope, (str, list, tuple)) or not all(isinstance(path, str) for path in
                                                            ([scope] if isinstance(scope, str) else scope)):
        raise BackupError("scope must be one of %s, or a list of paths relative to the app root (a %s was given)"
                          % (", ".join(SCOPES), type(scope).__name__))
    paths = [scope] if isinstance(scope, str) else list(scope)
    if not paths:
        raise BackupError("scope must be one of %s, or a list of paths relative to the app root" % ", ".join(SCOPES))
    cleaned = []
    for path in paths:
        text = str(path).strip().strip("/") if not str(path).startswith("/") else str(path)
        problem = check_path(text)
        if problem:
            raise BackupError("scope path %r cannot be restored: %s; list paths relative to the app root, such as "
                              "config/production.env" % (path, problem))
        cleaned.append(text)
    return Scope("paths", tuple(cleaned))


MAX_FALLBACK_CANDIDATES = 20  # older backups verified to find one that passes, newest first


class VerificationFailed(BackupError):
    """The backup picked for a restore failed verification (or is damaged); nothing was changed."""

    def __init__(self, message: str, archive: str) -> None:
        super().__init__(message)
        self.archive = archive


def restore(request: RestoreRequest, check_mode: bool = False, pause=None, job=None) -> dict:
    """Restore, holding the backup directory's readers' lock: no prune deletes a link of the chain being read.
    A backup picked from ``backup_dir`` (not named) that fails verification is never restored: the error names
    the newest older one that passes, and with ``newest_good`` that one is restored instead. ``job`` makes the
    RestoreJob (its arguments) when a caller stages more than the archive holds (the whole-service point in time)."""
    with _lock.reading(request.backup_dir or (request.archive and backup_dir_of(request.archive)),
                       request.lock_timeout, "backup_restore"):
        try:
            result = _restore(request, check_mode, pause, job)
        except VerificationFailed as failure:
            if request.archive or request.name or not request.backup_dir:
                raise  # the operator chose this backup: no other one is put in its place
            result = _newest_good_instead(request, check_mode, pause, failure, job)
        result.setdefault("passed_over", [])
        return result


def _newest_good_instead(request: RestoreRequest, check_mode: bool, pause, failure: VerificationFailed,
                         job=None) -> dict:
    good = _newest_passing(request, failure.archive)
    if good is None:
        raise BackupError("%s; no older backup of that kind in %s passes verification either (of the %d newest "
                          "checked)" % (failure, request.backup_dir, MAX_FALLBACK_CANDIDATES)) from None
    if not request.newest_good:
        raise BackupError("%s. The newest backup that passes verification is %s (made %s): restore it by name "
                          "(name: %s; reddit_backup_restore_name), or set newest_good: true "
                          "(reddit_backup_restore_newest_good: true) to take the newest one that passes"
                          % (failure, good["name"], good["created"], good["name"])) from None
    result = _restore(dataclasses.replace(request, name=good["name"], before=None), check_mode, pause, job)
    result["warnings"].append("the newest backup %s failed verification, so the newest one that passes, %s (made "
                              "%s), was restored instead" % (failure.archive, good["name"], good["created"]))
    result["passed_over"] = [failure.archive]
    return result


def _newest_passing(request: RestoreRequest, failed: str):
    """The newest backup older than ``failed`` (of the kinds the scope restores, at or before ``before``) that
    passes a comprehensive verification, or None."""
    types = SCOPE_TYPES.get(parse_scope(request.scope).name)
    backups = [b for b in list_backups(request.backup_dir) if b.get("restorable") and not b.get("damaged")
               and (types is None or b["type"] in types)]
    failed_entry = next((b for b in backups if b["archive"] == failed), None)
    if failed_entry is not None:
        backups = backups[:backups.index(failed_entry)]
    if request.before is not None:
        limit = parse_time(request.before)
        backups = [b for b in backups if parse_time(b["created"]) <= limit]
    for backup in list(reversed(backups))[:MAX_FALLBACK_CANDIDATES]:
        verdict = verify_archive(backup["archive"], "comprehensive", request.required, request.temp_dir,
                                 record=False, identity_file=request.identity_file)
        if verdict["valid"]:
            return backup
    return None


def _restore(request: RestoreRequest, check_mode: bool = False, pause=None, job=None) -> dict:
    """Restore one scope of one backup into ``request.dest``; returns what backup_restore reports. A backup that
    builds on others (incremental, database page deltas) is restored with its whole chain, root first.

    In check mode the archives are read and verified the same way, and the result says what would be replaced;
    nothing is written beside or in the destination. ``pause(step)`` is a test hook called between steps."""
    started = time.monotonic()
    scope = parse_scope(request.scope)
    _safety.check_rule(request.safety_copies_keep, request.safety_copies_max_age)
    chain = pick_chain(request.archive, request.backup_dir, request.before, request.name,
                       SCOPE_TYPES.get(scope.name))
    for archive in chain:
        if not os.path.isfile(archive):
            raise BackupError("archive %s does not exist or is not a file; check the path, or use backup_dir to "
                              "pick a backup" % archive)
    dest = os.path.realpath(os.path.abspath(request.dest))
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise BackupError("dest %s exists but is not a directory; move it away or choose another dest" % dest)
    owner = owner_ids(request.owner, request.group)
    trust = _signing.trust_from(request.allowed_signers, request.trusted_signing_keys)
    if trust is None:
        return _restore_chain(request, check_mode, pause, started, scope, chain, dest, owner, None, job)
    with trust:
        try:
            links = [trust.authenticate(archive) for archive in chain]
            problem = _signing.chain_problem(links)
        except _signing.Unauthentic as error:
            problem = str(error)
        if problem:
            raise BackupError("refusing to restore: %s. Nothing in %s was changed; restore a backup signed by a "
                              "trusted key" % (problem, dest))
        return _restore_chain(request, check_mode, pause, started, scope, chain, dest, owner, links, job)


def _restore_chain(request, check_mode, pause, started, scope, chain, dest, owner, signed, job=None) -> dict:
    """The restore of ``chain`` (its links' signed catalog entries in ``signed``, or None when not checked)."""
    metas = [link.meta for link in signed] if signed else [read_meta(archive) for archive in chain]
    if request.require_same_root and metas[-1]:  # fail fast; the manifest's own app_root is checked before the swap
        check_same_root(request, metas[-1].get("app_root"), chain[-1], dest)
    if scope.name == "full" and metas[0] and metas[0].get("type") not in (None, "full"):
        raise BackupError("scope full needs a full backup (or an incremental one, which builds on a full backup), "
                          "and %s is a %s backup; restore scope %s from it, or pick a full backup"
                          % (chain[-1], metas[0].get("type"), metas[0].get("type")))
    planned = [meta_database_paths(meta) for meta in metas]
    planned_databases = None if None in planned else sorted({path for paths in planned for path in paths})
    if scope.name == "database" and planned_databases is not None:
        scope = Scope("database", tuple(planned_databases))
    # Fail fast, before reading the archive; checked again from the manifest just before the swap.
    check_open_databases(dest, _databases_in_scope(planned_databases or [], scope), request.force)
    job = (job or RestoreJob)(request, chain, metas, dest, scope, owner, check_mode, pause)
    job.signed = signed
    result = job.run()
    result.update(authenticated=bool(signed), signed_by=signed[-1].describe() if signed else None,
                  authenticity=("checked: every link signed by a trusted key (%s)"
                                % ", ".join(sorted({link.fingerprint for link in signed}))) if signed
                  else _signing.NOT_CHECKED)
    result["duration"] = round(time.monotonic() - started, 3)
    return result


class RestoreJob:
    def __init__(self, request, chain, metas, dest, scope, owner, check_mode, pause) -> None:
        self.request = request
        self.chain = chain
        self.metas = metas
        self.archive = chain[-1]
        self.dest = dest
        self.scope = scope
        self.owner = owner
        self.check_mode = check_mode
        self.pause = pause or (lambda step: None)
        self.staging_id = None  # (device, inode) of the staging folder this restore made
        self.stamp = request.now.astimezone(timezone.utc).strftime(STAMP_FORMAT)
        self.parent = os.path.dirname(dest)
        self.warnings: list = []
        self.recovered: list = []
        self.root_only: set = set()  # staged paths the archive keeps from everyone but root
        self._root_type = None  # the type of the chain's first backup, once read
        self.signed = None  # each link's signed catalog entry, when trusted keys were given

    def run(self) -> dict:
        if self.check_mode:
            work_dir = tempfile.mkdtemp(prefix="reddit-backup-restore-check-", dir=self.request.temp_dir)
            try:
                return self._stage_and_swap(None, work_dir)
            finally:
                shutil.rmtree(work_dir, ignore_errors=True)
        if not os.path.isdir(self.parent):
            os.makedirs(self.parent, 0o755, exist_ok=True)
        with _lock.DirectoryLock(self.parent, self.request.lock_timeout, "restore into %s" % self.parent, name=None):
            for staging in _stale_staging(self.dest):
                self.recovered += _swap.recover(staging, self.dest)
                self.recovered.append("finished and removed %s, left by a killed restore" % staging)
            self.warnings += ["%s was left untouched: an earlier version's staging folder, or planted (this version "
                              "never trusts it); inspect it and remove it by hand" % path
                              for path in _stale_staging(self.dest, LEGACY_STAGING_PREFIX)]
            name = "%s%s-%s" % (STAGING_PREFIX, os.path.basename(self.dest), secrets.token_hex(6))
            staging = os.path.join(self._staging_parent(), name)
            os.mkdir(staging, 0o700)
            try:
                os.chmod(staging, 0o700)  # recovery trusts only a 0700 folder: exactly that, whatever the umask
                self.staging_id = _swap.write_marker(staging, self.dest, Anchor(self.parent))
                os.mkdir(os.path.join(staging, "verify"), 0o700)
                result = self._stage_and_swap(staging, os.path.join(staging, "verify"))
            except _swap.StagingReplaced:
                raise  # the folder at that name is not ours: nothing there to recover or remove
            except BaseException:
                _swap.recover(staging, self.dest)  # after a failure mid-swap this finishes each unit; else cleans up
                raise
            _swap.recover(staging, self.dest)
            result["safety_copies_removed"] = self._apply_safety_retention(result)
            return result

    def _apply_safety_retention(self, result: dict) -> list:
        """The safety copies' retention rule, after the swap, under the restore's lock; this restore's own copies
        are always kept."""
        removed = _safety.prune_held(self.dest, self.request.safety_copies_keep, self.request.safety_copies_max_age,
                                     self.request.now, protect=set(result["safety_copies"]))
        return [copy["path"] for copy in removed]

    def _staging_parent(self) -> str:
        """Beside dest, on dest's filesystem; inside dest when dest is a mount point."""
        if os.path.isdir(self.dest) and os.stat(self.dest).st_dev != os.stat(self.parent).st_dev:
            return self.dest
        return self.parent

    def _stage_chain(self, tree, work_dir) -> tuple:
        """Read every link of the chain into the staged tree, verifying each; returns (the state as one
        manifest, verification of the last link, members read, file bytes staged)."""
        stager = None
        if tree:
            os.mkdir(tree, 0o700)
            stager = Stager(tree, self.scope.wants, 0)
            stager.on_add = self.pause
        index: dict = {}
        previous, previous_sha256 = None, None
        rebuilt: list = []
        members = 0
        try:
            for position, (archive, meta) in enumerate(zip(self.chain, self.metas)):
                if stager is not None:
                    budget = link_budget(meta)
                    stager.budget = None if budget is None or stager.budget is None else stager.budget + budget
                    stager.overlay = position > 0
                copies = os.path.join(work_dir, "link-%d" % position)  # databases out of scope, copied to check
                os.mkdir(copies, 0o700)
                verifier = Verifier("comprehensive", copies, self.request.required, meta_database_paths(meta),
                                    extras=self.request.verify_first, recheck="none" if self.signed else "quick")
                verifier.meta = meta
                reader = self._read(archive, meta, verifier, stager)
                verification = self._verification(archive, verifier, reader, position)
                shutil.rmtree(copies, ignore_errors=True)
                manifest = reader.manifest
                check_link(previous, manifest, previous_sha256)
                merge_state(index, manifest)
                check_composed(index, manifest.get("name"))
                if stager is not None:
                    rebuilt += apply_link(tree, manifest, self.scope.wants, stager)
                members += len(verifier.observed)
                previous, previous_sha256 = manifest, reader.archive_sha256
        finally:
            if stager is not None:
                stager.close()
        self.pause("staged")
        if self.scope.name == "full" and self._root_type != "full":
            raise BackupError("scope full needs a full backup, and the chain of %s starts with a %s backup; nothing "
                              "was changed" % (self.archive, self._root_type))
        if self.request.verify_first:
            self._check_rebuilt(tree, rebuilt, verification)
        state = dict(previous, members=list(index.values()), type=self._root_type)
        return state, verification, members, stager

    def _read(self, archive, meta, verifier, stager):
        try:
            with ArchiveReader(archive, identity_file=self.request.identity_file) as reader:
                run_pass(reader, verifier, stager)
        except DamagedArchive as error:
            raise VerificationFailed("refusing to restore: %s. Nothing in %s was changed" % (error, self.dest),
                                     self.archive) from None
        except UnknownFormat as error:
            damaged = " (and its catalog entry says format %s: it is damaged)" % _manifest.FORMAT_VERSION \
                if catalog_says_known_format(meta) else ""
            raise VerificationFailed("refusing to restore: %s%s. Nothing in %s was changed"
                                     % (error, damaged, self.dest), self.archive) from None
        if archive == self.chain[0]:
            self._root_type = reader.manifest.get("type")
        return reader

    def _check_rebuilt(self, tree, rebuilt: list, verification: dict) -> None:
        """The databases rebuilt from page deltas pass PRAGMA integrity_check before they can be swapped in."""
        for path in sorted(set(rebuilt)):
            verdict = _sqlite.check_integrity(os.path.join(tree, path), "full")
            verification["checks"].append(check("rebuilt:%s" % path, verdict == "ok", "PRAGMA integrity_check: %s"
                                                % verdict))
            if verdict != "ok":
                raise BackupError("refusing to restore: database %s rebuilt from the chain of %s fails its integrity "
                                  "check (%s). Nothing in %s was changed" % (path, self.archive, verdict, self.dest))

    def _live_hashes(self) -> LiveHashes:
        """Dest's databases of the size the catalog entry records, hashed meanwhile (the entry is only a hint:
        whether each is current is judged on the manifest, as before)."""
        sizes = {}
        for database in (self.metas[-1] or {}).get("databases") or []:
            path = database.get("path") if isinstance(database, dict) else None
            if isinstance(path, str) and isinstance(database.get("size"), int) and self.scope.wants(path) \
                    and check_path(path) is None:
                sizes[os.path.join(self.dest, path)] = database["size"]
        return LiveHashes(sizes)

    def _stage_and_swap(self, staging, work_dir) -> dict:
        tree = os.path.join(staging, _swap.TREE_NAME) if staging else None
        live_hashes = self._live_hashes()
        manifest, verification, members, stager = self._stage_chain(tree, work_dir)
        if staging:  # the plan reads the staged tree by path: it must still be the folder this restore made
            os.close(_swap.open_staging(staging, Anchor(self.parent), self.staging_id))
        if stager is not None:
            stager.finalize()
            self.warnings += ["setuid/setgid bits dropped from %s" % path for path in stager.cleared]
            self.root_only = set(stager.root_only)
        if self.request.require_same_root:
            check_same_root(self.request, manifest.get("app_root"), self.archive, self.dest)
        target = Target(self.archive, self.dest, self.parent, self.scope, self.request.keep, self.request.safety_copy,
                        self.stamp, self.owner, self.root_only, self._staging_parent() == self.parent, self.warnings)
        plan = Plan(target, manifest, tree, staging, live_hashes)
        databases = _databases_in_scope([d["path"] for d in manifest["databases"]], self.scope, plan.units)
        self.warnings += check_open_databases(self.dest, databases, self.request.force)
        pending = [unit for unit in plan.units if not plan.is_current(unit)]
        aside = plan.aside
        result = {"changed": bool(pending or aside), "archive": self.archive, "chain": list(self.chain),
                  "dest": self.dest, "scope": self.scope.name if self.scope.name != "paths" else list(self.scope.paths),
                  "restored": [unit["target"] for unit in pending],
                  "safety_copies": plan.safety_copies(pending),
                  "databases": [path for path in databases if any(under(path, unit["path"]) for unit in pending)],
                  "missing": plan.missing,
                  "not_restored": not_restored(self.scope, self.request.keep, plan.missing, manifest["members"]),
                  "members": members, "unit_states": recorded_unit_states(manifest),
                  "bytes": stager.written if stager else None, "verification": verification,
                  "recovered": self.recovered, "warnings": self.warnings, "safety_copies_removed": []}
        if self.check_mode or not result["changed"]:
            return result
        _swap.check_same_filesystem(staging, [unit["target"] for unit in pending] + [e["target"] for e in aside])
        try:
            plan.prepare(pending)
            _swap.sync_filesystem(staging)
            root = plan.safety_root if plan.safety_root in result["safety_copies"] else None
            swapper = _swap.Swapper(staging, pending, aside, root, self.dest, self.staging_id)
            swapper.write_journal()
            self.pause("journal")
            swapper.run(self.pause)
        except OSError as error:
            raise BackupError("the restore into %s stopped at %s: %s (something in dest changed while the restore "
                              "ran); every item is old or new, the replaced ones in their safety copies: check "
                              "dest and run the restore again" % (self.dest, error.filename or self.dest,
                                                                  error.strerror or error)) from None
        self.pause("swapped")
        return result

    def _verification(self, archive: str, verifier: Verifier, reader, position: int) -> dict:
        sidecar_sha256, sidecar_error = None, None
        if self.request.verify_first:
            try:
                sidecar_sha256 = read_checksum(archive)
            except BackupError as error:
                sidecar_error = "%s (set verify_first: false to restore an archive without its sidecars)" % error
        checks = verifier.conclude(reader, None, sidecar_sha256, sidecar_error)
        if self.signed:  # never skipped: the bytes read must be those signed, the manifest the one described
            link = self.signed[position]
            checks.append(signature_check(archive, link, reader.archive_sha256))
            if not self.request.verify_first and reader.manifest is not None:
                checks.append(catalog_check(reader.manifest, link.meta))
        status, reason, errors = judge(checks)
        verification = {"level": "comprehensive" if self.request.verify_first else "members", "status": status,
                        "valid": status == "valid", "reason": reason, "checks": checks, "errors": errors,
                        "archive_sha256": reader.archive_sha256,
                        "verified_at": _manifest.utc_timestamp(datetime.now(timezone.utc)),
                        "tool_version": _manifest.TOOL_VERSION}
        if self.request.verify_first and not self.check_mode:
            try:
                _verdict.write_verdict(archive, verification)
            except BackupError as error:
                self.warnings.append("the verification verdict was not recorded: %s" % error)
        if status != "valid":
            message = ("refusing to restore from %s: it failed verification (%s). Nothing in %s was changed; "
                       "restore from another backup" % (archive, "; ".join(errors[:5]), self.dest))
            raise VerificationFailed(message, self.archive)
        return verification


def check_same_root(request: RestoreRequest, recorded, archive: str, dest: str) -> None:
    """Refuse a dest that is not the app root the backup was made of (a typo'd root would be filled and used)."""
    if not isinstance(recorded, str) or not recorded:
        raise BackupError("refusing to restore %s into %s: the backup records no app root to compare with; nothing "
                          "was changed. Set require_same_root: false to restore it anyway" % (archive, dest))
    given = os.path.normpath(os.path.abspath(request.dest))
    if os.path.normpath(recorded) in (given, dest) or os.path.realpath(recorded) in (given, dest):
        return
    raise BackupError("refusing to restore into %s: backup %s was made of %s (its recorded app_root), a different "
                      "path; nothing was changed. Fix the app root you gave (a typo?), or restore into another root "
                      "on purpose with require_same_root: false (the restore playbooks: "
                      "reddit_backup_restore_to_other_root: true)" % (given, archive, recorded))


def not_restored(scope: Scope, keep, missing: list, members: list) -> list:
    """What this restore leaves as it is, in words, so no summary implies the whole application came back."""
    left = ["%s: not in the backup" % path for path in missing]
    if scope.name != "full":
        inside = "the databases" if scope.name == "database" else ", ".join(scope.paths or ())
        left.append("everything outside scope %s (%s): left as it is" % (scope.name, inside))
        return left
    for name in keep or ():
        left.append("%s/: %s" % (name, KEPT_REASONS.get(name, "kept in place (keep)")))
    never = [pattern for pattern in DEFAULT_EXCLUDES if pattern not in (keep or ())]
    left.append("%s: never in a backup" % ", ".join(never))
    if not any(SAFETY_INFIX in member["path"].split("/")[0] for member in members):
        left.append("safety copies of earlier restores (*%s*): not in this backup" % SAFETY_INFIX)
    return left


def _databases_in_scope(databases: list, scope: Scope, units=None) -> list:
    if units is not None:
        return [path for path in databases if any(under(path, unit["path"]) for unit in units)]
    if scope.paths is None or scope.name == "database":
        return list(databases) if scope.paths is None else [p for p in databases if p in scope.paths]
    return [path for path in databases if any(under(path, p) for p in scope.paths)]


def check_open_databases(dest: str, databases: list, force: bool) -> list:
    """Refuse (unless ``force``) to replace a database that a running process holds open."""
    paths = []
    for path in databases:
        live = os.path.join(dest, path)
        paths += [live] + _swap.side_files(live)
    if not paths:
        return []
    found, warnings = _procs.in_use(paths)
    if found:
        by_process: dict = {}
        for holder in found:
            by_process.setdefault((holder["pid"], holder["command"]), []).append(holder["path"])
        described = "; ".join("PID %d (%s) holds %s" % (pid, " ".join(command.split())[:80], ", ".join(held))
                              for (pid, command), held in list(by_process.items())[:5])
        if not force:
            raise BackupError("refusing to restore over a database in use: %s. Stop the service first (the restore "
                              "playbooks do), or set force: true to replace it anyway" % described)
        warnings.append("force: replaced a database in use by %s; those processes keep the old file open" % described)
    return warnings


def _stale_staging(dest: str, staging_prefix: str = STAGING_PREFIX) -> list:
    """Staging folders that killed restores into ``dest`` left (beside it, or inside it for a mount point)."""
    found = []
    prefix = "%s%s-" % (staging_prefix, os.path.basename(dest))
    for folder, stem in ((os.path.dirname(dest), prefix), (dest, prefix)):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found += [os.path.join(folder, name) for name in names if name.startswith(stem)]
    return found


def owner_ids(owner, group) -> tuple:
    uid = gid = -1
    try:
        if owner is not None:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        if group is not None:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
    except (KeyError, ValueError):  # ValueError: a name holding a NUL byte, which no account has
        raise BackupError("unknown owner %r or group %r on this host; create the user and group first (the new "
                          "server playbook does) or leave them unset" % (owner, group)) from None
    return uid, gid
