"""_app_checks: the guide's verify-restore on a tree in place, with the engine's own checks."""

from __future__ import annotations

import os

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.app_checks import find_databases, verify_app
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import make_db, write

LOGGING = "[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=f\n[logger_root]\nhandlers=h\n" \
          "[handler_h]\nclass=StreamHandler\nformatter=f\nargs=()\n[formatter_f]\nformat=%(message)s\n"


@pytest.fixture
def tree(app):
    write(str(app / "config" / "logging.conf"), LOGGING)
    return app


def by_name(result) -> dict:
    return {check["name"]: check for check in result["checks"]}


def test_a_sound_tree_passes_every_check(tree):
    make_db(str(tree / "data" / "nested" / "extra.sqlite3"), rows=5)
    write(str(tree / "data" / "notes.db"), "not a database")  # a .db without SQLite's header is not one
    result = verify_app(str(tree), required=["config/production.env"])
    assert result["valid"], result["errors"]
    assert result["databases"] == ["data/nested/extra.sqlite3", "data/reddit_sentiment.db"]
    checks = by_name(result)
    assert checks["database:data/reddit_sentiment.db"]["detail"] == "PRAGMA integrity_check: ok"
    assert checks["config:config/production.env"]["status"] == "passed"
    assert checks["config:systemd/reddit-sentiment-pipeline.service"]["status"] == "passed"
    assert checks["required:config/production.env"]["status"] == "passed"
    assert not os.path.exists(str(tree / "data" / "nested" / "extra.sqlite3-shm")), "nothing created in the tree"


def test_a_damaged_database_and_a_bad_line_fail_naming_them(tree):
    database = tree / "data" / "reddit_sentiment.db"
    with open(str(database), "r+b") as handle:
        handle.seek(os.path.getsize(str(database)) // 2)
        handle.write(b"\xff" * 8192)
    write(str(tree / "config" / "production.env"), "DATABASE_PATH=x\nnot a setting\n")
    result = verify_app(str(tree), required=["config/missing.conf"])
    assert not result["valid"]
    checks = by_name(result)
    assert checks["database:data/reddit_sentiment.db"]["status"] == "failed"
    assert "not a setting" in checks["config:config/production.env"]["detail"]
    assert checks["required:config/missing.conf"]["detail"].endswith("config/missing.conf is missing")
    assert len(result["errors"]) == 3


def test_only_the_chosen_databases_and_no_config(tree):
    write(str(tree / "config" / "production.env"), "not a setting\n")
    result = verify_app(str(tree), databases=["data/reddit_sentiment.db"], config=False)
    assert result["valid"] and [check["name"] for check in result["checks"]] == ["database:data/reddit_sentiment.db"]
    missing = verify_app(str(tree), databases=["data/gone.db"], config=False)
    assert not missing["valid"] and "is not a SQLite database" in missing["errors"][0]


def test_symlinks_are_not_followed(tree, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    make_db(str(elsewhere / "other.db"), rows=5)
    os.symlink(str(elsewhere / "other.db"), str(tree / "data" / "linked.db"))
    assert find_databases(str(tree)) == ["data/reddit_sentiment.db"]
    linked = verify_app(str(tree), databases=["data/linked.db"], config=False)
    assert not linked["valid"]


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.db", "data/../../x.db"])
def test_paths_outside_the_tree_are_refused(tree, bad):
    with pytest.raises(BackupError, match="must be a path inside app_root"):
        verify_app(str(tree), databases=[bad])


def test_a_missing_app_root_is_a_clear_error(tmp_path):
    with pytest.raises(BackupError, match="is not a directory: give the application directory"):
        verify_app(str(tmp_path / "nowhere"))
