"""Verification: quick and comprehensive checks, bit flips and truncation anywhere, the recorded verdict."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import compress as _compress
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import (
    list_backups, remove_incomplete,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.config_checks import (
    check_env, check_logging, check_unit)
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.verdict import read_verdict
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import pick_archive
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
from tests.unit.plugins.module_utils.builders import make_db
from tests.unit.plugins.module_utils.builders import entry, resign, tar_bytes, write_archive
from tests.unit.plugins.module_utils.builders import REPO

SAMPLE_LOGGING = open(os.path.join(REPO, "examples", "sample_app",
                                   "skeleton", "config", "logging.conf"), "rb").read()


@pytest.fixture
def backup(app, tmp_path):
    """A full backup of the small app, uncompressed so that tests can flip bits in the tar itself."""
    (app / "config" / "logging.conf").write_bytes(SAMPLE_LOGGING)
    (app / "scripts" / ("rotate_" * 20 + ".sh")).write_text("#!/bin/sh\n")  # a long name: a pax header
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups"), compression="none"))


def checks_by_name(result) -> dict:
    return {check["name"]: check for check in result["checks"]}


def test_a_sound_backup_is_valid_at_both_levels(backup):
    quick = verify_archive(backup["archive"], "quick")
    assert quick["valid"] and quick["status"] == "valid"
    assert [c["name"] for c in quick["checks"]] == ["checksum", "structure", "manifest", "catalog", "members"]
    full = verify_archive(backup["archive"])
    assert full["valid"], full["errors"]
    names = checks_by_name(full)
    assert {"content", "database:data/reddit_sentiment.db", "required", "config:config/production.env",
            "config:config/logging.conf", "config:config/monitoring.yml",
            "config:systemd/reddit-sentiment-pipeline.service"} <= set(names)
    assert full["members"] == len(list(tarfile.open(backup["archive"]))) - 1 and full["errors"] == []


def _data_regions(archive: str) -> list:
    with tarfile.open(archive) as tar:
        return [(m.offset_data, m.size, m.name) for m in tar.getmembers() if m.isfile() and m.size]


def test_a_bit_flip_anywhere_is_found_and_the_member_named(backup):
    archive = backup["archive"]
    original = open(archive, "rb").read()
    regions = _data_regions(archive)
    offsets = list(range(0, len(original), 211))  # a prime stride: every block, at a different place in each
    offsets += [start + size // 2 for start, size, _name in regions]  # one flip inside every member's data
    for offset in offsets:
        damaged = bytearray(original)
        damaged[offset] ^= 0x10
        open(archive, "wb").write(bytes(damaged))
        resign(archive)  # the sidecar agrees: only the per-member checks can catch it
        result = verify_archive(archive, record=False)
        assert result["status"] == "invalid", "a flip at byte %d went unnoticed: %r" % (
            offset, bytes(damaged[max(offset - 30, 0):offset + 30]))
        inside = [name for start, size, name in regions if start <= offset < start + size]
        if inside and inside[0] != "MANIFEST.json":  # a flip there may name the member whose record changed
            assert any(inside[0] in error for error in result["errors"]), (offset, inside, result["errors"])
    open(archive, "wb").write(original)


def test_a_flip_in_any_header_checksum_field_is_found(backup):
    """The bytes after the checksum's NUL are read by no tarfile (and newer tarfiles skip TarInfo.frombuf): every
    header's field is checked, not only the one the stride above happens to hit."""
    archive = backup["archive"]
    original = open(archive, "rb").read()
    with tarfile.open(archive) as tar:
        headers = sorted({offset for m in tar.getmembers() for offset in (m.offset, m.offset_data - tarfile.BLOCKSIZE)})
    for offset in (header + field for header in headers for field in range(148, 156)):
        damaged = bytearray(original)
        damaged[offset] ^= 0x10
        open(archive, "wb").write(bytes(damaged))
        resign(archive)
        result = verify_archive(archive, "quick", record=False)
        assert result["status"] == "invalid", "a flip at byte %d of a header's checksum field went unnoticed" % offset
    open(archive, "wb").write(original)


def test_a_flip_in_compressed_bytes_or_in_recompressed_data_is_found(app, tmp_path):
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b")))
    archive = made["archive"]
    original = open(archive, "rb").read()
    for offset in range(100, len(original), max(len(original) // 12, 1)):
        damaged = bytearray(original)
        damaged[offset] ^= 0x01
        open(archive, "wb").write(bytes(damaged))
        resign(archive)
        assert verify_archive(archive, record=False)["status"] == "invalid", offset
    # Flip inside a member's data, then compress again: the stream is sound, the member is not.
    plain = bytearray(subprocess.run(["zstd", "-d", "-c"], input=original, capture_output=True, check=True).stdout)
    path = tmp_path / "plain.tar"
    path.write_bytes(bytes(plain))
    start, size, name = next(r for r in _data_regions(str(path)) if r[2] == "data/reddit_sentiment.db")
    plain[start + size // 3] ^= 0x04
    open(archive, "wb").write(subprocess.run(["zstd", "-q", "-c"], input=bytes(plain), capture_output=True,
                                             check=True).stdout)
    resign(archive)
    result = verify_archive(archive, record=False)
    assert result["status"] == "invalid" and any(name in e and "content" in e for e in result["errors"])


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_truncation_anywhere_is_found(app, tmp_path, compression):
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"), compression=compression))
    archive = made["archive"]
    original = open(archive, "rb").read()
    for cut in (1, 511, 512, len(original) // 3, len(original) // 2, len(original) - 2048, len(original) - 1):
        open(archive, "wb").write(original[:cut])
        resign(archive)
        result = verify_archive(archive, record=False)
        assert result["status"] == "invalid", cut
        assert result["errors"]


def test_the_sidecar_must_match_and_exist(backup):
    archive = backup["archive"]
    with open(archive, "r+b") as handle:
        handle.seek(100)
        handle.write(b"!")
    result = verify_archive(archive, "quick", record=False)
    assert not result["valid"] and result["errors"][0].startswith("checksum: the archive's sha256 is")
    os.unlink(archive + ".sha256")
    assert "sidecar" in verify_archive(archive, "quick", record=False)["errors"][0]


def _corrupt_database(path: str) -> bytes:
    make_db(path, rows=400, journal_mode="delete")
    data = bytearray(open(path, "rb").read())
    for offset in range(4096 + 200, len(data) - 4096, 4096):
        data[offset:offset + 64] = os.urandom(64)  # damage the b-tree pages, keep the header
    return bytes(data)


def test_a_damaged_database_with_a_consistent_manifest_fails_its_integrity_check(tmp_path):
    data = _corrupt_database(str(tmp_path / "bad.db"))
    members = [entry("data", "dir"), entry("data/reddit_sentiment.db", data=data)]
    archive = write_archive(tmp_path / "b", "baddb", tar_bytes(members, databases=["data/reddit_sentiment.db"],
                                                               backup_type="database"))
    result = verify_archive(archive, record=False)
    check = checks_by_name(result)["database:data/reddit_sentiment.db"]
    assert result["status"] == "invalid" and not check["ok"] and "integrity_check" in check["detail"]
    assert checks_by_name(result)["content"]["ok"]  # the bytes are what the manifest says: the snapshot was bad


def test_configuration_files_are_parsed_never_run(tmp_path, monkeypatch):
    members = [entry("config", "dir"), entry("config/production.env", data=b"A=1\nnot a setting\n"),
               entry("config/logging.conf", data=b"[loggers]\nkeys=root\n\n[handlers]\nkeys=\n"),
               entry("config/monitoring.yml", data=b"a: [unclosed\n"),
               entry("systemd", "dir"), entry("systemd/x.service", data=b"ExecStart=/bin/true\n")]
    archive = write_archive(tmp_path / "b", "conf", tar_bytes(members, backup_type="config"))
    result = verify_archive(archive, record=False)
    checks = checks_by_name(result)
    assert "line 2 is not KEY=VALUE" in checks["config:config/production.env"]["detail"]
    assert "[formatters]" in checks["config:config/logging.conf"]["detail"]
    assert "not YAML" in checks["config:config/monitoring.yml"]["detail"]
    assert "outside any [Section]" in checks["config:systemd/x.service"]["detail"]
    monkeypatch.setitem(sys.modules, "yaml", None)  # a target without a YAML parser
    skipped = checks_by_name(verify_archive(archive, record=False))["config:config/monitoring.yml"]
    assert skipped["ok"] and skipped["status"] == "skipped" and skipped["detail"].startswith("skipped")


def test_the_config_checks_accept_the_sample_app():
    assert check_logging(SAMPLE_LOGGING)[0] == "passed"
    assert check_env(b'# c\nexport A=1\nB="two words"\n\nC=\n') == ("passed", "3 KEY=VALUE settings")
    assert check_env(b'B="open\n')[0] == "failed"
    assert check_unit(b"[Unit]\nDescription=x\n[Service]\nExecStart=/bin/a \\\n  --flag\n")[0] == "passed"


def test_required_paths(backup):
    result = verify_archive(backup["archive"], required=["config/production.env", "config/nope.env"], record=False)
    assert result["status"] == "invalid" and "config/nope.env is required" in result["reason"]


def test_unverifiable_when_the_decompressor_is_missing(app, tmp_path, monkeypatch):
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b")))
    monkeypatch.setattr(_compress.shutil, "which", lambda tool: None)
    result = verify_archive(made["archive"])
    assert result["status"] == "unverifiable" and not result["valid"] and "zstd is not installed" in result["reason"]
    assert read_verdict(made["archive"])["status"] == "unverifiable"


def test_the_verdict_is_recorded_and_listed(backup, tmp_path):
    backup_dir = str(tmp_path / "backups")
    assert list_backups(backup_dir)[0]["verified"] is None
    result = verify_archive(backup["archive"])
    assert result["verdict"] == backup["archive"] + ".verify.json"
    assert oct(os.stat(result["verdict"]).st_mode & 0o777) == "0o600"
    listed = list_backups(backup_dir)[0]["verified"]
    assert listed["status"] == "valid" and listed["level"] == "comprehensive" and listed["current"]
    assert listed["at"] == result["verified_at"]
    os.unlink(backup["archive"])
    assert backup["archive"] + ".verify.json" in remove_incomplete(backup_dir)


def test_picking_the_archive(backup, tmp_path):
    backup_dir = str(tmp_path / "backups")
    assert pick_archive(backup_dir=backup_dir) == backup["archive"]
    assert pick_archive(backup_dir=backup_dir, name=backup["name"]) == backup["archive"]
    with pytest.raises(BackupError, match="no complete config backup"):
        pick_archive(backup_dir=backup_dir, types=["config"])
    with pytest.raises(BackupError, match="made at or before 2001"):
        pick_archive(backup_dir=backup_dir, before="2001-01-01T00:00:00Z")
    with pytest.raises(BackupError, match="either archive"):
        pick_archive(archive=backup["archive"], backup_dir=backup_dir)


def test_a_database_opened_while_verifying_is_not_touched(backup, tmp_path):
    """The integrity check opens a private copy read-only: no -wal or -shm appears anywhere."""
    verify_archive(backup["archive"], temp_dir=str(tmp_path))
    assert not [name for name in os.listdir(tmp_path) if name.startswith("reddit-backup-verify-")]
    conn = sqlite3.connect(str(tmp_path / "app" / "data" / "reddit_sentiment.db"))
    assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 500
    conn.close()
