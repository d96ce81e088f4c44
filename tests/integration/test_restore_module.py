"""backup_restore through ansible-playbook on localhost, against the sample app: every scope, check mode and
re-runs, a hostile archive, and ansible-playbook killed (with its module) mid-restore."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.integration.runner import REPO, ansible_env, harness_argv
from tests.sampleapp import seed_app
from tests.unit.plugins.module_utils.builders import entry, tar_bytes, write_archive
from tests.unit.plugins.module_utils.builders import tree

DB = "data/reddit_sentiment.db"


def restore(task="restore", **options) -> dict:
    return {"name": task, "devops.reddit_backup.backup_restore": options}


def posts(app) -> int:
    conn = sqlite3.connect(str(app / DB))
    try:
        return conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    finally:
        conn.close()


def damage(app) -> None:
    conn = sqlite3.connect(str(app / DB))
    conn.execute("DELETE FROM posts WHERE id > 100")
    conn.commit()
    conn.close()
    (app / "config" / "production.env").write_text("APP_ENV=broken\n")
    (app / "systemd" / "reddit-sentiment-pipeline.timer").write_text("[Timer]\nOnCalendar=never\n")
    (app / "monitoring" / "alerting_rules.yml").write_text("groups: [lost]\n")


def test_every_scope_then_a_rerun_changes_nothing(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    made = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(backups)))
    expected = posts(sample_app)
    damage(sample_app)
    fresh = tmp_path / "new-server" / "cicd_project"
    scopes = [restore("database", backup_dir=str(backups), dest=str(sample_app), scope="database"),
              restore("config", backup_dir=str(backups), dest=str(sample_app), scope="config"),
              restore("paths", archive=made["archive"], dest=str(sample_app), scope=["monitoring/alerting_rules.yml"]),
              restore("full", archive=made["archive"], dest=str(fresh))]
    predicted = play(scopes, check=True)
    assert not predicted.failed, predicted.stderr
    assert all(predicted.result(name)["changed"] for name in ("database", "config", "paths", "full"))
    assert posts(sample_app) == 100 and not fresh.exists()
    result = play(scopes)
    assert not result.failed, result.stderr
    assert result.result("database")["restored"] == [str(sample_app / "data")]
    assert result.result("database")["databases"] == [DB] and posts(sample_app) == expected
    assert result.result("config")["restored"] == [str(sample_app / "config"),
                                                   str(sample_app / "monitoring" / "alerting_rules.yml"),
                                                   str(sample_app / "systemd")]
    assert result.result("paths")["changed"] is False  # the config scope restored it already
    assert (sample_app / "config" / "production.env").read_text().startswith("#")
    assert result.result("full")["restored"] == [str(fresh)] and posts(fresh) == expected
    copies = [c for name in ("database", "config") for c in result.result(name)["safety_copies"]]
    assert len(copies) == 4 and all(os.path.exists(c) for c in copies)
    again = play(scopes)
    assert not again.failed and not any(again.result(n)["changed"] for n in ("database", "config", "paths", "full"))


def test_a_hostile_archive_is_refused_and_nothing_changes(sample_app, tmp_path, play):
    members = [entry("config", "dir"), entry("config/production.env", data=b"A=1\n"),
               entry("config/cron", "symlink", target="../../../etc/cron.d"), entry("config/cron/evil", data=b"x")]
    archive = write_archive(tmp_path / "b", "hostile", tar_bytes(members), meta={"type": "full"})
    before = tree(sample_app)
    result = play([restore(archive=archive, dest=str(sample_app), scope="config", verify_first=False)])
    assert result.failed and "refus" in result.result("restore")["msg"]
    assert tree(sample_app) == before
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith(".tmp-restore-")]


def _playbook(tmp_path, archive, dest) -> str:
    path = tmp_path / "kill.yml"
    path.write_text(
        "- name: restore\n  hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - name: restore\n      devops.reddit_backup.backup_restore:\n"
        "        archive: %s\n        dest: %s\n" % (archive, dest))
    return str(path)


# Loaded by every Python the test starts (PYTHONPATH), so also by the module ansible-playbook runs: an audit hook
# that stops the process at a named step of the swap and says so in a marker file. The test then kills the whole
# process group, so the kill lands exactly there, whatever the machine's speed.
KILL_HOOK = """
import os, signal, sys
_kill_at, _marker = os.environ.get("RB_KILL_AT"), os.environ.get("RB_KILL_MARKER")
_state = {"armed": False, "renames": 0, "stop_next": False}
def _stop(step):
    with open(_marker, "w") as handle:
        handle.write("%d %s" % (os.getpid(), step))
    os.kill(os.getpid(), signal.SIGSTOP)
def _hook(event, args):
    if _state["stop_next"]:
        _state["stop_next"] = False
        _stop(_kill_at)
    elif event == "os.rename" and str(args[1]).endswith("journal.json"):
        _state["armed"] = True  # the journal is renamed into place now: the swap starts after it
        _state["stop_next"] = _kill_at == "journal"
    elif event == "os.rename" and _state["armed"]:
        _state["renames"] += 1  # a replaced item moved to its safety copy: that unit is swapped
        _state["stop_next"] = _kill_at == "retired-%d" % _state["renames"]
if _kill_at and _marker:
    sys.addaudithook(_hook)
"""


def _stopped_pid(marker) -> int:
    """The PID the marker names, once that process has stopped itself (state T in /proc)."""
    pid = int(marker.read_text().split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _state(pid) == "T":
            return pid
        time.sleep(0.01)
    raise AssertionError("process %d never stopped at its kill point" % pid)


def _descendants(pid: int) -> list:
    """Every process below ``pid`` (children of every thread, recursively)."""
    found = []
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, task)) as handle:
            for child in map(int, handle.read().split()):
                found += [child] + _descendants(child)
    return found


def _wait_gone(pids: list) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if os.path.exists("/proc/%d" % pid) and _state(pid) != "Z"]
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError("processes %s outlived their SIGKILL" % alive)


def _state(pid: int) -> str:
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["journal", "retired-1"])
def test_killing_ansible_mid_restore_leaves_each_item_old_or_new(tmp_path, kill_at):
    """ansible-playbook and its module are killed at once, at a named step of the swap (stopped there by an audit
    hook, then SIGKILLed): each item is old or new, the killed run's journal is there, and the next run finishes."""
    app = tmp_path / "app"
    seed_app(app, db_size_mb=24)
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups")))
    reference = tmp_path / "reference"
    playbook = _playbook(tmp_path, made["archive"], reference)
    subprocess.run(harness_argv(playbook), check=True, env=ansible_env(tmp_path), cwd=REPO, capture_output=True)
    new = {name: tree(reference / name) for name in os.listdir(str(reference))}
    playbook = _playbook(tmp_path, made["archive"], app)
    hook_dir, marker = tmp_path / "hook", tmp_path / "killed-at"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(KILL_HOOK)
    env = dict(ansible_env(tmp_path), RB_KILL_AT=kill_at, RB_KILL_MARKER=str(marker), PYTHONPATH=str(hook_dir))
    damage(app)
    old = {name: tree(app / name) for name in new}
    process = subprocess.Popen(harness_argv(playbook), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the restore never reached %s (exit %s)" % (kill_at, process.poll())
    module_pid = _stopped_pid(marker)
    # Ansible's worker runs the module in a session of its own, so killing ansible-playbook's process group alone
    # would leave the restore running: kill every process of the tree, the stopped module among them.
    family = _descendants(process.pid)
    assert module_pid in family
    for pid in [process.pid] + family:
        os.kill(pid, signal.SIGKILL)
    process.wait()
    _wait_gone(family)
    assert marker.read_text().endswith(kill_at)
    stagings = [n for n in os.listdir(str(tmp_path)) if n.startswith(".reddit-restore-app-")]
    assert len(stagings) == 1 and (tmp_path / stagings[0] / "journal.json").exists(), \
        "the kill did not land during the swap"
    states = {name: "old" if tree(app / name) == old[name] else "new" if tree(app / name) == new[name] else None
              for name in new}
    assert None not in states.values(), "neither old nor new: %s" % states
    changed = {name for name in new if old[name] != new[name]}
    swapped = {name for name in changed if states[name] == "new"}
    if kill_at == "journal":
        assert not swapped, "killed before the first swap, yet %s changed" % swapped
    else:
        assert swapped and swapped != changed, "killed mid-swap, yet %s of %s swapped" % (swapped, changed)
    completed = subprocess.run(harness_argv(playbook), env=ansible_env(tmp_path), cwd=REPO, capture_output=True,
                               text=True)
    assert completed.returncode == 0, completed.stdout
    assert {name: tree(app / name) for name in new} == new
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith((".tmp-restore-", ".reddit-restore-"))]
    digest = hashlib.sha256(open(str(app / DB), "rb").read()).hexdigest()
    assert digest == next(d["sha256"] for d in made["databases"] if d["path"] == DB)
