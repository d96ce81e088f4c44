from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

from tests.unit.plugins.module_utils.builders import make_db


class Writer(threading.Thread):
    """A live writer committing one row every ``interval`` seconds, recording when each commit landed."""

    def __init__(self, path: str, interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.interval = interval
        self.commits: list = []  # (monotonic time, id)
        self.errors: list = []
        self.stop = threading.Event()

    def __enter__(self) -> "Writer":
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        # Stopped even when the test fails: a writer left running would open files under the next tests' checks.
        self.stop.set()
        self.join()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            while not self.stop.is_set():
                try:
                    cursor = conn.execute("INSERT INTO posts (body) VALUES ('live')")
                    conn.commit()
                    self.commits.append((time.monotonic(), cursor.lastrowid))
                except sqlite3.Error as error:
                    self.errors.append(str(error))
                time.sleep(self.interval)
        finally:
            conn.close()


def rows(path: str) -> list:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM posts ORDER BY id")]
    finally:
        conn.close()


def test_snapshot_under_live_writer_is_a_consistent_prefix_and_does_not_block_it(tmp_path):
    live = str(tmp_path / "live.db")
    make_db(live, rows=200000)  # ~35 MB: the copy takes long enough for many 2 ms commits
    with Writer(live) as writer:
        while len(writer.commits) < 20:
            time.sleep(0.01)
        started = time.monotonic()
        facts = _sqlite.snapshot(live, str(tmp_path / "snap.db"))
        finished = time.monotonic()
        while len(writer.commits) < len([c for c in writer.commits if c[0] <= finished]) + 20:
            time.sleep(0.01)

    assert writer.errors == []
    committed_during = [row for when, row in writer.commits if started < when < finished]
    assert len(committed_during) >= 3, "the writer was blocked while the snapshot ran: %s" % committed_during
    snapshot_rows = rows(str(tmp_path / "snap.db"))
    assert snapshot_rows == list(range(1, len(snapshot_rows) + 1)), "not a prefix"
    committed_before = max(row for when, row in writer.commits if when < started)
    committed_after = min(row for when, row in writer.commits if when > finished)
    assert committed_before <= snapshot_rows[-1] < committed_after
    assert _sqlite.check_integrity(str(tmp_path / "snap.db"), "full") == "ok"
    assert facts["journal_mode"] == "wal" and facts["page_size"] == 4096
    assert facts["page_count"] * facts["page_size"] == os.path.getsize(str(tmp_path / "snap.db"))


def test_rollback_journal_database_under_writer(tmp_path):
    live = str(tmp_path / "live.db")
    make_db(live, rows=2000, journal_mode="delete")
    with Writer(live) as writer:
        while len(writer.commits) < 5:
            time.sleep(0.01)
        facts = _sqlite.snapshot(live, str(tmp_path / "snap.db"))
    assert writer.errors == []
    assert facts["journal_mode"] == "delete"
    snapshot_rows = rows(str(tmp_path / "snap.db"))
    assert snapshot_rows == list(range(1, len(snapshot_rows) + 1)) and len(snapshot_rows) >= 2005


def test_a_descriptor_number_sqlite_reuses_still_counts_as_its_open(tmp_path):
    # Another thread closes a file and SQLite's open gets the same number: the check must still see SQLite's file.
    live = str(tmp_path / "live.db")
    make_db(live, rows=10)
    other = open(str(tmp_path / "other"), "wb")
    number = other.fileno()
    before = _sqlite._open_descriptors()
    other.close()
    conn = sqlite3.connect(live)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        assert os.readlink("/proc/self/fd/%d" % number) == os.path.realpath(live), "no reuse: the test proves nothing"
        _sqlite._check_opened(live, os.lstat(live), before)
    finally:
        conn.close()


def test_integrity_check_reports_damage(tmp_path):
    path = str(tmp_path / "db.db")
    make_db(path, rows=3000, journal_mode="delete")
    with open(path, "r+b") as handle:
        handle.seek(4096 * 3)
        handle.write(os.urandom(4096))
    verdict = _sqlite.check_integrity(path, "full")
    assert verdict != "ok"
    assert not os.path.exists(path + "-wal") and not os.path.exists(path + "-shm")


def test_integrity_none_is_skipped(tmp_path):
    assert _sqlite.check_integrity(str(tmp_path / "any.db"), "none") == "skipped"


def test_snapshot_of_non_database_refused(tmp_path):
    (tmp_path / "x.db").write_text("hello")
    with pytest.raises(BackupError, match="not a SQLite database"):
        _sqlite.snapshot(str(tmp_path / "x.db"), str(tmp_path / "out.db"))


def test_snapshot_file_is_private_and_atomic(tmp_path):
    live = str(tmp_path / "live.db")
    make_db(live, rows=10)
    (tmp_path / "out").mkdir()
    dest = str(tmp_path / "out" / "snap.db")
    result = _sqlite.snapshot_file(live, dest, "full")
    assert result["integrity"] == "ok" and result["dest"] == dest
    assert os.stat(dest).st_mode & 0o777 == 0o600
    assert os.listdir(str(tmp_path / "out")) == ["snap.db"]


def test_snapshot_file_keeps_nothing_from_a_damaged_database(tmp_path):
    live = str(tmp_path / "live.db")
    make_db(live, rows=3000, journal_mode="delete")
    with open(live, "r+b") as handle:
        handle.seek(4096 * 3)
        handle.write(b"\xff" * 4096)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "snap.db").write_text("the previous snapshot")
    with pytest.raises(BackupError, match="failed its integrity check"):
        _sqlite.snapshot_file(live, str(tmp_path / "out" / "snap.db"), "full")
    assert os.listdir(str(tmp_path / "out")) == ["snap.db"]
    assert (tmp_path / "out" / "snap.db").read_text() == "the previous snapshot"


def test_a_database_moved_away_between_the_check_and_sqlites_open_fails_the_backup_as_replaced(tmp_path, monkeypatch):
    """The app user (who owns data/) moves the database away in the instant between the no-follow check and
    SQLite's own open by path; that instant is forced here, since a real race cannot be timed in a unit test
    (tests/integration/test_source_swaps.py runs the real swap loop as an unprivileged user)."""
    from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import (
        BackupRequest, create_backup,
    )
    app = tmp_path / "app"
    make_db(str(app / "data" / "reddit_sentiment.db"))
    real_open = _sqlite._open_source

    def moved_first(src, busy_timeout):
        os.rename(src, src + ".moved")
        return real_open(src, busy_timeout)

    monkeypatch.setattr(_sqlite, "_open_source", moved_first)
    with pytest.raises(BackupError, match="was moved or replaced while it was being opened.*the backup was not kept"):
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups"), type="database"))
    assert not list((tmp_path / "backups").rglob("*.tar*"))
    assert not (app / "data" / "reddit_sentiment.db").exists()  # SQLite's fallback open created nothing in its place
