"""The app user swaps what a backup selected (a file, a directory, a database) for a symlink to a root-only file,
a FIFO or another tree between selection and reading: the secret must never reach the archive, and nothing hangs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import create as _create
from ansible_collections.devops.reddit_backup.plugins.module_utils import _nofollow
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import selection as _selection
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import wheelhouse as _wheelhouse
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import make_db, write
from tests.unit.plugins.module_utils.builders import NOW, read_archive

SECRET = b"root-only-secret-4f9a1c"


@pytest.fixture
def no_hang():
    """Fail (instead of hanging the suite) when the code under test blocks for 30 seconds."""
    def hung(_signum, _frame):
        raise AssertionError("the backup hung on a FIFO")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def secret(tmp_path):
    """A root-only file outside the app tree, like /etc/shadow."""
    path = tmp_path / "outside" / "shadow"
    write(str(path), SECRET.decode() + "\n", 0o600)
    return path


def swap_after_selection(monkeypatch, swap) -> None:
    """Run ``swap`` right after the real selection: the moment a racing app user would strike."""
    real_select = _selection.select

    def select_then_swap(*args, **kwargs):
        selection = real_select(*args, **kwargs)
        swap()
        return selection
    monkeypatch.setattr(_create._selection, "select", select_then_swap)


def archive_bytes(archive: str) -> bytes:
    return b"".join(content for _info, content in read_archive(archive).values())


def manifest_of(archive: str) -> dict:
    return json.loads(read_archive(archive)["MANIFEST.json"][1])


def replace_with_symlink(path, target) -> None:
    os.unlink(str(path))
    os.symlink(str(target), str(path))


def test_file_swapped_for_a_symlink_to_a_secret_is_left_out_with_a_warning(app, tmp_path, secret, monkeypatch):
    swap_after_selection(monkeypatch, lambda: replace_with_symlink(app / "config" / "logging.conf", secret))
    result = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), now=NOW))
    assert SECRET not in archive_bytes(result["archive"])
    assert "config/logging.conf" not in {m["path"] for m in manifest_of(result["archive"])["members"]}
    assert any(w.startswith("config/logging.conf left out of this backup") for w in result["warnings"])
    assert "config/production.env" in {m["path"] for m in manifest_of(result["archive"])["members"]}


def test_file_swapped_for_a_hard_link_to_a_secret_is_left_out(app, tmp_path, secret, monkeypatch):
    def hard_swap():  # same name, another inode (kernels without protected_hardlinks allow it)
        os.unlink(str(app / "config" / "logging.conf"))
        os.link(str(secret), str(app / "config" / "logging.conf"))
    swap_after_selection(monkeypatch, hard_swap)
    result = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), now=NOW))
    assert SECRET not in archive_bytes(result["archive"])


def test_file_swapped_for_a_fifo_does_not_hang_the_backup(app, tmp_path, monkeypatch, no_hang):
    def fifo_swap():
        os.unlink(str(app / "output" / "sentiment_summary.csv"))
        os.mkfifo(str(app / "output" / "sentiment_summary.csv"))
    swap_after_selection(monkeypatch, fifo_swap)
    result = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), now=NOW))
    assert any(w.startswith("output/sentiment_summary.csv left out") for w in result["warnings"])


def test_directory_swapped_for_a_symlink_after_selection(app, tmp_path, secret, monkeypatch):
    (secret.parent / "logging.conf").write_bytes(SECRET)  # the same names in the outside tree

    def dir_swap():
        shutil.rmtree(str(app / "config"))
        os.symlink(str(secret.parent), str(app / "config"))
    swap_after_selection(monkeypatch, dir_swap)
    result = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), now=NOW))
    assert SECRET not in archive_bytes(result["archive"])


def test_directory_swapped_mid_walk_is_not_listed(app, secret):
    """Selection lstat-ed config/ as a directory; it became a link before its listing: the listing refuses it."""
    entry = _selection._entry(str(app), "config")
    shutil.rmtree(str(app / "config"))
    os.symlink(str(secret.parent), str(app / "config"))
    with pytest.raises(_nofollow.Replaced):
        _selection._list_dir(str(app), entry)


def test_walk_never_follows_a_directory_symlink_in_an_include_path(app, secret):
    os.symlink(str(secret.parent), str(app / "linked"))
    selection = _selection.select(str(app), "full", include=["linked/shadow"])
    assert not [entry.path for entry in selection.entries if entry.path.startswith("linked/")]
    assert any("linked/shadow skipped" in warning for warning in selection.warnings)


def test_database_swapped_for_a_symlink_to_a_root_only_database_fails_the_backup(app, tmp_path, monkeypatch):
    other = tmp_path / "outside" / "root.db"
    make_db(str(other), rows=5)
    conn = sqlite3.connect(str(other))
    conn.execute("INSERT INTO posts (body) VALUES (?)", (SECRET.decode(),))
    conn.commit()
    conn.close()
    live = app / "data" / "reddit_sentiment.db"
    swap_after_selection(monkeypatch, lambda: replace_with_symlink(live, other))
    with pytest.raises(BackupError, match="data/reddit_sentiment.db.*the backup was not kept"):
        create_backup(BackupRequest(str(app), str(tmp_path / "backups"), now=NOW))
    assert not [name for _dir, _dirs, names in os.walk(str(tmp_path / "backups")) for name in names
                if ".tar" in name and not name.startswith(".")]


def test_database_swapped_between_the_check_and_sqlites_open_is_refused(app, tmp_path, monkeypatch):
    """The narrowest race: the path is right when checked and a link when SQLite opens it."""
    other = tmp_path / "outside" / "root.db"
    make_db(str(other), rows=5)
    live = app / "data" / "reddit_sentiment.db"
    expected = os.lstat(str(live))
    aside = tmp_path / "aside.db"
    real_open = _sqlite._open_source

    def swap_then_open(src, busy_timeout):
        os.rename(str(live), str(aside))
        os.symlink(str(other), str(live))
        try:
            return real_open(src, busy_timeout)
        finally:
            os.unlink(str(live))
            os.rename(str(aside), str(live))  # put back: a path check after the snapshot sees nothing wrong
    monkeypatch.setattr(_sqlite, "_open_source", swap_then_open)
    with pytest.raises(_nofollow.Replaced, match="SQLite opened .*root.db"):
        _sqlite.snapshot(str(live), str(tmp_path / "snap.db"), expected=expected)


def test_snapshot_of_the_selected_database_through_sqlites_own_open(app, tmp_path):
    live = str(app / "data" / "reddit_sentiment.db")
    facts = _sqlite.snapshot(live, str(tmp_path / "snap.db"), expected=os.lstat(live))
    assert facts["page_count"] > 0


def test_sqlite_backup_refuses_a_symlink_src(app, tmp_path):
    os.symlink(str(app / "data" / "reddit_sentiment.db"), str(tmp_path / "link.db"))
    with pytest.raises(BackupError, match="is a symlink"):
        _sqlite.snapshot_file(str(tmp_path / "link.db"), str(tmp_path / "out.db"))


def test_a_fifo_beside_a_database_name_does_not_hang_detection(app, no_hang):
    os.mkfifo(str(app / "data" / "queue.db"))
    os.mkfifo(str(app / "data" / "other"))
    write(str(app / "data" / "other-wal"), "x")  # a -wal name whose "database" is a FIFO
    assert _sqlite.is_sqlite_file(str(app / "data" / "queue.db")) is False
    selection = _selection.select(str(app), "full")
    assert [entry.path for entry in selection.databases] == ["data/reddit_sentiment.db"]


def test_requirements_symlinked_to_a_secret_is_not_read(app, secret, tmp_path):
    os.makedirs(str(app / "apps" / "collector"), exist_ok=True)
    secret.write_text("rootonlyname==1\n")
    os.symlink(str(secret), str(app / "apps" / "collector" / "requirements.txt"))
    assert _wheelhouse.missing_requirements(str(app / "apps" / "collector" / "requirements.txt"), []) == []
