"""Engine test helpers: small databases and files built in place."""

from __future__ import annotations

import os
import sqlite3


def make_db(path, rows: int = 100, journal_mode: str = "wal") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=%s" % journal_mode)
    conn.execute("CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.executemany("INSERT INTO posts (body) VALUES (?)", [("post %d " % n * 20,) for n in range(rows)])
    conn.commit()
    conn.close()


def write(path, text: str = "x", mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)
