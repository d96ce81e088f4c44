#!/usr/bin/python3
"""The live writer of the replication scenario: one row a commit, every 100 ms, into the app's database.

    replication_writer.py DB LOG

Each row of the table replication_probe carries its own commit time (UTC seconds, set in the transaction); after
each commit the row's id and time are appended to LOG, a file outside the host (a folder of the controller), so
what the host committed last is known after the host is gone. Standard library only.
"""

import sqlite3
import sys
import time

INTERVAL = 0.1


def main(database: str, log_path: str) -> int:
    conn = sqlite3.connect(database, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("CREATE TABLE IF NOT EXISTS replication_probe (id INTEGER PRIMARY KEY, committed_at REAL NOT NULL)")
    with open(log_path, "a", buffering=1, encoding="utf-8") as log:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            committed_at = time.time()
            row_id = conn.execute("INSERT INTO replication_probe (committed_at) VALUES (?)", (committed_at,)).lastrowid
            conn.execute("COMMIT")
            log.write("%d %.6f\n" % (row_id, committed_at))
            time.sleep(INTERVAL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
