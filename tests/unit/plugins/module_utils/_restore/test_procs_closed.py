"""The database-in-use guard where /proc is closed (issue 12 item 12): a real SQLite writer held open by an
unprivileged user, found by its file locks when the guard cannot read that user's /proc/PID/fd, with a warning that
says some processes could not be inspected."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import procs as _procs
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.unit.plugins.module_utils.builders import make_db
from tests.unit.plugins.module_utils.builders import COLLECTIONS

APP_USER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c"]
OTHER_USER = ["setpriv", "--reuid=12345", "--regid=12345", "--clear-groups", "/usr/bin/python3", "-c"]
# The pipeline's writer: it wrote, and keeps its connection (WAL: a read lock on -shm) or a write transaction open.
WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("INSERT INTO posts (body) VALUES ('new')")
if sys.argv[2] == "transaction":
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO posts (body) VALUES ('pending')")
print("open", flush=True)
sys.stdin.readline()
"""
GUARD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import procs as _procs
found, warnings = _procs.in_use(sys.argv[2:])
print(json.dumps({"found": found, "warnings": warnings, "proc_only": _procs.holders(sys.argv[2:])[0]}))
"""


@pytest.fixture
def live_db():
    """A database the app user (nobody) owns, readable by others, in a folder all may enter."""
    home = tempfile.mkdtemp(prefix="guard-", dir="/tmp")
    os.chmod(home, 0o755)
    app = os.path.join(home, "app")
    db = os.path.join(app, "data", "reddit_sentiment.db")
    yield home, app, db
    shutil.rmtree(home, ignore_errors=True)


def make_live(app: str, db: str, journal_mode: str) -> None:
    make_db(db, rows=20, journal_mode=journal_mode)
    for folder in (app, os.path.dirname(db)):
        os.chmod(folder, 0o755)
    subprocess.run(["chown", "-R", "nobody:nogroup", app], check=True)


def hold(db: str, mode: str) -> subprocess.Popen:
    writer = subprocess.Popen(APP_USER + [WRITER, db, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == "open"
    return writer


def release(writer: subprocess.Popen) -> None:
    writer.stdin.write("\n")
    writer.stdin.close()
    writer.wait(timeout=10)


@pytest.mark.parametrize("journal_mode,mode", [("wal", "idle"), ("delete", "transaction")])
def test_a_guard_that_cannot_read_proc_finds_the_writer_by_its_locks_and_warns(live_db, journal_mode, mode):
    _home, app, db = live_db
    make_live(app, db, journal_mode)
    paths = [db, db + "-wal", db + "-shm", db + "-journal"]
    writer = hold(db, mode)
    try:
        guard = subprocess.run(OTHER_USER + [GUARD, COLLECTIONS] + paths, capture_output=True, text=True)
        assert guard.returncode == 0, guard.stderr
        report = json.loads(guard.stdout)
        assert report["proc_only"] == []  # what the guard saw before: nothing, and it said nothing about it
        assert {(holder["pid"], holder["found_by"]) for holder in report["found"]} == {(writer.pid, "lock")}
        assert "python3" in report["found"][0]["command"]
        assert any(warning.startswith("could not look into") and "closed to uid 12345" in warning
                   for warning in report["warnings"]), report["warnings"]
        # The probe disturbed nothing: the writer commits and its rows are there.
        with sqlite3.connect(db) as conn:
            before = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    finally:
        release(writer)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] >= before
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_restore_refuses_a_database_locked_by_a_process_proc_does_not_show(live_db, tmp_path, monkeypatch):
    _home, app, db = live_db
    make_live(app, db, "wal")
    archive = create_backup(BackupRequest(app, str(tmp_path / "backups"), type="database"))["archive"]
    writer = hold(db, "idle")
    try:
        monkeypatch.setattr(_procs, "PROC", str(tmp_path / "restricted-proc"))  # /proc shows nothing of it
        os.mkdir(str(tmp_path / "restricted-proc"))
        with pytest.raises(BackupError, match=r"refusing to restore over a database in use: PID %d \(\?\) holds "
                                              % writer.pid):
            restore(RestoreRequest(dest=app, archive=archive, scope="database"))
    finally:
        release(writer)
    assert _procs.in_use([db, db + "-shm"]) == ([], [])


def hidepid_guard(paths) -> subprocess.CompletedProcess:
    """The guard run as another user in a private mount namespace whose /proc is mounted with hidepid=2 over the
    usual one: the writer's /proc entries are invisible to it, as on a hardened host."""
    script = ('mount -t proc -o hidepid=2 proc /proc && exec "$@"')
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "guard"]
                          + OTHER_USER + [GUARD, COLLECTIONS] + paths, capture_output=True, text=True)


def test_a_guard_under_hidepid_warns_and_finds_the_writer_by_its_locks(live_db):
    _home, app, db = live_db
    make_live(app, db, "wal")
    paths = [db, db + "-wal", db + "-shm", db + "-journal"]
    writer = hold(db, "idle")
    try:
        guard = hidepid_guard(paths)
    finally:
        release(writer)
    assert guard.returncode == 0, guard.stderr
    report = json.loads(guard.stdout)
    assert report["proc_only"] == []  # /proc shows the guard no process of the writer's user
    # Found by its read lock on -shm; its command line is hidden too.
    assert {(holder["pid"], holder["found_by"], holder["command"]) for holder in report["found"]} == \
        {(writer.pid, "lock", "?")}
    assert db + "-shm" in {holder["path"] for holder in report["found"]}
    assert any(warning.startswith("/proc is mounted with hidepid=") and "uid 12345" in warning
               for warning in report["warnings"]), report["warnings"]
