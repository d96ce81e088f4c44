from __future__ import annotations

import os
import sqlite3
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.status import last_commit


def _wal_database(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()  # the last connection checkpoints and removes the WAL


def test_a_reader_that_creates_an_empty_wal_is_no_commit(tmp_path):
    database = str(tmp_path / "app.db")
    _wal_database(database)
    assert last_commit(database) == 0.0
    reader = sqlite3.connect(database)
    try:
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert os.path.getsize(database + "-wal") == 0, "SQLite no longer creates an empty WAL: rethink this test"
        assert last_commit(database) == 0.0
    finally:
        reader.close()


def test_a_commit_is_the_wals_last_write(tmp_path):
    database = str(tmp_path / "app.db")
    _wal_database(database)
    reader = sqlite3.connect(database)
    writer = sqlite3.connect(database)
    try:
        reader.execute("SELECT count(*) FROM t").fetchone()
        before = time.time()
        writer.execute("INSERT INTO t VALUES (2)")
        writer.commit()
        assert before - 1 <= last_commit(database) <= time.time() + 1
    finally:
        writer.close()
        reader.close()
