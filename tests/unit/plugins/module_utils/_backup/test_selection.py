from __future__ import annotations

import os
import sqlite3

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.selection import is_excluded, select


@pytest.mark.parametrize("path,expected", [
    ("backups", True),
    ("backups/daily/x.tar.zst", True),
    ("logs/pipeline.log.1", True),
    ("logs/pipeline.log", False),
    ("venv/bin/python", True),
    ("apps/collector/__pycache__/c.pyc", True),
    ("apps/collector/collector.py", False),
    ("data/backups_report.csv", False),
])
def test_guide_excludes(path, expected):
    assert is_excluded(path, ["backups", "logs/*.log.*", "venv", "__pycache__"]) is expected


def test_full_takes_everything_but_the_guide_excludes(app):
    paths = {entry.path for entry in select(str(app), "full").entries}
    assert {"config/production.env", "data/reddit_sentiment.db", "logs/pipeline.log", "scripts/current",
            "output/sentiment_summary.csv", "apps/collector", "data"} <= paths
    assert not {p for p in paths if p.startswith(("venv", "logs/pipeline.log.1")) or "__pycache__" in p}


def test_wal_and_shm_files_never_selected(app):
    live = sqlite3.connect(str(app / "data" / "reddit_sentiment.db"))  # the running app keeps -wal and -shm
    live.execute("INSERT INTO posts (body) VALUES ('live')")
    live.commit()
    assert os.path.exists(str(app / "data" / "reddit_sentiment.db-wal"))
    paths = {entry.path for entry in select(str(app), "full").entries}
    live.close()
    assert not {p for p in paths if p.endswith(("-wal", "-shm", "-journal"))}


def test_litestreams_state_beside_a_database_is_never_selected(app):
    # Litestream 0.5 keeps a whole copy of the database and the unshipped transactions in .<name>-litestream/.
    state = app / "data" / ".reddit_sentiment.db-litestream"
    (state / "ltx" / "0").mkdir(parents=True)
    (state / "ltx" / "0" / "0000000000000001-0000000000000001.ltx").write_bytes(b"copy of the database")
    (app / "data" / ".notes-litestream").mkdir()  # no database named notes beside it: an ordinary folder
    (app / "data" / ".notes-litestream" / "kept").write_text("kept")
    for backup_type in ("full", "database"):
        paths = {entry.path for entry in select(str(app), backup_type).entries}
        assert not {p for p in paths if ".reddit_sentiment.db-litestream" in p}, backup_type
    assert "data/.notes-litestream/kept" in {entry.path for entry in select(str(app), "full").entries}


def test_databases_detected_by_header(app):
    (app / "data" / "notes.db").write_text("not sqlite")
    selection = select(str(app), "full")
    assert [entry.path for entry in selection.databases] == ["data/reddit_sentiment.db"]


def test_config_type_takes_the_guide_config_set_and_reports_missing(app):
    selection = select(str(app), "config")
    paths = {entry.path for entry in selection.entries}
    assert "config/production.env" in paths and "systemd/reddit-sentiment-pipeline.service" in paths
    assert "monitoring/alerting_rules.yml" in paths and "monitoring" in paths
    assert not selection.databases and "data/reddit_sentiment.db" not in paths
    assert selection.missing == ["monitoring/prometheus_config.yml"]


def test_database_type_takes_only_databases(app):
    selection = select(str(app), "database")
    assert [(e.path, e.database) for e in selection.entries] == [("data", False), ("data/reddit_sentiment.db", True)]


def test_backup_dir_inside_app_root_is_never_selected(app):
    (app / "my-backups").mkdir()
    (app / "my-backups" / "old.tar").write_text("x")
    paths = {entry.path for entry in select(str(app), "full", exclude=[], backup_dir=str(app / "my-backups")).entries}
    assert not {p for p in paths if p.startswith("my-backups")}


def test_explicit_database_must_be_sqlite(app):
    with pytest.raises(BackupError, match="not a SQLite database"):
        select(str(app), "full", databases=["config/production.env"])
    with pytest.raises(BackupError, match="does not exist"):
        select(str(app), "full", databases=["data/nope.db"])


def test_missing_app_root_says_so(tmp_path):
    with pytest.raises(BackupError, match="app_root .* does not exist"):
        select(str(tmp_path / "nope"), "full")


def test_include_outside_app_root_refused(app):
    with pytest.raises(BackupError, match="outside app_root"):
        select(str(app), "full", include=["../etc"])


def test_fifo_skipped_with_warning(app):
    os.mkfifo(str(app / "data" / "pipe"))
    selection = select(str(app), "full")
    assert "data/pipe" not in {entry.path for entry in selection.entries}
    assert any("data/pipe skipped" in warning for warning in selection.warnings)
