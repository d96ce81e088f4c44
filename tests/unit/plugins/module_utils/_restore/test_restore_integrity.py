"""The integrity check of a restored database: run once, at backup time when that check was the full one and the
restored bytes are the ones it checked (same sha256), otherwise on the staged database before the swap."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
from tests.unit.plugins.module_utils.builders import (
    REPO, damage, ed25519, entry, make_db, manifest_for, rows, tar_bytes, write_archive,
)

DB = "data/reddit_sentiment.db"


def _database_check(result: dict) -> str:
    return next(item["detail"] for item in result["verification"]["checks"] if item["name"] == "database:" + DB)


@pytest.mark.parametrize("level, signed, restore_check", [
    ("full", True, "PRAGMA integrity_check: ok at backup time, on these exact bytes"),
    ("full", False, "PRAGMA quick_check: ok; PRAGMA integrity_check passed at backup time on the recorded snapshot"),
    ("quick", True, "PRAGMA integrity_check: ok; the recorded snapshot"),
    ("quick", False, "PRAGMA integrity_check: ok; the recorded snapshot"),
])
def test_a_full_check_at_backup_time_is_not_run_again_on_the_same_bytes(app, tmp_path, level, signed, restore_check):
    """Signed by a trusted key, the record of a full check at backup time on these bytes is the check; unsigned, a
    quick check still looks at every page; after a quick check at backup time, the restore runs the full one."""
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    key = str(tmp_path / "host")
    trusted = ed25519(key) if signed else None
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"), integrity=level,
                                       signing_key=key if signed else None))
    damage(app)
    result = restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="database",
                                    trusted_signing_keys=[trusted] if signed else None))
    assert rows(str(app / DB)) == 500 and result["authenticated"] is signed
    assert _database_check(result).startswith(restore_check), _database_check(result)
    # A verification on its own always runs the full check, whatever the backup ran.
    verdict = verify_archive(made["archive"], "comprehensive", None, str(tmp_path))
    assert "PRAGMA integrity_check: ok; the recorded snapshot" in json.dumps(verdict["checks"])


def _corrupt_database(tmp_path) -> bytes:
    """A database SQLite opens but whose b-tree is damaged: PRAGMA integrity_check reports it."""
    path = str(tmp_path / "corrupt.db")
    make_db(path, rows=400, journal_mode="delete")
    with open(path, "r+b") as handle:
        handle.seek(4096 * 3 + 200)
        handle.write(b"\xff" * 64)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    finally:
        conn.close()
    with open(path, "rb") as handle:
        return handle.read()


def _archive_with(tmp_path, data: bytes, **record) -> str:
    entries = [entry("data", "dir"), entry(DB, data=data)]
    manifest = manifest_for(entries, databases=[DB])
    manifest["databases"][0].update(record)
    meta = {key: value for key, value in manifest.items() if key != "members"}  # the catalog entry agrees
    return write_archive(tmp_path / "b", manifest["name"], tar_bytes(entries, manifest=manifest), meta=meta)


@pytest.mark.parametrize("recorded", ["quick", "full"])
def test_a_damaged_database_in_an_unsigned_backup_is_refused_before_the_swap(app, tmp_path, recorded):
    """Whatever an unsigned record claims about the check at backup time, a damaged page is found at restore."""
    archive = _archive_with(tmp_path, _corrupt_database(tmp_path), integrity_level=recorded, integrity="ok")
    with pytest.raises(BackupError, match="database:%s: PRAGMA %s_check" % (DB, "quick" if recorded == "full"
                                                                            else "integrity")):
        restore(RestoreRequest(dest=str(app), archive=archive, scope="database", required=[DB]))
    assert rows(str(app / DB)) == 500 and sorted(os.listdir(str(app / "data"))) == ["reddit_sentiment.db"]


def test_a_record_of_a_full_check_on_other_bytes_is_refused(app, tmp_path):
    """The backup-time check counts only for the bytes it checked: a record whose sha256 is not the archived
    database's is refused, and the database is not swapped in."""
    archive = _archive_with(tmp_path, _corrupt_database(tmp_path), integrity_level="full", integrity="ok",
                            sha256="0" * 64)
    with pytest.raises(BackupError, match="not the recorded snapshot"):
        restore(RestoreRequest(dest=str(app), archive=archive, scope="database", required=[DB]))
    assert rows(str(app / DB)) == 500
