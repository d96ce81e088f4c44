# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote copies: push backups to a backup server or an object store, pull them back, and keep retention there.

The remote folder has the backup directory's layout (``daily/``, ``incremental/`` ... with each archive beside
its sidecars), so ``backup_info`` could read a copy of it as it is. The rules:

* Only complete backups travel, and they travel whole: the ``.sha256`` and ``.meta.json`` sidecars (and the
  ``.index.json`` state of an unencrypted backup) first, the archive last. rsync renames each file into place once
  complete and S3 shows an object only once its PUT or multipart upload completes, so the archive appears last:
  a push killed half-way leaves sidecars without an archive, which no pull takes for a backup.
* A pull lands the archive under a hidden temp name, checks it against the remote ``.sha256`` sidecar, writes the
  sidecars, and renames the archive into place last, under the backup directory's lock: ``backup_info`` never
  lists a bad or half-pulled backup.
* Nothing is overwritten: a different backup of the same name at the destination is skipped, with the reason.
* Encrypted backups travel without their ``.index.json`` (per-file hashes: see docs/encryption-and-sync.md), so
  the remote holds only ciphertext and metadata that names no file contents.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import chain as _chain
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import crypto as _crypto
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import signing as _signing
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import DirectoryLock

# A remote sidecar larger than these was not written by this tool: never fetched (a compromised store could send
# gigabytes, or a FIFO's worth of waiting, in its place).
SIDECAR_LIMITS = {_catalog.CHECKSUM_SUFFIX: _catalog.CHECKSUM_LIMIT, _catalog.META_SUFFIX: _catalog.META_LIMIT,
                  _catalog.INDEX_SUFFIX: _catalog.INDEX_LIMIT, _catalog.SIGNATURE_SUFFIX: _signing.SIGNATURE_LIMIT}
DIRECTIONS = ("push", "pull")
SELECTS = ("all", "latest", "before")  # or the name of one backup
SSH_URL = re.compile(r"^ssh://(?:(?P<user>[^@/:]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\[\]]+)(?::(?P<port>\d+))?"
                     r"(?P<path>/.*)$")
S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


@dataclass
class SyncRequest:
    """What ``backup_sync`` (and ``backup_prune`` with a remote) was asked for; None means the default."""

    backup_dir: str
    remote: str
    direction: str = "push"
    select: str = "all"
    before: str = None
    type: str = None
    delete: bool = False
    ssh_key: str = None
    known_hosts: str = None
    ssh_host_key_checking: str = "strict"
    s3_endpoint_url: str = None
    s3_region: str = None
    s3_access_key: str = None
    s3_secret_key: str = None
    s3_session_token: str = None
    timeout: float = 30
    lock_timeout: float = 60.0
    now: datetime = None
    allowed_signers: str = None  # a pull then takes only backups signed by a trusted key
    trusted_signing_keys: list = None


def parse_remote(remote: str) -> dict:
    """``ssh://user@host[:port]/path`` or ``s3://bucket/prefix`` as a dict with ``kind``."""
    text = str(remote or "").strip()
    match = SSH_URL.match(text)
    if match:
        path = match.group("path")
        if "/../" in path + "/" or "\n" in path:
            raise BackupError("remote %s: the path may not contain '..'" % text)
        return {"kind": "ssh", "user": match.group("user"), "host": match.group("host"),
                "port": int(match.group("port")) if match.group("port") else None, "path": path}
    match = S3_URL.match(text)
    if match:
        return {"kind": "s3", "bucket": match.group("bucket"), "prefix": (match.group("prefix") or "").strip("/")}
    raise BackupError("remote %r is not usable: use ssh://user@host[:port]/path/on/the/server (rsync over ssh) or "
                      "s3://bucket/prefix" % remote)


def open_store(request: SyncRequest):
    timeout = request.timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise BackupError("timeout must be a number of seconds above 0 and at most %d" % MAX_TIMEOUT)
    where = parse_remote(request.remote)
    # A store's module is loaded only when that kind of remote is used.
    # pylint: disable=import-outside-toplevel
    if where["kind"] == "ssh":
        from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.ssh import SshStore
        return SshStore(where["user"], where["host"], where["port"], where["path"], request.ssh_key,
                        request.known_hosts, request.ssh_host_key_checking, request.timeout)
    from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.s3 import S3Store
    return S3Store(where["bucket"], where["prefix"], request.s3_endpoint_url, request.s3_region,
                   request.s3_access_key, request.s3_secret_key, request.s3_session_token, request.timeout)


def travelling_sidecars(archive: str) -> tuple:
    """The sidecars that travel with ``archive``, in the order they are sent (the archive goes after them)."""
    sidecars = (_catalog.CHECKSUM_SUFFIX, _catalog.META_SUFFIX, _catalog.SIGNATURE_SUFFIX)
    if not _crypto.is_encrypted(archive):
        sidecars += (_catalog.INDEX_SUFFIX,)
    return sidecars


class RemoteCatalog:
    """The remote's complete backups, read from its listing and its sidecars (fetched into a private folder),
    shaped as ``_catalog.list_backups`` entries whose ``archive`` is the path relative to the remote folder."""

    def __init__(self, store, work_dir: str) -> None:
        self.store = store
        self.shadow = os.path.join(work_dir, "remote")
        os.mkdir(self.shadow, 0o700)
        self.files = store.list()
        self.backups: list = []
        self.incomplete: list = []
        archives = [path for path in self.files if _is_archive(path)]
        self.incomplete += [{"name": path, "archive": path, "damaged": True, "reason": NOT_OURS % path}
                            for path in sorted(self.files) if _looks_like_archive(path) and not _is_archive(path)]
        oversized = {path + suffix for path in archives for suffix, limit in SIDECAR_LIMITS.items()
                     if self.files.get(path + suffix, 0) > limit}
        wanted = [path + suffix for path in archives
                  for suffix in (_catalog.CHECKSUM_SUFFIX, _catalog.META_SUFFIX, _catalog.SIGNATURE_SUFFIX)
                  if path + suffix in self.files and path + suffix not in oversized]
        store.fetch(wanted, self.shadow, max(SIDECAR_LIMITS[_catalog.CHECKSUM_SUFFIX],
                                             SIDECAR_LIMITS[_catalog.META_SUFFIX]))
        for path in archives:
            too_big = sorted(name for name in oversized if name.startswith(path + "."))
            if too_big:
                self.incomplete.append({"name": _stem(path), "archive": path, "damaged": True, "reason": "damaged on "
                                        "the remote: %s is larger than any sidecar this tool writes; it was not "
                                        "fetched" % ", ".join(too_big)})
                continue
            entry = _catalog.read_entry(os.path.join(self.shadow, os.path.dirname(path)), os.path.basename(path),
                                        sidecars_only=True)
            if entry is not None and entry.get("damaged"):
                self.incomplete.append({"name": _stem(path), "archive": path, "damaged": True, "reason": "damaged "
                                        "on the remote: %s" % entry["damaged"].replace(self.shadow, store.description)})
                continue
            if entry is None:
                self.incomplete.append({"name": _stem(path), "archive": path, "reason": "incomplete on the remote: "
                                        "its .sha256 or .meta.json sidecar is missing or unreadable"})
                continue
            entry["archive"] = path
            entry["remote_size"] = self.files[path]
            entry["verified"] = None  # verdicts stay with the copy that was verified
            self.backups.append(entry)
        for path in self.files:
            if path.endswith(_catalog.META_SUFFIX):
                archive = path[: -len(_catalog.META_SUFFIX)]
                if _is_archive(archive) and archive not in self.files:
                    self.incomplete.append({"name": _stem(archive), "archive": archive, "reason": "incomplete on the "
                                            "remote: its sidecars are there but not its archive (a push that was "
                                            "interrupted, or is still running)"})
        self.backups.sort(key=lambda backup: (backup["created"] or "", backup["archive"]))
        _catalog.mark_restorable(self.backups)

    def sidecar(self, relative: str) -> str:
        return os.path.join(self.shadow, relative)


NOT_OURS = ("%s is not a backup this tool makes (a remote backup is <type folder>/<name><archive suffix>, the name of "
            "letters, digits, '.', '_', '-'); it was never fetched: check who put it on the remote")


def _looks_like_archive(relative: str) -> bool:
    return _catalog.archive_suffix(relative) is not None


def _is_archive(relative: str) -> bool:
    """A remote path that can be a backup: <type folder>/<a name this tool makes><archive suffix>. Anything else a
    compromised store lists (slashes, '..', newlines, hidden names) is never fetched or written here."""
    parts = relative.split("/")
    if len(parts) != 2 or parts[0] not in _catalog.SUBDIRS:
        return False
    suffix = _catalog.archive_suffix(parts[1])
    return suffix is not None and _catalog.is_valid_stem(parts[1][: -len(suffix)])


def _stem(relative: str) -> str:
    name = os.path.basename(relative)
    return name[: -len(_catalog.archive_suffix(name))]


def _local_backups(backup_dir: str) -> list:
    backups = _catalog.list_backups(backup_dir) if os.path.isdir(backup_dir) else []
    for backup in backups:
        backup["path"] = backup["archive"]
        backup["archive"] = os.path.relpath(backup["archive"], backup_dir).replace(os.sep, "/")
    return backups


# Without a type, latest/before take the newest backup of each family: whatever holds the whole application (a
# full backup, or an incremental with its chain), the newest configuration backup, the newest database backup.
FAMILIES = (("full", "incremental"), ("config",), ("database",))


def select_backups(backups: list, select: str, before=None, backup_type=None, now=None) -> list:
    """The backups ``select`` names, with every link they depend on, oldest first. ``latest`` and ``before``
    take the newest restorable backup (at or before ``before``) of ``backup_type``, or of each family when none
    is given, so that every scope can be restored from what was selected."""
    candidates = [b for b in _catalog.healthy(backups) if backup_type is None or b["type"] == backup_type]
    if select == "all":
        return candidates
    if select in ("latest", "before"):
        if select == "before" and before is None:
            raise BackupError("select: before needs the before option (a time, such as 2025-05-28T14:00:00Z or "
                              "'6 hours ago')")
        restorable = [b for b in candidates if b.get("restorable", True)]
        families = [(backup_type,)] if backup_type else list(FAMILIES)
        chosen = [_catalog.choose([b for b in restorable if b["type"] in family],
                                  before=before if select == "before" else None, now=now) for family in families]
    else:
        chosen = [_catalog.choose(candidates, name=select)]
    wanted = {}
    for backup in chosen:
        if backup is not None:
            for link in _chain.resolve(backups, backup):
                wanted[link["archive"]] = link
    return sorted(wanted.values(), key=lambda b: (b["created"] or "", b["archive"]))


def sync(request: SyncRequest, check_mode: bool = False) -> dict:
    """Push or pull the selected backups; returns what backup_sync reports."""
    started = time.monotonic()
    if request.direction not in DIRECTIONS:
        raise BackupError("direction must be push or pull, not %r" % request.direction)
    if request.delete and request.select != "all":
        raise BackupError("delete mirrors the source at the destination, so it needs select: all (with select: %s it "
                          "would remove every other backup there)" % request.select)
    if request.select not in SELECTS:
        _catalog.check_backup_name(request.select)
    now = _catalog.parse_time(request.now) if request.now is not None else None
    backup_dir = _catalog.check_backup_dir(request.backup_dir)
    trust = _signing.trust_from(request.allowed_signers, request.trusted_signing_keys)
    if trust is not None and request.direction != "pull":
        raise BackupError("allowed_signers and trusted_signing_keys check what a pull takes; a push sends this host's "
                          "own backups (with their signatures): leave them out for direction: push")
    store = open_store(request)
    work_dir = tempfile.mkdtemp(prefix="reddit-backup-sync-")
    try:
        with trust or contextlib.nullcontext():
            if check_mode:
                return _Sync(request, store, backup_dir, work_dir, now, check_mode=True, trust=trust).run(started)
            _fs.ensure_private_dir(backup_dir)
            with DirectoryLock(backup_dir, request.lock_timeout, "backup_sync %s" % request.direction):
                _catalog.remove_incomplete(backup_dir)
                return _Sync(request, store, backup_dir, work_dir, now, check_mode=False, trust=trust).run(started)
    finally:
        store.close()
        shutil.rmtree(work_dir, ignore_errors=True)


class _Sync:
    def __init__(self, request, store, backup_dir, work_dir, now, check_mode, trust=None) -> None:
        self.request = request
        self.store = store
        self.backup_dir = backup_dir
        self.check_mode = check_mode
        self.now = now
        self.trust = trust
        self.remote = RemoteCatalog(store, work_dir)
        self.local = _local_backups(backup_dir)
        self.transferred: list = []
        self.skipped: list = []
        self.deleted: list = []
        self.signed: dict = {}  # relative archive -> its authenticated catalog entry (with trust)
        if trust is not None:
            self._keep_authentic()

    def _keep_authentic(self) -> None:
        """With trusted keys, a pull sees only the remote backups whose catalog entry a trusted key signed (the
        archive is matched with it once pulled); the others are skipped with the reason, before selection, so a
        forgery planted as the newest backup cannot hide the newest genuine one."""
        authentic = []
        for backup in self.remote.backups:
            relative = backup["archive"]
            try:
                self.signed[relative] = self.trust.authenticate(
                    relative, self.remote.sidecar(relative + _catalog.META_SUFFIX),
                    self.remote.sidecar(relative + _catalog.SIGNATURE_SUFFIX))
            except _signing.Unauthentic as error:
                self.skipped.append({"name": backup["name"], "archive": relative,
                                     "reason": "not authentic, not pulled: %s" % error})
                continue
            authentic.append(backup)
        self.remote.backups = authentic
        _catalog.mark_restorable(authentic)

    def run(self, started: float) -> dict:
        push = self.request.direction == "push"
        source, dest = (self.local, self.remote.backups) if push else (self.remote.backups, self.local)
        selected = select_backups(source, self.request.select, self.request.before, self.request.type, self.now)
        if not selected and self.request.select != "all":
            damaged = [item for item in self.remote.incomplete if not push and item["name"] == self.request.select]
            if damaged:
                raise BackupError("%s (%s): %s" % (self.request.select, damaged[0]["archive"], damaged[0]["reason"]))
            refused = [item for item in self.skipped if item["reason"].startswith("not authentic")]
            raise BackupError("no complete %sbackup at the %s matches select: %s%s%s; list them with backup_info (or, "
                              "for the remote, backup_sync in check mode)%s"
                              % ("authentic " if self.trust else "", "source" if push else "remote",
                                 self.request.select,
                                 " (before %s)" % self.request.before if self.request.before else "",
                                 " of type %s" % self.request.type if self.request.type else "",
                                 ". %d backups there are not authentic, such as %s: %s" % (
                                     len(refused), refused[0]["name"], refused[0]["reason"]) if refused else ""))
        at_dest = {backup["archive"]: backup for backup in dest}
        if not push:
            self.skipped += self.remote.incomplete
        travelling = []
        for backup in selected:
            reason = self._reason_to_skip(backup, at_dest.get(backup["archive"]))
            if reason:
                self.skipped.append({"name": backup["name"], "archive": backup["archive"], "reason": reason})
            else:
                travelling.append(backup)
        if push:
            self._push(travelling)
        else:
            self._pull(travelling)
        if self.request.delete:
            self._mirror(source, dest)
        changed = bool(self.transferred or self.deleted)
        return {"changed": changed, "remote": self.store.description, "direction": self.request.direction,
                "transferred": self.transferred, "skipped": self.skipped, "deleted": self.deleted,
                "bytes": sum(item["size"] for item in self.transferred),
                "seconds": round(sum(item["seconds"] for item in self.transferred), 3),
                "duration": round(time.monotonic() - started, 3)}

    def _reason_to_skip(self, backup: dict, there) -> str:
        where = "on the remote" if self.request.direction == "push" else "here"
        if there is None:
            return None
        if there.get("sha256") == backup.get("sha256"):
            return "already %s (same sha256)" % where
        return ("a different backup of the same name is already %s (sha256 %s, this one %s); nothing is overwritten: "
                "remove one of them on purpose" % (where, there.get("sha256"), backup.get("sha256")))

    def _entry(self, backup: dict, files: list, size: int, seconds: float) -> dict:
        return {"name": backup["name"], "type": backup["type"], "created": backup["created"],
                "archive": backup["archive"], "files": files, "size": size, "seconds": round(seconds, 3),
                "mib_per_second": round(size / (1 << 20) / seconds, 1) if seconds > 0 else None}

    def _push(self, backups: list) -> None:
        """Every sidecar first, then every archive (one rsync each over ssh), oldest first: each archive lands
        after its sidecars, so it is the commit of its backup on the remote too."""
        plan = []
        for backup in backups:
            relative = backup["archive"]
            sidecars = [relative + suffix for suffix in travelling_sidecars(relative)
                        if os.path.exists(os.path.join(self.backup_dir, relative + suffix))]
            plan.append((backup, sidecars))
        timings: dict = {}
        if backups and not self.check_mode:
            timings.update(self.store.upload(self.backup_dir, [path for _b, sidecars in plan for path in sidecars]))
            timings.update(self.store.upload(self.backup_dir, [backup["archive"] for backup in backups]))
        for backup, sidecars in plan:
            files = sidecars + [backup["archive"]]
            size = sum(os.path.getsize(os.path.join(self.backup_dir, path)) for path in files)
            self.transferred.append(self._entry(backup, files, size, sum(timings.get(path, 0.0) for path in files)))

    def _pull(self, backups: list) -> None:
        """Every archive (and unencrypted state index) into a hidden folder of the backup directory, then for each
        backup, oldest first: its archive checked against the remote .sha256, its sidecars written, its archive
        linked into place last. A backup whose archive does not match is not kept, and fails the run."""
        plan = []
        for backup in backups:
            relative = backup["archive"]
            sidecars = [relative + suffix for suffix in travelling_sidecars(relative)
                        if relative + suffix in self.remote.files]
            plan.append((backup, sidecars))
        if self.check_mode or not backups:
            for backup, sidecars in plan:
                files = sidecars + [backup["archive"]]
                self.transferred.append(self._entry(backup, files, sum(self.remote.files.get(p, 0) for p in files),
                                                    0.0))
            return
        root = _fs.open_dir(self.backup_dir)
        try:
            staging = _PullStaging(root, self.backup_dir)
            try:
                # The index can be large, so it comes now; the other sidecars came with the listing.
                indexes = [path for _b, sidecars in plan for path in sidecars if path.endswith(_catalog.INDEX_SUFFIX)]
                wanted = indexes + [backup["archive"] for backup in backups]
                timings = self.store.download(wanted, staging.path, max(self.remote.files[p] for p in wanted),
                                              dest_fd=staging.fd)
                damaged = []
                for backup, sidecars in plan:
                    problem = self._commit_pulled(backup, sidecars, staging, root)
                    if problem:
                        damaged.append(problem)
                        self.skipped.append({"name": backup["name"], "archive": backup["archive"], "reason": problem})
                        continue
                    files = sidecars + [backup["archive"]]
                    self.transferred.append(self._entry(backup, files,
                                                        sum(self.remote.files.get(p, 0) for p in files),
                                                        sum(timings.get(path, 0.0) for path in files)))
            finally:
                staging.remove()
        finally:
            os.close(root)
        if damaged:
            raise BackupError("%s; %d other backups were pulled" % ("; ".join(damaged), len(self.transferred)))

    def _commit_pulled(self, backup: dict, sidecars: list, staging: "_PullStaging", root: int):
        """Check one pulled archive and link it into its type folder after its sidecars, all through folder
        descriptors and never over an existing name; the problem, or None."""
        relative = backup["archive"]
        folder, base = relative.split("/")
        landed = os.path.join(staging.path, relative)
        try:
            sha256 = _fs.sha256_file(landed)
        except FileNotFoundError:
            return ("the remote archive %s was not copied: it vanished, or grew past the %d bytes the listing said, "
                    "while the pull ran; it was not kept. Pull again, and check the remote if it recurs"
                    % (relative, self.remote.files[relative]))
        expected = _catalog.read_checksum(self.remote.sidecar(relative))
        if sha256 != expected or sha256 != backup.get("sha256"):
            return ("the pulled archive %s does not match its .sha256 sidecar on the remote (sha256 %s, the sidecar "
                    "says %s); it was not kept. The remote copy is damaged (verify it there) or was being replaced"
                    % (relative, sha256, expected))
        if relative in self.signed:
            problem = _signing.archive_problem(relative, self.signed[relative], sha256)
            if problem:
                return "%s; it was not kept" % problem
        _fs.fsync_file(landed)
        _fs.ensure_private_dir(folder, dir_fd=root)
        type_fd = _fs.open_dir(folder, dir_fd=root)
        try:
            _give_landed(staging.fd, relative, type_fd)
            in_the_way = [name for name in [base] + [path[len(folder) + 1:] for path in sidecars]
                          if _fs.lexists_at(type_fd, name)]
            if in_the_way:
                return ("%s is already there and is not this backup (the catalog does not list it); nothing was "
                        "overwritten: move it away to pull %s" % (os.path.join(self.backup_dir, folder, in_the_way[0]),
                                                                  relative))
            written = []
            try:
                for path in sidecars:
                    source = os.path.join(staging.path, path) if path.endswith(_catalog.INDEX_SUFFIX) \
                        else self.remote.sidecar(path)
                    data = _fs.read_regular(source, SIDECAR_LIMITS.get(path[len(relative):], _catalog.META_LIMIT))
                    _write_new(type_fd, path[len(folder) + 1:], data, os.path.join(self.backup_dir, path))
                    written.append(path[len(folder) + 1:])
                _link_new(staging.fd, relative, type_fd, base, os.path.join(self.backup_dir, relative))
            except BaseException:
                for name in written:
                    os.unlink(name, dir_fd=type_fd)
                raise
            os.fsync(type_fd)
        finally:
            os.close(type_fd)
        return None

    def _mirror(self, source: list, dest: list) -> None:
        """With delete: remove from the destination the complete backups the source does not have."""
        names = {backup["archive"] for backup in source}
        extra = [b for b in _catalog.healthy(dest) if b["archive"] not in names
                 and (self.request.type is None or b["type"] == self.request.type)]
        if self.request.direction == "push":
            self.deleted += remove_remote(self.store, extra, self.check_mode)
        elif extra and not self.check_mode:
            with _retention.no_readers(self.backup_dir, self.request.lock_timeout, "backup_sync delete"):
                for backup in reversed(extra):
                    _retention.remove_backup(backup["path"])
                    self.deleted.append(_retention.deleted_entry(backup))
        else:
            self.deleted += [_retention.deleted_entry(backup) for backup in reversed(extra)]


class _PullStaging:
    """A private folder of the backup directory that pulled files land in, held by its descriptor: the app user
    may rename it or put a link in its place, but everything written or read goes to the folder this run made
    (``path`` is /proc/self/fd/<fd>, which rsync, a child that inherits the descriptor, resolves the same way)."""

    def __init__(self, root: int, backup_dir: str) -> None:
        self.root = root
        self.name = os.path.basename(_fs.temp_path(backup_dir, "pull"))  # hidden: a killed run's is removed later
        os.mkdir(self.name, _fs.PRIVATE_DIR_MODE, dir_fd=root)
        self.fd = _fs.open_dir(self.name, dir_fd=root)
        self.path = "/proc/self/fd/%d" % self.fd

    def remove(self) -> None:
        """Empty the folder this run made, through its descriptor, and remove it if its name is still its own."""
        for name in os.listdir(self.fd):
            if _is_dir_at(self.fd, name):
                shutil.rmtree(name, dir_fd=self.fd)
            else:
                os.unlink(name, dir_fd=self.fd)
        made = os.fstat(self.fd)
        os.close(self.fd)
        try:
            now = os.stat(self.name, dir_fd=self.root, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == (made.st_dev, made.st_ino):
                os.rmdir(self.name, dir_fd=self.root)
        except OSError:
            pass  # renamed away by someone else: it is empty, and the next locked run ignores it


def _is_dir_at(dir_fd: int, name: str) -> bool:
    return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)


def _give_to_folder_owner(fd: int, dir_fd: int) -> None:
    """A file root made in a folder another user owns (the backup directory's owner) goes to that user."""
    owner = _fs.folder_owner_to_give(dir_fd)
    if owner and os.fstat(fd).st_uid == 0:
        os.fchown(fd, *owner)


def _give_landed(staging_fd: int, relative: str, type_fd: int) -> None:
    """The pulled archive (in root's private staging, where nobody else can plant) goes to the type folder's
    owner before it is linked there, like everything root writes in the backup directory."""
    fd = os.open(relative, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=staging_fd)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            _give_to_folder_owner(fd, type_fd)
    finally:
        os.close(fd)


def _write_new(dir_fd: int, name: str, data: bytes, shown: str) -> None:
    """Write ``name`` in ``dir_fd`` whole (0600) under a temp name, then link it in; never over an existing file."""
    tmp = os.path.basename(_fs.temp_path("", name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _fs.PRIVATE_FILE_MODE,
                 dir_fd=dir_fd)
    _give_to_folder_owner(fd, dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _link_new(dir_fd, tmp, dir_fd, name, shown)
    finally:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass


def _link_new(src_fd: int, src: str, dst_fd: int, name: str, shown: str) -> None:
    """Give the file ``src`` (in ``src_fd``) the name ``name`` in ``dst_fd``; never replace what is there."""
    try:
        os.link(src, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    except FileExistsError:
        raise BackupError("%s appeared while the pull wrote it; nothing was overwritten: move it away and pull again"
                          % shown) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
            raise _fs.as_backup_error(error, shown) from error
        if _fs.lexists_at(dst_fd, name):  # no hard links on this filesystem: check, then rename (we hold the lock)
            raise BackupError("%s is already there; nothing was overwritten" % shown) from None
        os.rename(src, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def remove_remote(store, backups: list, check_mode: bool) -> list:
    """Remove ``backups`` from the remote: every archive first (a backup ends when its archive goes), then their
    sidecars; newest first."""
    doomed = list(reversed(backups))
    if doomed and not check_mode:
        store.delete([b["archive"] for b in doomed])
        store.delete([b["archive"] + suffix for b in doomed for suffix in _catalog.SIDECAR_SUFFIXES])
    return [_retention.deleted_entry(backup) for backup in doomed]


def prune_remote(request: SyncRequest, policy=None, now=None, check_mode: bool = False) -> dict:
    """Retention on the remote: ``_retention.plan`` over the remote catalog, the backups it keeps no more removed
    there. Holds the local backup directory's lock, so it never races a push from this host."""
    moment = _catalog.parse_time(now) if now is not None else datetime.now(timezone.utc)
    store = open_store(request)
    work_dir = tempfile.mkdtemp(prefix="reddit-backup-prune-")
    try:
        def apply() -> dict:
            catalog = RemoteCatalog(store, work_dir)
            reasons = _retention.plan(catalog.backups, policy, moment)
            doomed = [b for b in catalog.backups if not reasons[b["archive"]]]
            deleted = remove_remote(store, doomed, check_mode)
            return dict(_retention.outcome(catalog.backups, reasons, deleted, catalog.incomplete),
                        remote=store.description)
        if check_mode or not os.path.isdir(request.backup_dir):
            return apply()
        with DirectoryLock(request.backup_dir, request.lock_timeout, "backup_prune remote"):
            return apply()
    finally:
        store.close()
        shutil.rmtree(work_dir, ignore_errors=True)


# The options of every module that reaches a remote (documented in doc_fragments/remote.py).
MAX_TIMEOUT = 3600  # seconds; a longer connect timeout is a typo (and ssh takes only whole seconds of an int)
REMOTE_ARGUMENT_SPEC = {
    "remote": {"type": "str"},
    "ssh_key": {"type": "path", "no_log": False},
    "known_hosts": {"type": "path"},
    "ssh_host_key_checking": {"type": "str", "choices": ["strict", "accept-new"], "default": "strict"},
    "s3_endpoint_url": {"type": "str"},
    "s3_region": {"type": "str"},
    "s3_access_key": {"type": "str", "no_log": True},
    "s3_secret_key": {"type": "str", "no_log": True},
    "s3_session_token": {"type": "str", "no_log": True},
    "timeout": {"type": "float", "default": 30},
}


def request_from_params(params: dict, **extra) -> SyncRequest:
    """A SyncRequest from a module's params (the remote options and backup_dir, lock_timeout)."""
    keys = [key for key in REMOTE_ARGUMENT_SPEC if key in params] + ["backup_dir", "lock_timeout"]
    return SyncRequest(**{key: params[key] for key in keys}, **extra)
