"""The app user (here: nobody, owning the app root) swaps files, a directory and the database for symlinks to
root-only files and for FIFOs in a bounded loop while backups run through Ansible: no root-only byte may reach an
archive, no backup may hang, and every refused backup says why."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest

from tests.integration.runner import REPO, ansible_env, harness_argv
from tests.sampleapp import seed_app

MARKER = "ROOT-ONLY-SECRET-7d1e0b"
ATTACKER = r'''
import os, sys, time
app, secrets, stop, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

def swap(path, make):
    aside = path + ".aside"
    os.rename(path, aside)
    try:
        make(path)
    except OSError:
        pass
    time.sleep(0.0005)
    try:
        os.unlink(path) if not os.path.isdir(path) or os.path.islink(path) else os.rmdir(path)
    except OSError:
        pass
    os.rename(aside, path)

deadline = time.monotonic() + seconds
rounds = 0
while time.monotonic() < deadline and not os.path.exists(stop):
    swap(os.path.join(app, "config", "production.env"), lambda p: os.symlink(os.path.join(secrets, "shadow"), p))
    swap(os.path.join(app, "config"), lambda p: os.symlink(secrets, p))
    swap(os.path.join(app, "data", "reddit_sentiment.db"), lambda p: os.symlink(os.path.join(secrets, "root.db"), p))
    swap(os.path.join(app, "config", "production.env"), os.mkfifo)
    rounds += 1
print(rounds)
'''


@pytest.fixture
def hostile_app():
    """An app root owned by nobody, and root-only secrets beside it (0700 folder, 0600 files)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="reddit-backup-swaps-"))
    os.chmod(str(base), 0o755)
    app = base / "app"
    seed_app(app, rows=200)
    secrets = base / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "shadow").write_text("root:%s:19000:0:99999:7:::\n" % MARKER)
    (secrets / "production.env").write_text("TOKEN=%s\n" % MARKER)  # the name the swapped config/ would offer
    conn = sqlite3.connect(str(secrets / "root.db"))
    conn.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO posts (body) VALUES (?)", (MARKER,))
    conn.commit()
    conn.close()
    for path in secrets.iterdir():
        os.chmod(str(path), 0o600)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(app)], check=True)
    yield base
    shutil.rmtree(str(base))


def archive_plaintext(archive: pathlib.Path) -> bytes:
    tool = {".zst": ["zstd", "-d", "-c"], ".gz": ["gzip", "-d", "-c"]}.get(archive.suffix, ["cat"])
    return subprocess.run(tool + [str(archive)], check=True, capture_output=True).stdout


def test_swap_loop_as_the_app_user_never_puts_a_root_only_file_in_an_archive(hostile_app, tmp_path):
    app, secrets, backups = hostile_app / "app", hostile_app / "secrets", tmp_path / "backups"
    stop = hostile_app / "stop"
    script = hostile_app / "attacker.py"
    script.write_text(ATTACKER)
    # the attacker may read its own tree only: the secrets are root-only
    probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat",
                            str(secrets / "shadow")], capture_output=True)
    assert probe.returncode != 0
    tasks = [{"name": "backup %d" % number, "ignore_errors": True,
              "devops.reddit_backup.backup_create": {"app_root": str(app), "backup_dir": str(backups),
                                                     "type": "incremental" if number % 2 else "full",
                                                     "integrity": "none"}}
             for number in range(12)]
    playbook = tmp_path / "backups.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": tasks}]))
    attacker = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                 "/usr/bin/python3", str(script), str(app), str(secrets), str(stop), "240"],
                                stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        completed = subprocess.run(harness_argv(str(playbook)), env=ansible_env(tmp_path), cwd=REPO,
                                   capture_output=True, text=True, timeout=400)
    finally:
        stop.touch()
        rounds = int(attacker.communicate(timeout=60)[0].strip() or 0)
    assert rounds > 0
    archives = [path for path in backups.rglob("*.tar*") if not path.name.endswith((".sha256", ".json", ".index"))]
    for archive in archives:
        assert MARKER.encode() not in archive_plaintext(archive), "a root-only secret is in %s" % archive
    results = [task["hosts"]["localhost"] for task in json.loads(completed.stdout)["plays"][0]["tasks"]]
    assert len(results) == len(tasks)
    for result in results:
        assert MARKER not in json.dumps(result)
        if result.get("failed"):  # only a swapped database may stop a backup, and it says so
            assert "reddit_sentiment.db" in result["msg"] and "the backup was not kept" in result["msg"], result["msg"]
    assert archives, "no backup succeeded: %s" % [r.get("msg") for r in results]
