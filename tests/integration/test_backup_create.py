"""backup_create, backup_info and sqlite_backup through ansible-playbook on localhost, against the sample app."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import DirectoryLock
from tests.integration.runner import REPO, ansible_env, harness_argv, run_tasks
from tests.sampleapp import seed_app


def create(app_root, backup_dir, task="backup", **options) -> dict:
    return {"name": task, "devops.reddit_backup.backup_create":
            dict({"app_root": str(app_root), "backup_dir": str(backup_dir)}, **options)}


def info(backup_dir, task="info", **options) -> dict:
    return {"name": task, "devops.reddit_backup.backup_info": dict({"backup_dir": str(backup_dir)}, **options)}


def extract_member(archive: str, member: str, dest: str) -> None:
    data = subprocess.run(["zstd", "-d", "-c", archive], check=True, capture_output=True).stdout
    with open(dest + ".tar", "wb") as handle:
        handle.write(data)
    with tarfile.open(dest + ".tar") as tar:
        with open(dest, "wb") as out:
            out.write(tar.extractfile(member).read())


def test_every_type_then_the_catalog(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    result = play([
        create(sample_app, backups, "full"),
        create(sample_app, backups, "config", type="config", compression="gzip"),
        create(sample_app, backups, "database", type="database", integrity="full"),
        create(sample_app, backups, "named", name="pre-maintenance-20250528"),
        info(backups, "info"),
        info(backups, "pick", name="pre-maintenance-20250528"),
    ])
    assert not result.failed, result.stderr
    full = result.result("full")
    assert full["changed"] and full["type"] == "full" and full["parent"] is None
    assert full["archive"].startswith(str(backups / "daily" / "backup_"))
    assert [db["path"] for db in full["databases"]] == ["data/reddit_sentiment.db"]
    assert full["databases"][0]["integrity"] == "ok" and full["files"] > 10
    assert result.result("config")["archive"].endswith(".tar.gz")
    assert result.result("database")["databases"][0]["integrity_level"] == "full"
    assert result.result("named")["archive"] == str(backups / "manual" / "pre-maintenance-20250528.tar.zst")
    catalog = result.result("info")
    assert catalog["changed"] is False and catalog["totals"]["count"] == 4
    assert set(catalog["latest"]) == {"full", "config", "database"}
    assert {b["archive"] for b in catalog["backups"]} == {result.result(n)["archive"]
                                                         for n in ("full", "config", "database", "named")}
    assert result.result("pick")["selected"]["archive"] == result.result("named")["archive"]
    # The guide's excludes: nothing from venv/, __pycache__/ or rotated logs; the live -wal never archived.
    listing = subprocess.run(["tar", "-I", "zstd", "-tf", full["archive"]], check=True, capture_output=True,
                             text=True).stdout.split()
    assert "config/production.env" in listing and "logs/pipeline.log" in listing
    assert not [p for p in listing if p.startswith("venv") or "__pycache__" in p or ".log." in p or
                p.endswith(("-wal", "-shm"))]


def test_check_mode_then_real_twice(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    first = play([create(sample_app, backups, "run")], check=True)
    assert not first.failed and first.result("run")["changed"] and not backups.exists()
    second = play([create(sample_app, backups, "run")])
    third = play([create(sample_app, backups, "run")], check=True)
    fourth = play([create(sample_app, backups, "run")])
    assert third.result("run")["changed"] and third.result("run")["size"] is None
    assert len(list_backups(str(backups))) == 2
    assert second.result("run")["archive"] != fourth.result("run")["archive"]


def test_live_writer_during_backup(tmp_path, play):
    app = tmp_path / "app"
    seed_app(app, rows=150000)
    progress = tmp_path / "progress"
    collector = subprocess.Popen([sys.executable, str(app / "apps" / "collector" / "collector.py"),
                                  "--db", str(app / "data" / "reddit_sentiment.db"), "--interval-ms", "2",
                                  "--forever", "--progress-file", str(progress)])
    try:
        while not progress.exists() or int(progress.read_text() or 0) <= 150000:
            time.sleep(0.05)
        before = int(progress.read_text())
        result = play([create(app, tmp_path / "backups", "backup", integrity="full")])
        after = int(progress.read_text())
    finally:
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(timeout=30) == 0
    assert not result.failed, result.stderr
    backup = result.result("backup")
    assert after > before, "the writer made no progress while the backup ran"
    snapshot = str(tmp_path / "snapshot.db")
    extract_member(backup["archive"], "data/reddit_sentiment.db", snapshot)
    conn = sqlite3.connect(snapshot)
    ids = [row[0] for row in conn.execute("SELECT id FROM posts ORDER BY id")]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert ids == list(range(1, len(ids) + 1)), "the snapshot is not a consistent prefix of the writer's rows"
    assert before <= ids[-1] <= after


def test_sigkill_in_the_middle_leaves_nothing_listed_and_the_next_run_works(tmp_path):
    app = tmp_path / "app"
    seed_app(app, db_size_mb=120)
    backups = tmp_path / "backups"
    playbook = tmp_path / "backup.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": [create(app, backups, "backup", compression="gzip")]}]))
    runner = subprocess.Popen(harness_argv(str(playbook)), env=ansible_env(tmp_path), cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    daily = backups / "daily"
    deadline = time.monotonic() + 120
    archive_temps = []
    while not archive_temps and time.monotonic() < deadline:  # wait until the archive itself is being written
        archive_temps = [p for p in (os.listdir(str(daily)) if daily.exists() else [])
                         if p.startswith(".tmp-backup_") and os.path.getsize(str(daily / p)) > 0]
        time.sleep(0.01)
    assert archive_temps, "the backup never started writing its archive"
    holder = json.loads((backups / ".lock").read_text())  # the module process writes its PID into the lock
    os.kill(holder["pid"], signal.SIGKILL)
    runner.wait(timeout=60)
    assert runner.returncode != 0
    assert list_backups(str(backups)) == []
    second = run_tasks(tmp_path, [create(app, backups, "again", compression="gzip", lock_timeout=5)])
    assert not second.failed, second.stderr
    assert [b["archive"] for b in list_backups(str(backups))] == [second.result("again")["archive"]]
    assert not [p for p in os.listdir(str(daily)) if p.startswith(".tmp-")]


def test_second_run_waits_for_the_lock_then_fails_clearly(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    backups.mkdir(mode=0o700)
    with DirectoryLock(str(backups), 1, "a test holding the lock"):
        result = play([create(sample_app, backups, "blocked", lock_timeout=1.5)])
    assert result.failed
    message = result.result("blocked")["msg"]
    assert "locked by another run (PID %d, a test holding the lock" % os.getpid() in message
    assert "raise lock_timeout" in message
    assert list_backups(str(backups)) == []


def test_two_concurrent_runs_both_succeed_one_after_the_other(sample_app, tmp_path):
    backups = tmp_path / "backups"
    runs = []
    for index in range(2):
        playbook = tmp_path / ("run%d.yml" % index)
        playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                         "tasks": [create(sample_app, backups, "b", lock_timeout=120)]}]))
        runs.append(subprocess.Popen(harness_argv(str(playbook)), env=ansible_env(tmp_path), cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    listed = list_backups(str(backups))
    assert len(listed) == 2 and listed[0]["archive"] != listed[1]["archive"]


@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MiB tmpfs as the backup directory (needs root, as CI has)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_full_disk(sample_app, small_disk, tmp_path, play):
    backups = small_disk / "backups"
    first = play([create(sample_app, backups, "first")])
    assert not first.failed, first.stderr
    earlier = list_backups(str(backups))
    # 1. Refused before writing: a first config backup whose uncompressed size exceeds the free space.
    (sample_app / "config" / "big.bin").write_bytes(os.urandom(10 << 20))
    refused = play([create(sample_app, backups, "config", type="config")])
    assert refused.failed and "not enough free space" in refused.result("config")["msg"]
    (sample_app / "config" / "big.bin").unlink()
    # 2. The estimate passes (the last full backup was small) but the disk fills while writing.
    (sample_app / "output" / "noise.bin").write_bytes(os.urandom(12 << 20))
    filled = play([create(sample_app, backups, "full")])
    assert filled.failed
    assert "no space left" in filled.result("full")["msg"] and "partial file was removed" in filled.result("full")["msg"]
    assert list_backups(str(backups)) == earlier
    leftovers = [p for sub in os.listdir(str(backups)) if (backups / sub).is_dir()
                 for p in os.listdir(str(backups / sub)) if p.startswith(".tmp-")]
    assert leftovers == []
    check = subprocess.run(["sha256sum", "-c", os.path.basename(earlier[0]["archive"]) + ".sha256"],
                           cwd=os.path.dirname(earlier[0]["archive"]), capture_output=True, text=True)
    assert check.returncode == 0


def test_missing_app_root(tmp_path, play):
    result = play([create(tmp_path / "nope", tmp_path / "backups", "backup")])
    assert result.failed and "app_root %s does not exist" % (tmp_path / "nope") in result.result("backup")["msg"]
    assert not (tmp_path / "backups").exists()


@pytest.fixture
def nobody_dir():
    """A folder the user nobody can reach (pytest's own tmp folders are root-only)."""
    path = tempfile.mkdtemp(prefix="reddit-backup-nobody-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def test_unreadable_file_fails_clearly_for_a_non_root_run(nobody_dir):
    # Root reads every file, so the run itself is made as nobody: the way a backup running as the app user
    # meets a file it may not read.
    shared = nobody_dir
    seed_app(shared / "app", rows=100)
    secret = shared / "app" / "config" / "secret.env"
    secret.write_text("TOKEN=x\n")
    subprocess.run(["chown", "-R", "nobody:nogroup", str(shared)], check=True)
    os.chmod(str(secret), 0o000)
    playbook = shared / "backup.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": [create(shared / "app", shared / "backups", "backup")]}]))
    env = ansible_env(shared)
    env.update(HOME=str(shared), ANSIBLE_REMOTE_TEMP=str(shared / ".remote-tmp"))
    completed = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                *harness_argv(str(playbook))], env=env, cwd=REPO, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode != 0
    assert completed.stdout.startswith("{"), completed.stdout + completed.stderr
    message = json.loads(completed.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert "cannot read config/secret.env" in message and "permission denied" in message


def test_sqlite_backup_module(sample_app, tmp_path, play):
    (tmp_path / "manual").mkdir()
    result = play([
        {"name": "snap", "devops.reddit_backup.sqlite_backup": {
            "src": str(sample_app / "data" / "reddit_sentiment.db"), "dest": str(tmp_path / "manual") + "/",
            "integrity": "full"}},
        {"name": "missing", "devops.reddit_backup.sqlite_backup": {
            "src": str(sample_app / "data" / "nope.db"), "dest": str(tmp_path / "x.db")}, "ignore_errors": True},
    ])
    snap = result.result("snap")
    assert snap["changed"] and snap["integrity"] == "ok" and snap["journal_mode"] == "wal"
    assert os.path.basename(snap["dest"]).startswith("reddit_sentiment_") and os.path.exists(snap["dest"])
    assert "not a SQLite database" in result.result("missing")["msg"]
