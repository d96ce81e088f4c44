"""Open-file detection through /proc, the way lsof finds a database in use."""

from __future__ import annotations

import subprocess
import sys

from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.procs import holders
from tests.unit.plugins.module_utils.builders import make_db

HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM posts").fetchone()
print("open", flush=True)
sys.stdin.readline()
"""


def _hold(path):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "open"
    return process


def test_a_process_holding_a_wal_database_is_found(tmp_path):
    db = tmp_path / "data" / "reddit_sentiment.db"
    make_db(str(db), rows=50)
    process = _hold(db)
    try:
        found, _unreadable = holders([str(db), str(db) + "-wal", str(db) + "-shm"])
    finally:
        process.stdin.write("\n")
        process.stdin.close()
        process.wait()
    assert {h["pid"] for h in found} == {process.pid}
    # The database through an fd; its -shm through the memory map SQLite makes of it.
    assert {h["path"] for h in found} >= {str(db), str(db) + "-shm"}
    assert "python" in found[0]["command"]
    assert holders([str(db)]) == ([], 0)


def test_this_process_and_missing_files_are_not_holders(tmp_path):
    path = tmp_path / "mine"
    path.write_text("x")
    with open(path):
        assert holders([str(path)]) == ([], 0)
    assert holders([str(tmp_path / "missing")]) == ([], 0)
