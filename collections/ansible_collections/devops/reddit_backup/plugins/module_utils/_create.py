# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup from start to finish: select, lock, snapshot, archive, commit."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import _catalog, _fs, _manifest, _selection, _sqlite
from ._archive import ArchiveWriter
from ._compress import CompressedWriter, suffix_for
from ._errors import BackupError, NoSpace
from ._lock import DirectoryLock

CREATABLE_TYPES = ("full", "config", "database")  # incremental arrives with the page-delta engine


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
    integrity: str = "quick"
    lock_timeout: float = 60.0
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def create_backup(request: BackupRequest, check_mode: bool = False) -> dict:
    """Make one backup; returns what the module reports. In check mode, select and report only: nothing is
    written, not even the backup directory."""
    started = time.monotonic()
    if request.type not in CREATABLE_TYPES:
        raise BackupError("type must be one of %s, not %r" % (", ".join(CREATABLE_TYPES), request.type))
    suffix = suffix_for(request.compression)
    if request.integrity not in _sqlite.INTEGRITY_LEVELS:
        raise BackupError("integrity must be one of %s, not %r"
                          % (", ".join(_sqlite.INTEGRITY_LEVELS), request.integrity))
    app_root = os.path.abspath(request.app_root)
    backup_dir = os.path.abspath(request.backup_dir)
    selection = _selection.select(app_root, request.type, request.include, request.exclude, request.databases,
                                  backup_dir)
    if request.name:
        _catalog.check_name(request.name)
    if check_mode:
        archive, name = _catalog.new_archive_path(backup_dir, request.type, request.name, suffix, request.now)
        return _result(archive, name, request, selection, started)
    folder = os.path.join(backup_dir, _catalog.NAMED_DIR if request.name else _catalog.TYPE_DIRS[request.type])
    _fs.ensure_private_dir(backup_dir)
    _fs.ensure_private_dir(folder)
    with DirectoryLock(backup_dir, request.lock_timeout, "backup_create %s" % request.type):
        _catalog.remove_incomplete(backup_dir)
        archive, name = _catalog.new_archive_path(backup_dir, request.type, request.name, suffix, request.now)
        _check_free_space(folder, selection, backup_dir, request.type)
        job = _ArchiveJob(folder, archive, request, selection, app_root, name)
        try:
            manifest, size, sha256 = job.run()
        finally:
            job.remove_temps()
    return _result(archive, name, request, selection, started, manifest, size, sha256)


class _ArchiveJob:
    """The temp files of one backup, and the order in which they become a committed backup."""

    def __init__(self, folder, archive, request, selection, app_root, name) -> None:
        self.folder = folder
        self.archive = archive
        self.request = request
        self.selection = selection
        self.app_root = app_root
        self.name = name
        self.temps: list = []
        self.committed = False

    def _temp(self, stem: str) -> str:
        path = _fs.temp_path(self.folder, stem)
        self.temps.append(path)
        return path

    def run(self) -> tuple:
        snapshots = self._snapshot_databases()
        checks = _IntegrityChecks(snapshots, self.request.integrity)
        checks.start()
        tmp_archive = self._temp(os.path.basename(self.archive))
        try:
            handle = _fs.open_private(tmp_archive)
        except OSError as error:
            raise _fs.as_backup_error(error, tmp_archive) from error
        with handle:
            writer_stream = CompressedWriter(handle, self.archive, self.request.compression)
            try:
                manifest = self._write_tar(writer_stream, snapshots, checks)
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
        self.temps += [checksum_path, meta_path]  # removed again unless the archive commits
        _fs.atomic_write_bytes(checksum_path, _catalog.checksum_line(sha256, self.archive))
        meta = _manifest.catalog_entry(manifest, writer_stream.size, sha256)
        _fs.atomic_write_bytes(meta_path, _manifest.encode(meta))
        _fs.commit_no_clobber(tmp_archive, self.archive)
        self.committed = True
        return manifest, writer_stream.size, sha256

    def _snapshot_databases(self) -> dict:
        snapshots = {}
        for entry in self.selection.databases:
            path = self._temp("snapshot-%s" % os.path.basename(entry.path))
            try:
                facts = _sqlite.snapshot(entry.source, path)
            except OSError as error:
                raise _fs.as_backup_error(error, path) from error
            snapshots[entry.path] = (path, facts)
        return snapshots

    def _write_tar(self, stream, snapshots: dict, checks: "_IntegrityChecks") -> dict:
        writer = ArchiveWriter(stream)
        database_records = []
        for entry in self.selection.entries:
            if entry.database:
                snapshot_path, facts = snapshots[entry.path]
                record = writer.add_file(entry.path, snapshot_path, entry.stat)
                database_records.append(dict(facts, path=entry.path, sha256=record["sha256"], size=record["size"]))
            elif entry.kind == "dir":
                writer.add_dir(entry.path, entry.stat)
            elif entry.kind == "symlink":
                writer.add_symlink(entry.path, entry.stat, os.readlink(entry.source))
            else:
                writer.add_file(entry.path, entry.source)
        results = checks.wait()
        for record in database_records:
            record.pop("snapshot_seconds", None)
            record["integrity"] = results[record["path"]]
            record["integrity_level"] = self.request.integrity
            if record["integrity"] not in ("ok", "skipped"):
                raise BackupError("database %s failed its integrity check (%s); the backup was not kept, since "
                                  "restoring it would restore the damage. Investigate the live database and "
                                  "restore it from an earlier backup" % (record["path"], record["integrity"]))
        header = _manifest.new_header(self.request.type, self.name, self.request.now, socket.gethostname(),
                                      self.app_root, None, self.request.compression)
        manifest = dict(header, members=writer.members, databases=database_records,
                        warnings=self.selection.warnings + writer.warnings)
        writer.add_manifest(_manifest.encode(manifest))
        writer.close()
        return manifest

    def remove_temps(self) -> None:
        for path in self.temps:
            if self.committed and path.endswith((_catalog.CHECKSUM_SUFFIX, _catalog.META_SUFFIX)):
                continue
            _fs.remove_quietly(path)


class _IntegrityChecks:
    """Integrity checks of the snapshots, run in threads while the archive streams (SQLite releases the GIL)."""

    def __init__(self, snapshots: dict, level: str) -> None:
        self.snapshots = snapshots
        self.level = level
        self.results: dict = {}
        self.threads: list = []

    def start(self) -> None:
        for path, (snapshot_path, _facts) in self.snapshots.items():
            thread = threading.Thread(target=self._check, args=(path, snapshot_path), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _check(self, path: str, snapshot_path: str) -> None:
        self.results[path] = _sqlite.check_integrity(snapshot_path, self.level)

    def wait(self) -> dict:
        for thread in self.threads:
            thread.join()
        return self.results


def _check_free_space(folder: str, selection, backup_dir: str, backup_type: str) -> None:
    """Refuse to start a backup that cannot fit: snapshots are written uncompressed, and the archive is
    estimated from the newest backup of this type (or the uncompressed total for a first backup)."""
    snapshot_bytes = sum(entry.stat.st_size for entry in selection.databases)
    previous = [b for b in _catalog.list_backups(backup_dir) if b["type"] == backup_type]
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


def _result(archive, name, request, selection, started, manifest=None, size=None, sha256=None) -> dict:
    """What backup_create reports; without a manifest (check mode) only what would be written."""
    files = [entry for entry in selection.entries if entry.kind == "file"]
    result = {
        "changed": True,
        "archive": archive,
        "name": name,
        "type": request.type,
        "parent": None,
        "created": _manifest.utc_timestamp(request.now),
        "files": len(files),
        "bytes": sum(entry.stat.st_size for entry in files),
        "missing": selection.missing,
        "duration": round(time.monotonic() - started, 3),
    }
    if manifest is not None:
        result.update(size=size, sha256=sha256, databases=manifest["databases"], warnings=manifest["warnings"],
                      bytes=sum(member["size"] for member in manifest["members"] if member["type"] == "file"))
    else:
        result.update(size=None, sha256=None, warnings=selection.warnings,
                      databases=[{"path": entry.path} for entry in selection.databases])
    return result
