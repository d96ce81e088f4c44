# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification: the sidecar checksum, the archive's structure and manifest, every member's bytes, every
database's integrity, the required paths and the configuration files, in one read of the archive.

The verdict is ``valid``, ``invalid`` (a check failed: the archive cannot be trusted) or ``unverifiable`` (the
checks could not run: no decompressor, no space for a database copy, an unreadable archive), with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import chain as _chain
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify import config_checks as _config_checks
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import crypto as _crypto
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils import _lock
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import pages as _pages
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import signing as _signing
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import verdict as _verdict
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.pages import DELTA_SUFFIX
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import CONTROL_CHARACTERS
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, NoSpace
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.manifest_checks import (
    catalog_check, catalog_says_known_format, check, compare_members, manifest_problems,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.reader import (
    ArchiveReader, DamagedArchive, UnknownFormat, run_pass,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.tarsafe import escaping_symlinks

LEVELS = ("quick", "comprehensive")
CONFIG_FILES = ("config/production.env", "config/logging.conf", "config/monitoring.yml")
TYPES_WITH_CONFIG = ("full", "config")
DELTA_HEAD_LIMIT = 64 << 10  # a page delta's magic and JSON header line
SPACE_RESERVE = 64 << 20  # never fill a filesystem to the last byte with copies made only to check them


class _FileSink:
    """A private temp copy of one member, made only to check it (databases)."""

    def __init__(self, path: str, sniff: bool) -> None:
        self.path = path
        self.sniff = sniff
        self.handle = None
        self.wanted = True

    def write(self, data: bytes) -> None:
        if self.handle is None:
            if self.sniff and not data.startswith(_sqlite.SQLITE_HEADER):
                self.wanted = False
            if not self.wanted:
                return
            self.handle = _fs.open_private(self.path)
        try:
            self.handle.write(data)
        except OSError as error:
            raise _fs.as_backup_error(error, self.path) from error

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


class _TextSink:
    """A member's bytes (up to ``limit``) kept in memory to parse them, never executed: configuration files, and
    the header of a database's page delta."""

    def __init__(self, into: dict, path: str, limit: int = None) -> None:
        self.into = into
        self.path = path
        self.limit = limit
        self.parts: list = []
        self.kept = 0

    def write(self, data: bytes) -> None:
        if self.limit is None or self.kept < self.limit:
            self.parts.append(data if self.limit is None else data[:self.limit - self.kept])
            self.kept += len(self.parts[-1])

    def close(self) -> None:
        self.into[self.path] = b"".join(self.parts)


def required_problem(required) -> str:
    """None when every ``required`` entry is a path an archive member can have, else which entry is wrong: an
    impossible entry would mark a sound backup invalid (and record that verdict)."""
    for position, path in enumerate(required or []):
        text = str(path)
        if not text.strip("/") or CONTROL_CHARACTERS.search(text) or ".." in text.split("/"):
            return ("required entry %d is empty, holds a line break or a control character, or climbs with ..; "
                    "list paths relative to the app root, such as config/production.env" % (position + 1))
    return None


class Verifier:
    """Watches one pass over an archive (``observe`` and ``sink`` for each member) and then judges it
    (``conclude``). ``database_paths`` (from the catalog entry) says which members to copy for the integrity
    check; without it, every file that starts with SQLite's header is copied. ``extras=False`` keeps only the
    checks a restore never skips (structure, manifest, members, content): no checksum sidecar, no database,
    required-path or configuration checks. ``recheck`` is the check of a database whose exact bytes (same
    sha256 and size) passed the full ``PRAGMA integrity_check`` at backup time: ``full`` (a verification on its
    own), ``quick`` (a restore: ``PRAGMA quick_check`` still finds a damaged page under a record nobody signed) or
    ``none`` (a restore whose catalog entries are signed by a trusted key)."""

    def __init__(self, level: str, work_dir: str, required=None, database_paths=None, extras: bool = True,
                 recheck: str = "full") -> None:
        if level not in LEVELS:
            raise BackupError("level must be one of %s, not %r" % (", ".join(LEVELS), level))
        problem = required_problem(required)
        if problem:
            raise BackupError(problem)
        self.level = level
        self.work_dir = work_dir
        self.required = required
        self.database_paths = None if database_paths is None else set(database_paths)
        self.extras = extras
        self.recheck = recheck
        self.meta = None  # the archive's catalog entry, compared with the manifest's header when known
        self.observed: dict = {}
        self.unsafe: list = []
        self.configs: dict = {}
        self.delta_heads: dict = {}
        self.database_files: dict = {}
        self._copies = 0

    @property
    def comprehensive(self) -> bool:
        return self.level == "comprehensive"

    def observe(self, member) -> None:
        if member.problem:
            self.unsafe.append(member.problem)
        elif member.kind in ("file", "dir", "symlink"):
            self.observed[member.path] = member

    def sink(self, member, staged_path: str = None):
        """Where this member's bytes must also go to be checked, or None. A member the restore has staged is
        checked in place (``staged_path``), never copied twice."""
        if not (self.comprehensive and self.extras) or member.problem or member.kind != "file":
            return None
        if member.path.endswith(DELTA_SUFFIX):
            return _TextSink(self.delta_heads, member.path, DELTA_HEAD_LIMIT)
        if _config_checks.checker_for(member.path) is not None:
            if member.size <= _config_checks.TEXT_LIMIT:
                return _TextSink(self.configs, member.path)
            self.configs[member.path] = None
            return None
        known = self.database_paths is not None and member.path in self.database_paths
        if not known and (self.database_paths is not None or member.size < 512):
            return None
        if staged_path is not None:
            self.database_files[member.path] = staged_path
            return None
        if _fs.free_bytes(self.work_dir) < member.size + SPACE_RESERVE:
            raise NoSpace("not enough free space in %s to copy database %s (%d bytes) for its integrity check; "
                          "set temp_dir to a larger filesystem" % (self.work_dir, member.path, member.size))
        self._copies += 1
        copy = os.path.join(self.work_dir, "database-%d" % self._copies)
        self.database_files[member.path] = copy
        return _FileSink(copy, sniff=not known)

    def conclude(self, reader, stream_error, sidecar_sha256, sidecar_error) -> list:
        """Every check of this level, in order, each with a detail that names what failed."""
        checks = []
        if not self.extras:
            pass
        elif sidecar_error:
            checks.append(check("checksum", False, sidecar_error))
        else:
            # A damaged stream stops the pass early: hash the file on its own then, so the verdict still says
            # whether the archive is the one that was written (damaged since) or was damaged when written.
            actual = reader.archive_sha256 or _fs.sha256_file(reader.archive)
            matches = actual == sidecar_sha256
            checks.append(check("checksum", matches, "the archive's sha256 matches its .sha256 sidecar" if matches
                                else "the archive's sha256 is %s, its .sha256 sidecar says %s"
                                % (actual, sidecar_sha256)))
        symlinks = {path: m.target for path, m in self.observed.items() if m.kind == "symlink"}
        structure = ([stream_error] if stream_error else []) + self.unsafe + reader.problems + [
            "member %s is refused: it is a symlink to %s, which leads outside the destination" % item
            for item in escaping_symlinks(symlinks)]
        checks.append(check("structure", not structure, structure or "%d members, manifest last, every name safe"
                            % len(self.observed)))
        manifest = reader.manifest
        if manifest is None:
            checks.append(check("manifest", False, "not reached: the stream ended before it"
                                if stream_error else "missing"))
            return checks
        shape = manifest_problems(manifest)
        checks.append(check("manifest", not shape, shape or "format %s, %d members, %d databases" % (
            manifest["format_version"], len(manifest["members"]), len(manifest["databases"]))))
        if shape:
            return checks
        if self.extras:
            checks.append(catalog_check(manifest, self.meta))
        listing, content = compare_members(manifest["members"], self.observed, self.comprehensive)
        checks.append(check("members", not listing, listing or "every member is listed, present, and of the "
                            "listed type, size, mode and mtime"))
        if not self.comprehensive:
            return checks
        checks.append(check("content", not content, content or "every member's sha256 matches the manifest"))
        if not self.extras:
            return checks
        checks += self._database_checks(manifest)
        checks.append(self._required_check(manifest))
        checks += self._config_checks()
        return checks

    def _database_checks(self, manifest: dict) -> list:
        return [self._delta_check(database) if database.get("delta") else self._database_check(database)
                for database in manifest["databases"]]

    def _database_check(self, database: dict) -> dict:
        path = database.get("path")
        name = "database:%s" % path
        member = self.observed.get(path)
        if member is None or member.kind != "file":
            return check(name, False, ["it is not a file in the archive"])
        problems = []
        level = self.recheck if _fully_checked_at_backup(database) else "full"
        if member.sha256 != database.get("sha256") or member.size != database.get("size"):
            problems.append("its bytes are not the recorded snapshot (sha256 %s, size %d; recorded %s, %s)"
                            % (member.sha256, member.size, database.get("sha256"), database.get("size")))
            level = "full"  # the check at backup time was of other bytes
        if level == "none":
            return check(name, True, "PRAGMA integrity_check: ok at backup time, on these exact bytes (sha256 %s, "
                         "in a catalog entry signed by a trusted key); not run again" % database.get("sha256"))
        copy = self.database_files.get(path)
        if copy is None or not os.path.exists(copy):
            problems.append("it was not extracted for its integrity check (the catalog entry and the manifest "
                            "disagree about the databases)")
        else:
            problems += _database_problems(copy, database, level)
        return check(name, not problems, problems or _database_passed(database, level))

    def _delta_check(self, database: dict) -> dict:
        """A database stored as a page delta: its header must match the record. Its integrity can only be checked
        on the database rebuilt from the whole chain, which a restore does."""
        path, member_path = database.get("path"), database.get("delta_member")
        name = "database:%s" % path
        if member_path != (path or "") + DELTA_SUFFIX or self.observed.get(member_path) is None:
            return check(name, False, "its page delta %s is not in the archive" % member_path)
        head = self.delta_heads.get(member_path)
        header = delta_header(head)
        if header is None:
            return check(name, False, "its page delta %s has no readable header" % member_path)
        differing = ["%s is %s in the delta, %s in the record" % (key, header.get(key), database.get(key))
                     for key in ("sha256", "base_sha256", "page_size", "page_count", "changed_pages")
                     if header.get(key) != database.get(key)]
        if differing:
            return check(name, False, differing)
        return check(name, True, "skipped: stored as a page delta (%d changed pages) on its parent's snapshot %s; "
                     "PRAGMA integrity_check runs on the database a restore rebuilds from the chain"
                     % (database.get("changed_pages"), database.get("base_sha256")), "skipped")

    def _required_check(self, manifest: dict) -> dict:
        required = self.required
        if required is None:
            required = [database["path"] for database in manifest["databases"]]
            if manifest.get("type") in TYPES_WITH_CONFIG:
                required += list(CONFIG_FILES)
        missing = [path for path in required
                   if path.strip("/") not in self.observed and path.strip("/") + DELTA_SUFFIX not in self.observed]
        return check("required", not missing, ["%s is required but not in the archive" % path for path in missing]
                     or "present: %s" % (", ".join(required) or "nothing required"))

    def _config_checks(self) -> list:
        checks = []
        for path in sorted(self.configs):
            data = self.configs[path]
            if data is None:
                status, detail = "skipped", "skipped: larger than %d bytes" % _config_checks.TEXT_LIMIT
            else:
                status, detail = _config_checks.checker_for(path)(data)
            checks.append(check("config:%s" % path, status != "failed", detail, status))
        return checks


def delta_header(head):
    """The JSON header of a page delta from its first bytes, or None."""
    if not head or not head.startswith(_pages.MAGIC):
        return None
    line = head[len(_pages.MAGIC):].split(b"\n", 1)[0]
    try:
        header = json.loads(line.decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _fully_checked_at_backup(database: dict) -> bool:
    """The backup ran the full check on this snapshot and it passed (a quick check at backup time does not count)."""
    return database.get("integrity_level") == "full" and database.get("integrity") == "ok"


def _database_passed(database: dict, level: str) -> str:
    snapshot = "the recorded snapshot (sha256, %s pages of %s bytes)" % (
        database.get("page_count"), database.get("page_size"))
    if level == "quick":
        return "PRAGMA quick_check: ok; PRAGMA integrity_check passed at backup time on %s" % snapshot
    return "PRAGMA integrity_check: ok; %s" % snapshot


def _database_problems(copy: str, database: dict, level: str = "full") -> list:
    problems = []
    try:
        facts = _sqlite.database_facts(copy)
    except (BackupError, OSError) as error:
        return ["it is not a SQLite database (%s)" % error]
    if database.get("page_size") not in (None, facts["page_size"]):
        problems.append("its page size is %d, recorded %s" % (facts["page_size"], database.get("page_size")))
    try:
        verdict = _sqlite.check_integrity(copy, level)
    except (sqlite3.Error, UnicodeDecodeError, ValueError) as error:  # damage can garble SQLite's own messages
        verdict = "error: %s" % error
    if verdict != "ok":
        problems.append("PRAGMA %s: %s" % ("quick_check" if level == "quick" else "integrity_check", verdict))
    return problems


def judge(checks: list) -> tuple:
    """(status, reason, errors) from the checks."""
    errors = []
    for item in checks:
        if not item["ok"]:
            errors.append("%s: %s" % (item["name"], item["detail"]))
    if errors:
        return "invalid", errors[0], errors
    return "valid", "all %d checks passed" % len(checks), errors


def verify_archive(archive: str, level: str = "comprehensive", required=None, temp_dir: str = None,
                   record: bool = True, identity_file: str = None, trust=None) -> dict:
    """Verify one archive; returns what backup_verify reports. ``record`` writes the verdict sidecar. An
    encrypted archive needs ``identity_file`` for everything but a quick check of its ciphertext. With ``trust``
    (an entered _signing.Trust), the archive and every link of its chain must be signed by a trusted key. Holds the
    backup directory's readers' lock, so no prune deletes the archive while it is read."""
    with _lock.reading(_catalog.backup_dir_of(archive), purpose="backup_verify"):
        return _verify_archive(archive, level, required, temp_dir, record, identity_file, trust)


def chain_check(archive: str, header):
    """A backup that builds on others is fit only with its whole chain present (each link by the checksum its
    child recorded): the ``chain`` check, failed with status missing_dependency naming the missing link. None for
    a backup that stands alone."""
    if not isinstance(header, dict) or not (header.get("parent") or header.get("parent_sha256")):
        return None
    archive = os.path.abspath(archive)
    folder = os.path.dirname(archive)
    if os.path.basename(folder) not in _catalog.SUBDIRS:
        return check("chain", False, "it builds on %s, and it is not in a backup directory where that backup could "
                     "be found: it cannot be restored alone" % header.get("parent"), "missing_dependency")
    try:
        backups = _catalog.list_backups(os.path.dirname(folder))
        listed = next((b for b in backups if b["archive"] == archive and not b.get("damaged")), None)
        if listed is None:
            raise BackupError("it is not a complete, undamaged backup of %s" % os.path.dirname(folder))
        chain = _chain.resolve(backups, listed)
    except BackupError as error:
        return check("chain", False, str(error), "missing_dependency")
    return check("chain", True, "every backup it builds on is present: %s" % ", ".join(b["name"] for b in chain[:-1]))


def _verify_archive(archive: str, level: str, required, temp_dir, record: bool, identity_file, trust) -> dict:
    started = time.monotonic()
    result = {"archive": archive, "level": level, "valid": False, "status": "unverifiable", "reason": None,
              "checks": [], "errors": [], "members": 0, "bytes": 0, "archive_sha256": None, "verdict": None,
              "verified_at": _manifest.utc_timestamp(datetime.now(timezone.utc)),
              "tool_version": _manifest.TOOL_VERSION, "warnings": []}
    if level not in LEVELS:
        raise BackupError("level must be one of %s, not %r" % (", ".join(LEVELS), level))
    if not os.path.isfile(archive):
        raise BackupError("archive %s does not exist or is not a file; check the path, or use backup_dir to pick "
                          "a backup" % archive)
    signed = _authenticate_into(result, archive, trust)
    if trust is None or signed is not None:  # else refused before reading: anyone may have made it
        if _crypto.is_encrypted(archive) and not identity_file and level == "quick":
            _verify_ciphertext_into(result, archive, signed)
        else:
            _verify_into(result, archive, level, required, temp_dir, identity_file, signed)
    result["authenticated"] = signed is not None and any(
        item["name"] == "signature" and item["ok"] for item in result["checks"])
    if signed is not None and not result["authenticated"]:
        result["authenticity"] = "refused: the signed catalog entry verified, but the archive read is not the one it " \
                                 "names (%s)" % result["reason"]
    result["valid"] = result["status"] == "valid"
    result["duration"] = round(time.monotonic() - started, 3)
    if record:
        try:
            result["verdict"] = _verdict.write_verdict(archive, result)
        except BackupError as error:
            result["warnings"].append("the verdict was not recorded: %s" % error)
    return result


def _authenticate_into(result: dict, archive: str, trust):
    """The archive's signed catalog entry (every link of its chain checked), or None; an archive that fails is
    judged invalid here, with the reason."""
    result.update(authenticated=False, signed_by=None, authenticity=_signing.NOT_CHECKED)
    if trust is None:
        return None
    try:
        links = _signing.authenticate_chain(trust, archive, _catalog.list_backups(
            os.path.dirname(os.path.dirname(archive))))
    except _signing.Unauthentic as error:
        failed = check("signature", False, str(error))
        result.update(status="invalid", reason="signature: %s" % error, checks=[failed],
                      errors=["signature: %s" % error], authenticity="refused: %s" % error)
        return None
    result.update(signed_by=links[-1].describe(), authenticity="checked: signed by trusted key %s%s" % (
        links[-1].fingerprint, " (and every link of its chain)" if len(links) > 1 else ""))
    return links[-1]


def signature_check(archive: str, signed, actual_sha256) -> dict:
    """The archive read is the one its signed catalog entry names (its whole sha256)."""
    if actual_sha256 is None:
        return check("signature", False, "the archive could not be read to its end, so it cannot be matched with its "
                     "signed catalog entry")
    problem = _signing.archive_problem(archive, signed, actual_sha256)
    return check("signature", problem is None, problem or "signed by trusted key %s (%s); the archive's sha256 is "
                 "the one the signed catalog entry names" % (signed.fingerprint, signed.principal))


def _verify_ciphertext_into(result: dict, archive: str, signed=None) -> None:
    """A quick verification of an encrypted archive without its key: the `.sha256` sidecar covers the ciphertext."""
    sidecar_sha256, sidecar_error = None, None
    try:
        sidecar_sha256 = _catalog.read_checksum(archive)
    except BackupError as error:
        sidecar_error = str(error)
    try:
        actual = _fs.sha256_file(archive)
    except OSError as error:
        result["reason"] = str(_fs.as_backup_error(error, archive))
        return
    meta = signed.meta if signed else _catalog.read_meta(archive)
    checks = _crypto.ciphertext_checks(archive, meta, sidecar_sha256, sidecar_error, actual, check)
    checks += [item for item in [chain_check(archive, meta)] if item]
    if signed is not None:
        checks.append(signature_check(archive, signed, actual))
    result["status"], result["reason"], result["errors"] = judge(checks)
    result["checks"] = checks
    result["archive_sha256"] = actual


def _verify_into(result: dict, archive: str, level: str, required, temp_dir, identity_file=None, signed=None) -> None:
    sidecar_sha256, sidecar_error = None, None
    try:
        sidecar_sha256 = _catalog.read_checksum(archive)
    except BackupError as error:
        sidecar_error = str(error)
    work_dir = None
    try:
        work_dir = tempfile.mkdtemp(prefix="reddit-backup-verify-", dir=temp_dir)
        meta = signed.meta if signed else _catalog.read_meta(archive)
        verifier = Verifier(level, work_dir, required, _catalog.meta_database_paths(meta))
        verifier.meta = meta
        stream_error = None
        with ArchiveReader(archive, hash_members=level == "comprehensive", identity_file=identity_file) as reader:
            try:
                run_pass(reader, verifier)
            except DamagedArchive as error:
                stream_error = str(error)
            except UnknownFormat as error:
                if not catalog_says_known_format(meta):
                    raise
                stream_error = "%s is damaged: %s, but its catalog entry says format %s" % (
                    archive, error, _manifest.FORMAT_VERSION)
        checks = verifier.conclude(reader, stream_error, sidecar_sha256, sidecar_error)
        checks += [item for item in [chain_check(archive, reader.manifest or meta)] if item]
        if signed is not None:
            checks.append(signature_check(archive, signed, reader.archive_sha256))
    except BackupError as error:
        result["reason"] = str(error)
        return
    except OSError as error:
        result["reason"] = str(_fs.as_backup_error(error, work_dir or temp_dir or tempfile.gettempdir()))
        return
    finally:
        if work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    result["status"], result["reason"], result["errors"] = judge(checks)
    result["checks"] = checks
    result["archive_sha256"] = reader.archive_sha256
    result["members"] = reader.member_count
    result["bytes"] = sum(m.size for m in verifier.observed.values() if m.kind == "file")
