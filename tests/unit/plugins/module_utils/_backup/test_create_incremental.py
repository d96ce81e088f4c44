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
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import read_archive
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
