# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup from start to finish: select, lock, find the parent, snapshot, archive, commit."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import chain as _chain
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import crypto as _crypto
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils import _nofollow
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import pages as _pages
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import selection as _selection
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import signing as _signing
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import unit_states as _unit_states
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import wheelhouse as _wheelhouse
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.writer import ArchiveWriter
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.compress import CompressedWriter, suffix_for
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, NoSpace
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import DirectoryLock, ensure_readers_file
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import CONFIG_FILES, required_problem

CHAIN_TYPES = ("full", "incremental", "database")  # the types that leave a state index to build on
# auto, the default: the full check on a snapshot stored whole, quick_check on one stored as a page delta.
INTEGRITY_CHOICES = ("auto",) + _sqlite.INTEGRITY_LEVELS


@dataclass
class BackupRequest:
    """What ``backup_create`` was asked for; None means the guide's default."""

    app_root: str
    backup_dir: str
    type: str = "full"
    name: str = None
    include: list = None
    exclude: list = None
    databases: list = None
    compression: str = "zstd"
    integrity: str = "auto"
    lock_timeout: float = 60.0
    chain_max: int = None
    encryption_recipients: list = None  # age public keys; the archive is encrypted to each of them
    encryption_recipients_file: str = None  # a file of age public keys, one a line
    wheelhouse: str = None  # a folder of wheels a full backup carries under wheelhouse/ (see _wheelhouse)
    signing_key: str = None  # an OpenSSH private key (root's, 0600): the catalog entry is signed with it
    required: list = None  # files a config backup must hold (None: _verify.CONFIG_FILES, what verify requires)
    progress: object = None  # called as progress(bytes_read, bytes_to_read) while file data is archived
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def create_backup(request: BackupRequest, check_mode: bool = False) -> dict:
    """Make one backup; returns what the module reports. In check mode, select and report only: nothing is
    written, not even the backup directory."""
    started = time.monotonic()
    if request.type not in _catalog.TYPES:
        raise BackupError("type must be one of %s, not %r" % (", ".join(_catalog.TYPES), request.type))
    recipients = _crypto.normalize_recipients(request.encryption_recipients, request.encryption_recipients_file)
    if recipients:
        _crypto.require_age()
    suffix = suffix_for(request.compression, encrypted=bool(recipients))
    if request.integrity not in INTEGRITY_CHOICES:
        raise BackupError("integrity must be one of %s, not %r"
                          % (", ".join(INTEGRITY_CHOICES), request.integrity))
    if request.name:
        _catalog.check_name(request.name)
    signing_key = _signing.check_signing_key(request.signing_key) if request.signing_key is not None else None
    if signing_key:
        _signing.require_tool()
    app_root = os.path.abspath(request.app_root)
    backup_dir = _catalog.check_backup_dir(request.backup_dir, app_root)
    selection = _selection.select(app_root, "full" if request.type == "incremental" else request.type,
                                  request.include, request.exclude, request.databases, backup_dir)
    _refuse_missing_required(request, selection, app_root)
    wheelhouse = None
    if request.wheelhouse:
        if request.type != "full":
            raise BackupError("wheelhouse is for full backups (the ones a new server is rebuilt from), not %s ones"
                              % request.type)
        wheelhouse = _wheelhouse.add_to_selection(selection, request.wheelhouse, app_root)
    if check_mode:
        backup_type, parent, notes = _start_chain(request, _catalog.list_backups(backup_dir))
        archive, name = _catalog.new_archive_path(backup_dir, backup_type, request.name, suffix, request.now)
        return dict(_result(archive, name, backup_type, request, selection, started, parent, notes),
                    encrypted=bool(recipients), wheelhouse=wheelhouse, signed=bool(signing_key), signature=None,
                    signature_key=None, unit_states=None,
                    unit_states_note="unit states are read when the backup is made, not in check mode")
    units, units_note = _record_unit_states(selection)
    _fs.ensure_private_dir(backup_dir)
    with DirectoryLock(backup_dir, request.lock_timeout, "backup_create %s" % request.type):
        _catalog.remove_incomplete(backup_dir)
        ensure_readers_file(backup_dir)
        backups = _catalog.list_backups(backup_dir)
        backup_type, parent, notes = _start_chain(request, backups)
        subdir = _catalog.NAMED_DIR if request.name else _catalog.TYPE_DIRS[backup_type]
        folder = os.path.join(backup_dir, subdir)
        _ensure_type_folder(backup_dir, subdir)
        archive, name = _catalog.new_archive_path(backup_dir, backup_type, request.name, suffix, request.now)
        _check_free_space(folder, selection, backups, backup_type)
        parent_index = _chain.read_index(parent["archive"]) if parent else None
        job = _ArchiveJob(folder, archive, name, backup_type, request, selection, app_root, parent, parent_index)
        job.recipients = recipients
        job.signing_key = signing_key
        job.units = units
        try:
            manifest, size, sha256 = job.run()
        finally:
            job.remove_temps()
    return dict(_result(archive, name, backup_type, request, selection, started, parent, notes, manifest, size,
                        sha256), encrypted=bool(recipients), wheelhouse=wheelhouse, signed=bool(signing_key),
                unit_states=units, unit_states_note=units_note, **job.signature)


def _record_unit_states(selection) -> tuple:
    """(the units' states, None) when the backup takes unit files and systemctl can tell; else (None, why)."""
    names = _unit_states.unit_names(selection.entries)
    if not names:
        return None, "no unit files under %s/ in this backup" % _unit_states.UNIT_DIR
    return _unit_states.record(names)


def _refuse_missing_required(request: BackupRequest, selection, app_root: str) -> None:
    """A configuration backup without a required file would be recorded as the newest good configuration, and
    restored over a working one: refuse it, naming the files (the verification of the backup would fail too)."""
    if request.type != "config":
        return
    required = CONFIG_FILES if request.required is None else request.required
    problem = required_problem(required)
    if problem:
        raise BackupError(problem)
    taken = {entry.path for entry in selection.entries if entry.kind == "file"}
    missing = [path for path in required if path.strip("/") not in taken]
    if missing:
        raise BackupError("configuration backup refused: required configuration files are missing under %s: %s. "
                          "It would be recorded as the newest configuration backup and a restore_config would bring "
                          "the damage back. Restore them (restore_config takes the newest backup that has them), or "
                          "set required to the files this application needs; nothing was written"
                          % (app_root, ", ".join(missing)))


def _ensure_type_folder(backup_dir: str, subdir: str) -> None:
    """The type folder as a real 0700 directory, made and tightened through descriptors (never a planted link)."""
    root = _fs.open_dir(backup_dir)
    try:
        _fs.ensure_private_dir(subdir, dir_fd=root)
    finally:
        os.close(root)


def _start_chain(request: BackupRequest, backups: list) -> tuple:
    """(effective type, parent or None, notes). An incremental with nothing to build on is taken as full."""
    parent = _chain.find_parent(backups, request.type, request.chain_max)
    if request.type == "incremental" and parent is None:
        return "full", None, ["no full backup to build an incremental on in this backup directory: this backup "
                              "was taken as a full backup"]
    return request.type, parent, []


class _ArchiveJob:
    """The temp files of one backup, and the order in which they become a committed backup."""

    def __init__(self, folder, archive, name, backup_type, request, selection, app_root, parent, parent_index):
        self.folder = folder
        self.archive = archive
        self.name = name
        self.type = backup_type
        self.request = request
        self.selection = selection
        self.app_root = app_root
        self.parent = parent
        self.parent_index = parent_index
        self.temps: list = []
        self.committed = False
        self.recipients: list = []
        self.signing_key = None
        self.units = None  # the units' states at backup time (see _unit_states), or None
        self.signature = {"signature": None, "signature_key": None}

    def _temp(self, stem: str) -> str:
        path = _fs.temp_path(self.folder, stem)
        self.temps.append(path)
        return path

    def run(self) -> tuple:
        snapshots = self._snapshot_databases()
        checks = _IntegrityChecks(snapshots, self._check_levels(snapshots))
        checks.start()
        tmp_archive = self._temp(os.path.basename(self.archive))
        try:
            handle = _fs.open_private(tmp_archive)
        except OSError as error:
            raise _fs.as_backup_error(error, tmp_archive) from error
        with handle:
            writer_stream = CompressedWriter(handle, self.archive, self.request.compression, self.recipients)
            try:
                manifest, index = self._write_tar(writer_stream, snapshots, checks)
                writer_stream.close()
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as error:
                writer_stream.abort()
                raise _fs.as_backup_error(error, self.archive) from error
            except BaseException:
                writer_stream.abort()
                raise
        sha256 = writer_stream.sha256.hexdigest()
        checksum_path, meta_path = _catalog.sidecar_paths(self.archive)
        sidecars = [checksum_path, meta_path] + ([self.archive + _chain.INDEX_SUFFIX] if index else [])
        self.temps += sidecars  # removed again unless the archive commits
        if index:
            _chain.write_index(self.archive, index)
        _fs.atomic_write_bytes(checksum_path, _catalog.checksum_line(sha256, self.archive))
        meta_bytes = _manifest.encode(_manifest.catalog_entry(manifest, writer_stream.size, sha256))
        _fs.atomic_write_bytes(meta_path, meta_bytes)
        if self.signing_key:  # before the commit: a committed signed backup always has its signature
            self.temps.append(self.archive + _catalog.SIGNATURE_SUFFIX)
            self.signature = _signing.write_signature(self.archive, self.signing_key, meta_bytes,
                                                      _fs.atomic_write_bytes)
        _fs.commit_no_clobber(tmp_archive, self.archive)
        self.committed = True
        return manifest, writer_stream.size, sha256

    def _stored_as_delta(self, path: str, facts: dict) -> bool:
        """A database is stored as a page delta when the parent's index knows it at the same page size."""
        previous = (self.parent_index or {}).get("databases", {}).get(path)
        return previous is not None and previous["page_size"] == facts["page_size"]

    def _check_levels(self, snapshots: dict) -> dict:
        """The backup-time check of each snapshot (see check_level)."""
        return {path: check_level(self.request.integrity, self._stored_as_delta(path, facts))
                for path, (_snapshot_path, facts) in snapshots.items()}

    def _snapshot_databases(self) -> dict:
        snapshots = {}
        for entry in self.selection.databases:
            path = self._temp("snapshot-%s" % os.path.basename(entry.path))
            try:
                facts = _sqlite.snapshot(entry.source, path, expected=entry.stat)
            except _nofollow.Replaced as error:
                raise BackupError("%s; the backup was not kept (a backup without its database is no backup of "
                                  "the service). Find out what replaces it and run the backup again" % error) \
                    from None
            except OSError as error:
                raise _fs.as_backup_error(error, path) from error
            facts.pop("snapshot_seconds", None)
            snapshots[entry.path] = (path, facts)
        return snapshots

    def _write_tar(self, stream, snapshots: dict, checks: "_IntegrityChecks") -> tuple:
        writer = ArchiveWriter(stream, self._progress_counter())
        parent_members = self.parent_index["members"] if self.parent_index else {}
        states: dict = {}
        database_records = []
        for entry in self.selection.entries:
            if entry.database:
                database_records.append(self._add_database(writer, entry, snapshots[entry.path]))
                states[entry.path] = {"type": "file", "database": True}
                continue
            previous = parent_members.get(entry.path)
            if previous is not None and entry.kind != "dir" and _unchanged(entry, previous, self.app_root):
                states[entry.path] = dict(previous, mtime=int(entry.stat.st_mtime))
                continue
            try:
                record = self._add_member(writer, entry)
            except _nofollow.Replaced as error:
                writer.warnings.append("%s left out of this backup: %s (the next backup takes it as it is then)"
                                       % (entry.path, error))
                continue
            if not _wheelhouse.carried(entry.path):  # the wheels ride along: not the application's state
                states[entry.path] = _chain.member_state(record)
        results = checks.wait()
        for record in database_records:
            record["integrity"] = results[record["path"]]
            record["integrity_level"] = checks.levels[record["path"]]
            if record["integrity"] not in ("ok", "skipped"):
                raise BackupError("database %s failed its integrity check (%s); the backup was not kept, since "
                                  "restoring it would restore the damage. Investigate the live database and "
                                  "restore it from an earlier backup" % (record["path"], record["integrity"]))
        header = _manifest.new_header(self.type, self.name, self.request.now, socket.gethostname(),
                                      self.app_root, self.parent["name"] if self.parent else None,
                                      self.request.compression)
        header["depth"] = (self.parent.get("depth") or 0) + 1 if self.parent else 0
        if self.parent:  # the parent by its bytes, not its name (names can be reused): a signed entry pins the chain
            header["parent_sha256"] = self.parent["sha256"]
        if self.recipients:  # public keys only: the catalog can say who can read the backup
            header["encryption"] = {"tool": "age", "recipients": list(self.recipients)}
        if self.units is not None:  # in the header, so the .meta.json has it too: readable without decrypting
            header["units"] = self.units
        manifest = dict(header, members=writer.members, databases=database_records,
                        warnings=self.selection.warnings + writer.warnings)
        digests = {record["path"]: record.pop("page_digests") for record in database_records}  # index, not manifest
        if self.parent:
            manifest["deleted"] = sorted(set(parent_members) - set(states))
        writer.add_manifest(_manifest.encode(manifest))
        writer.close()
        index = None
        if self.type in CHAIN_TYPES:
            databases = {record["path"]: {"sha256": record["sha256"], "page_size": record["page_size"],
                                          "page_count": record["page_count"],
                                          "hashes": _pages.encode_hashes(digests[record["path"]])}
                         for record in database_records}
            index = {"members": states, "databases": databases}
        return manifest, index

    def _progress_counter(self):
        """None without a progress callback; else a counter of the bytes read, reported against the total."""
        if self.request.progress is None:
            return None
        total = sum(entry.stat.st_size for entry in self.selection.entries if entry.kind == "file")
        done = [0]

        def count(size: int) -> None:
            done[0] += size
            self.request.progress(done[0], max(total, done[0]))
        return count

    def _add_member(self, writer: ArchiveWriter, entry) -> dict:
        if entry.kind == "dir":
            return writer.add_dir(entry.path, entry.stat)
        if entry.kind == "symlink":
            return writer.add_symlink(entry.path, entry.stat, _nofollow.read_link(self.app_root, entry.path,
                                                                                  entry.stat))
        return writer.add_file(entry.path, entry.source, expected=entry.stat)

    def _add_database(self, writer: ArchiveWriter, entry, snapshot: tuple) -> dict:
        """The whole snapshot, or (with a parent that knows this database) only the pages that changed. Page
        hashes, for the next delta, come from the read that streams or diffs the snapshot."""
        snapshot_path, facts = snapshot
        if not self._stored_as_delta(entry.path, facts):
            page_size = facts["page_size"] if self.type in CHAIN_TYPES else 0
            record = writer.add_file(entry.path, snapshot_path, entry.stat, page_size=page_size)
            return dict(facts, path=entry.path, sha256=record["sha256"], size=record["size"], delta=False,
                        page_digests=record.pop("page_digests", b""))
        previous = self.parent_index["databases"][entry.path]
        hashes, whole = _pages.page_hashes(snapshot_path, facts["page_size"])
        delta_path = self._temp("delta-%s" % os.path.basename(entry.path))
        header = _pages.write_delta(snapshot_path, hashes, _pages.decode_hashes(previous["hashes"]),
                                    facts["page_size"], delta_path, whole, previous["sha256"])
        record = writer.add_file(entry.path + _pages.DELTA_SUFFIX, delta_path, entry.stat)
        record.update(type="pagedelta", database=entry.path)
        return dict(facts, path=entry.path, sha256=whole, delta=True, delta_member=entry.path + _pages.DELTA_SUFFIX,
                    changed_pages=header["changed_pages"], base_sha256=previous["sha256"], page_digests=hashes)

    def remove_temps(self) -> None:
        for path in self.temps:
            if self.committed and not os.path.basename(path).startswith(_fs.TEMP_PREFIX):
                continue  # a committed backup's sidecars
            _fs.remove_quietly(path)


def check_level(asked: str, delta: bool) -> str:
    """The check a snapshot gets at backup time: the level asked; under ``auto``, ``full`` for a snapshot stored
    whole and ``quick`` for one stored as a page delta. A delta's full check spares no restore (a restore never
    trusts a delta's record: it runs integrity_check on the database it rebuilds from the chain,
    restore._check_rebuilt), while quick_check still reads every page, so a damaged page still fails the backup."""
    if asked != "auto":
        return asked
    return "quick" if delta else "full"


def _unchanged(entry, previous: dict, app_root: str) -> bool:
    """Size and mtime first; when only the mtime moved, the sha256 decides (content that did not change is not
    stored again). What was replaced since its selection counts as changed (and is then left out)."""
    try:
        return _same_as_before(entry, previous, app_root)
    except _nofollow.Replaced:
        return False


def _same_as_before(entry, previous: dict, app_root: str) -> bool:
    if entry.kind == "symlink":
        return previous.get("type") == "symlink" \
            and previous.get("target") == _nofollow.read_link(app_root, entry.path, entry.stat)
    if previous.get("type") != "file" or previous.get("size") != entry.stat.st_size \
            or previous.get("mode") != "%04o" % (entry.stat.st_mode & 0o7777):
        return False
    if previous.get("mtime") == int(entry.stat.st_mtime):
        return True
    return _nofollow.sha256_selected(entry.source, entry.stat) == previous.get("sha256")


class _IntegrityChecks:
    """Integrity checks of the snapshots, each at its own level (by path), run in threads while the archive
    streams (SQLite releases the GIL)."""

    def __init__(self, snapshots: dict, levels: dict) -> None:
        self.snapshots = snapshots
        self.levels = levels
        self.results: dict = {}
        self.threads: list = []

    def start(self) -> None:
        for path, (snapshot_path, _facts) in self.snapshots.items():
            thread = threading.Thread(target=self._check, args=(path, snapshot_path), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _check(self, path: str, snapshot_path: str) -> None:
        self.results[path] = _sqlite.check_integrity(snapshot_path, self.levels[path])

    def wait(self) -> dict:
        for thread in self.threads:
            thread.join()
        return self.results


def _check_free_space(folder: str, selection, backups: list, backup_type: str) -> None:
    """Refuse to start a backup that cannot fit: snapshots are written uncompressed, and the archive is
    estimated from the newest backup of this type (or the uncompressed total for a first backup)."""
    snapshot_bytes = sum(entry.stat.st_size for entry in selection.databases)
    previous = [b for b in backups if b["type"] == backup_type]
    if previous:
        archive_bytes = int((previous[-1]["size"] or 0) * 1.1)
    else:
        archive_bytes = sum(entry.stat.st_size for entry in selection.entries if entry.kind == "file")
    needed = snapshot_bytes + archive_bytes
    available = _fs.free_bytes(folder)
    if needed > available:
        raise NoSpace("not enough free space in %s: this backup needs about %d bytes (database snapshots %d, "
                      "archive about %d) and %d are free; free space there, prune old backups, or choose "
                      "another backup_dir" % (folder, needed, snapshot_bytes, archive_bytes, available))


def _result(archive, name, backup_type, request, selection, started, parent, notes, manifest=None, size=None,
            sha256=None) -> dict:
    """What backup_create reports; without a manifest (check mode) only what would be written."""
    files = [entry for entry in selection.entries if entry.kind == "file"]
    result = {
        "changed": True,
        "archive": archive,
        "name": name,
        "type": backup_type,
        "parent": parent["name"] if parent else None,
        "depth": (parent.get("depth") or 0) + 1 if parent else 0,
        "created": _manifest.utc_timestamp(request.now),
        "files": len(files),
        "bytes": sum(entry.stat.st_size for entry in files),
        "missing": selection.missing,
        "deleted": [],
        "duration": round(time.monotonic() - started, 3),
    }
    if manifest is not None:
        stored = [member for member in manifest["members"] if member["type"] in ("file", "pagedelta")]
        result.update(size=size, sha256=sha256, databases=manifest["databases"],
                      warnings=notes + manifest["warnings"], deleted=manifest.get("deleted", []),
                      stored_files=len(stored), bytes=sum(member["size"] for member in stored))
    else:
        result.update(size=None, sha256=None, warnings=notes + selection.warnings, stored_files=None,
                      databases=[{"path": entry.path} for entry in selection.databases])
    return result
