from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import chain as _chain
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import pages as _pages
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, check_level
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import SAMPLE_LOGGING, read_archive
from tests.unit.plugins.module_utils.builders import churn

T0 = datetime(2025, 5, 28, 2, 0, 0, tzinfo=timezone.utc)


def backup(app, backup_dir, backup_type, hours, **options) -> dict:
    return create_backup(BackupRequest(str(app), str(backup_dir), type=backup_type, now=T0 + timedelta(hours=hours),
                                       **options))


def test_incremental_stores_only_changes_and_records_deletions(app, tmp_path):
    backups = tmp_path / "backups"
    full = backup(app, backups, "full", 0)
    (app / "config" / "production.env").write_text("DATABASE_PATH=data/reddit_sentiment.db\nNEW=1\n")
    (app / "output" / "new_report.csv").write_text("a,b\n")
    (app / "output" / "sentiment_summary.csv").unlink()
    os.utime(str(app / "config" / "logging.conf"), (1, 1))  # touched, same content: not stored again
    churn(app)
    inc = backup(app, backups, "incremental", 6)
    assert inc["type"] == "incremental" and inc["parent"] == full["name"] and inc["depth"] == 1
    assert inc["archive"].startswith(str(backups / "incremental" / "incremental_20250528_080000"))
    assert inc["deleted"] == ["output/sentiment_summary.csv"]
    members = read_archive(inc["archive"])
    manifest = json.loads(members["MANIFEST.json"][1])
    files = {m["path"] for m in manifest["members"] if m["type"] != "dir"}
    assert files == {"config/production.env", "output/new_report.csv", "data/reddit_sentiment.db.pagedelta"}
    database = manifest["databases"][0]
    assert database["delta"] is True and 0 < database["changed_pages"] < database["page_count"]
    assert manifest["parent"] == full["name"] and manifest["deleted"] == ["output/sentiment_summary.csv"]


def test_page_delta_rebuilds_the_exact_snapshot(app, tmp_path):
    backups = tmp_path / "backups"
    full = backup(app, backups, "full", 0)
    churn(app, 500)
    first = backup(app, backups, "incremental", 6)
    churn(app, 5)
    second = backup(app, backups, "incremental", 12)
    database = tmp_path / "rebuilt.db"
    database.write_bytes(read_archive(full["archive"])["data/reddit_sentiment.db"][1])
    for inc in (first, second):
        delta = tmp_path / "delta"
        delta.write_bytes(read_archive(inc["archive"])["data/reddit_sentiment.db.pagedelta"][1])
        header = _pages.apply_delta(str(database), str(delta))
        assert header["sha256"] == inc["databases"][0]["sha256"]
    assert hashlib.sha256(database.read_bytes()).hexdigest() == second["databases"][0]["sha256"]
    conn = sqlite3.connect(str(database))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 500 + 505
    conn.close()


def test_delta_refuses_the_wrong_parent_and_damage(app, tmp_path):
    backups = tmp_path / "backups"
    backup(app, backups, "full", 0)
    churn(app)
    inc = backup(app, backups, "incremental", 6)
    delta = tmp_path / "delta"
    delta.write_bytes(read_archive(inc["archive"])["data/reddit_sentiment.db.pagedelta"][1])
    wrong = tmp_path / "wrong.db"
    shutil.copy(str(app / "data" / "reddit_sentiment.db"), str(wrong))
    with pytest.raises(BackupError, match="parent snapshot differs"):
        _pages.apply_delta(str(wrong), str(delta))
    truncated = tmp_path / "truncated"
    truncated.write_bytes(delta.read_bytes()[:-100])
    base = tmp_path / "base.db"
    full = _catalog.list_backups(str(backups))[0]
    base.write_bytes(read_archive(full["archive"])["data/reddit_sentiment.db"][1])
    with pytest.raises(BackupError, match="truncated or damaged"):
        _pages.apply_delta(str(base), str(truncated))


def test_incremental_without_a_full_is_taken_as_full(app, tmp_path):
    result = backup(app, tmp_path / "backups", "incremental", 0)
    assert result["type"] == "full" and result["parent"] is None
    assert "taken as a full backup" in result["warnings"][0]
    assert "/daily/" in result["archive"]


def test_database_chain_rebases_at_chain_max(app, tmp_path):
    backups = tmp_path / "backups"
    results = []
    for hour in range(5):
        churn(app, 10)
        results.append(backup(app, backups, "database", hour, chain_max=3))
    assert [(r["parent"] is not None, r["depth"]) for r in results] == [
        (False, 0), (True, 1), (True, 2), (False, 0), (True, 1)]
    assert results[1]["databases"][0]["delta"] and not results[3]["databases"][0]["delta"]


def test_chain_resolution_names_the_missing_link(app, tmp_path):
    backups = tmp_path / "backups"
    backup(app, backups, "full", 0)
    churn(app)
    first = backup(app, backups, "incremental", 6)
    churn(app)
    second = backup(app, backups, "incremental", 12)
    listed = _catalog.list_backups(str(backups))
    assert [b["name"] for b in _chain.resolve(listed, listed[-1])] == [listed[0]["name"], first["name"],
                                                                       second["name"]]
    for suffix in ("", ".sha256", ".meta.json", ".index.json"):
        os.unlink(first["archive"] + suffix)
    listed = _catalog.list_backups(str(backups))
    assert listed[-1]["restorable"] is False
    assert [p["name"] for p in _catalog.summarize(listed)["recovery_points"]] == [listed[0]["name"]]
    with pytest.raises(BackupError, match="depends on %s, which is missing" % first["name"]):
        _chain.resolve(listed, listed[-1])


def test_index_records_the_state_after_the_backup(app, tmp_path):
    backups = tmp_path / "backups"
    backup(app, backups, "full", 0)
    (app / "output" / "sentiment_summary.csv").unlink()
    inc = backup(app, backups, "incremental", 6)
    index = _chain.read_index(inc["archive"])
    assert "output/sentiment_summary.csv" not in index["members"]
    assert index["members"]["config/production.env"]["sha256"]
    hashes = _pages.decode_hashes(index["databases"]["data/reddit_sentiment.db"]["hashes"])
    assert len(hashes) == index["databases"]["data/reddit_sentiment.db"]["page_count"] * _pages.DIGEST_BYTES


def _index_out_of_step(database: str) -> None:
    """Rows deleted behind the back of index posts_body: PRAGMA quick_check still says ok (it does not compare
    index and table), PRAGMA integrity_check does not."""
    conn = sqlite3.connect(database)
    row = conn.execute("SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master WHERE name = 'posts_body'") \
        .fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("DELETE FROM sqlite_master WHERE name = 'posts_body'")
    conn.commit()
    conn.close()
    conn = sqlite3.connect(database)
    conn.execute("DELETE FROM posts WHERE id % 3 = 0")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("INSERT INTO sqlite_master VALUES (?, ?, ?, ?, ?)", row)
    conn.commit()
    conn.close()
    assert _sqlite.check_integrity(database, "quick") == "ok"
    assert _sqlite.check_integrity(database, "full") != "ok"


def _indexed_app(app) -> str:
    database = str(app / "data" / "reddit_sentiment.db")
    conn = sqlite3.connect(database)
    conn.execute("CREATE INDEX posts_body ON posts (body)")
    conn.commit()
    conn.close()
    return database


def test_a_page_delta_gets_the_quick_check_and_a_whole_snapshot_the_full_one(app, tmp_path):
    """integrity auto (the default): the full check for every snapshot stored whole; quick_check for one stored as a
    page delta (its full check runs on the database a restore rebuilds), recorded as such in the manifest."""
    backups = tmp_path / "backups"
    full = backup(app, backups, "full", 0)
    churn(app)
    inc = backup(app, backups, "incremental", 6)
    assert full["databases"][0]["integrity_level"] == "full" and full["databases"][0]["integrity"] == "ok"
    database = inc["databases"][0]
    assert database["delta"] is True and database["integrity_level"] == "quick" and database["integrity"] == "ok"
    manifest = json.loads(read_archive(inc["archive"])["MANIFEST.json"][1])
    assert manifest["databases"][0]["integrity_level"] == "quick"
    churn(app)
    asked_none = backup(app, backups, "incremental", 7, integrity="none")
    assert asked_none["databases"][0]["integrity_level"] == "none"
    assert asked_none["databases"][0]["integrity"] == "skipped"


def test_an_explicit_full_gives_a_page_delta_the_full_check_and_records_it(app, tmp_path):
    """integrity full, asked for: integrity_check on the page delta too, recorded as full in the manifest."""
    backups = tmp_path / "backups"
    backup(app, backups, "full", 0, integrity="full")
    churn(app)
    inc = backup(app, backups, "incremental", 6, integrity="full")
    database = inc["databases"][0]
    assert database["delta"] is True and database["integrity_level"] == "full" and database["integrity"] == "ok"
    assert json.loads(read_archive(inc["archive"])["MANIFEST.json"][1])["databases"][0]["integrity_level"] == "full"


def test_an_explicit_full_refuses_a_page_delta_that_only_the_full_check_finds_damaged(app, tmp_path):
    """What quick_check lets through in a page delta (an index out of step with its table) fails the backup itself
    under an explicit integrity full; the default lets it through to the restore's full check."""
    backups = tmp_path / "backups"
    database = _indexed_app(app)
    backup(app, backups, "full", 0)
    _index_out_of_step(database)
    with pytest.raises(BackupError, match="failed its integrity check"):
        backup(app, backups, "incremental", 6, integrity="full")
    assert [b["type"] for b in _catalog.list_backups(str(backups))] == ["full"]
    assert backup(app, backups, "incremental", 7)["databases"][0]["integrity_level"] == "quick"


@pytest.mark.parametrize("asked, delta, level", [
    ("auto", False, "full"), ("auto", True, "quick"), ("full", False, "full"), ("full", True, "full"),
    ("quick", False, "quick"), ("quick", True, "quick"), ("none", False, "none"), ("none", True, "none"),
])
def test_the_check_each_snapshot_gets_at_backup_time(asked, delta, level):
    assert check_level(asked, delta) == level


def test_an_unknown_integrity_is_refused_naming_the_choices(app, tmp_path):
    with pytest.raises(BackupError, match="integrity must be one of auto, none, quick, full, not 'fast'"):
        backup(app, tmp_path / "backups", "full", 0, integrity="fast")
    assert not (tmp_path / "backups").exists()


def test_an_incremental_of_a_database_with_a_damaged_page_is_refused(app, tmp_path):
    """The quick check of a page delta still reads every page: a damaged page fails the backup, as before."""
    backups = tmp_path / "backups"
    backup(app, backups, "full", 0)
    with open(str(app / "data" / "reddit_sentiment.db"), "r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(b"\xff" * 4096)
    with pytest.raises(BackupError, match="failed its integrity check"):
        backup(app, backups, "incremental", 6)
    assert [b["type"] for b in _catalog.list_backups(str(backups))] == ["full"]


def test_damage_only_the_full_check_finds_in_a_page_delta_is_refused_by_the_restore(app, tmp_path):
    """What the quick check at backup time lets through (an index out of step with its table) is refused where
    the full check of a page delta runs: on the database the restore rebuilds from the chain, before the swap."""
    backups = tmp_path / "backups"
    (app / "config" / "logging.conf").write_bytes(open(SAMPLE_LOGGING, "rb").read())  # verify-before-restore parses it
    database = _indexed_app(app)
    full = backup(app, backups, "full", 0)
    _index_out_of_step(database)
    inc = backup(app, backups, "incremental", 6)
    assert inc["parent"] == full["name"] and inc["databases"][0]["delta"] is True
    assert inc["databases"][0]["integrity_level"] == "quick" and inc["databases"][0]["integrity"] == "ok"
    before = hashlib.sha256(open(database, "rb").read()).hexdigest()
    with pytest.raises(BackupError, match="rebuilt from the chain .* fails its integrity check"):
        restore(RestoreRequest(dest=str(app), archive=inc["archive"], scope="database"))
    assert hashlib.sha256(open(database, "rb").read()).hexdigest() == before


def test_a_whole_snapshot_with_damage_only_the_full_check_finds_is_refused_at_backup_time(app, tmp_path):
    """No parent to build on: the snapshot is stored whole and integrity full runs the full check on it."""
    database = _indexed_app(app)
    _index_out_of_step(database)
    with pytest.raises(BackupError, match="failed its integrity check"):
        backup(app, tmp_path / "backups", "incremental", 0)
