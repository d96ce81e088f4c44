"""The sample app, seeded with the real seeding tool into temporary folders."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(REPO, "examples", "sample_app", "seed.py")
DB = "data/reddit_sentiment.db"


def seed_app(app_root: str, rows: int = None, seed: int = 0, db_size_mb: float = None, **options) -> dict:
    """Seed the sample app into ``app_root`` with the real seeding tool (2000 posts unless ``rows`` or
    ``db_size_mb`` says otherwise); returns its JSON summary."""
    size = ["--db-size-mb", str(db_size_mb)] if db_size_mb else ["--rows", str(rows or 2000)]
    command = [sys.executable, SEED, "--app-root", str(app_root), *size, "--seed", str(seed)]
    for key, value in options.items():
        command += ["--" + key.replace("_", "-"), str(value)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def posts(app) -> int:
    """The posts in the sample app's database at APP (read only: a check must not change what it checks)."""
    conn = sqlite3.connect("file:%s?mode=ro" % os.path.join(str(app), DB), uri=True)
    try:
        return conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def sample_app(tmp_path):  # re-exported by tests/conftest.py
    """A seeded sample app at tmp_path/app, with tmp_path/backups as the (empty) backup directory."""
    app_root = tmp_path / "app"
    seed_app(app_root)
    return app_root
