"""Issue 10 through the modules: the app user (``nobody`` here) owns the backup directory and plants links, FIFOs,
damaged sidecars and odd names; root runs backup_create, backup_info, backup_prune and backup_verify. What lies
outside the backup directory stays as it was, and each run stops naming the path (or, for one damaged backup,
the rest works)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from tests.sampleapp import seed_app

ATTACKER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
NOBODY = 65534


def as_attacker(*command: str) -> None:
    subprocess.run(ATTACKER + list(command), check=True, capture_output=True)


def task(module: str, task_name: str = None, **options) -> dict:
    return {"name": task_name or module, "devops.reddit_backup.%s" % module: options}


@pytest.fixture
def ground():
    """A world-traversable root holding the app (owned by nobody, backups inside it) and a root-owned outside
    folder the attacker wants harmed."""
    root = tempfile.mkdtemp(prefix="hostile-", dir="/tmp")
    os.chmod(root, 0o755)
    app = os.path.join(root, "app")
    seed_app(__import__("pathlib").Path(app))
    outside = os.path.join(root, "outside")
    os.mkdir(outside, 0o755)
    for name in ("victim", ".tmp-victim-abc", "backup_20250101_000000.tar.zst.sha256"):
        with open(os.path.join(outside, name), "w") as handle:
            handle.write("precious\n")
    os.chmod(os.path.join(outside, "victim"), 0o644)
    os.mkdir(os.path.join(app, "backups"), 0o755)  # the default <app_root>/backups, the app user's
    subprocess.run(["chown", "-R", "%d:%d" % (NOBODY, NOBODY), app], check=True)
    yield {"root": root, "app": app, "backups": os.path.join(app, "backups"), "outside": outside}
    shutil.rmtree(root, ignore_errors=True)


def untouched(outside: str) -> None:
    assert os.stat(outside).st_mode & 0o7777 == 0o755
    assert sorted(os.listdir(outside)) == [".tmp-victim-abc", "backup_20250101_000000.tar.zst.sha256", "victim"]
    for name in os.listdir(outside):
        assert open(os.path.join(outside, name)).read() == "precious\n"
    assert os.stat(os.path.join(outside, "victim")).st_mode & 0o7777 == 0o644


def create(ground, task_name="full", **options) -> dict:
    return task("backup_create", task_name, app_root=ground["app"], backup_dir=ground["backups"], **options)


def test_a_lock_file_planted_as_a_link_stops_the_run_and_truncates_nothing(ground, play):
    as_attacker("ln", "-s", os.path.join(ground["outside"], "victim"), os.path.join(ground["backups"], ".lock"))
    result = play([create(ground)])
    assert result.failed
    assert "lock file %s/.lock was not made by this tool" % ground["backups"] in result.result("full")["msg"]
    untouched(ground["outside"])


@pytest.mark.parametrize("folder", ["daily", "backups"])
def test_a_folder_replaced_by_a_link_is_refused_by_create_and_prune(ground, play, folder):
    assert not play([create(ground)]).failed
    planted = os.path.join(ground["backups"], folder) if folder != "backups" else ground["backups"]
    as_attacker("mv", planted, planted + ".old")
    as_attacker("ln", "-s", ground["outside"], planted)
    result = play([create(ground)])
    assert result.failed and "%s is a symbolic link" % planted in result.result("full")["msg"]
    pruned = play([task("backup_prune", "prune", backup_dir=ground["backups"], now="2030-01-01T00:00:00Z")])
    assert pruned.failed and "%s is a symbolic link" % planted in pruned.result("prune")["msg"]
    untouched(ground["outside"])


def test_swapping_a_type_folder_during_prunes_never_harms_the_outside(ground, play):
    """A bounded race: the attacker flips daily/ between a real folder and a link while prunes run."""
    assert not play([create(ground), create(ground, "second")]).failed
    daily = os.path.join(ground["backups"], "daily")
    stop = time.monotonic() + 20
    flipper = subprocess.Popen(ATTACKER + ["sh", "-c", "end=$(( $(date +%%s) + 20 )); while [ $(date +%%s) -lt $end ]; "
                                           "do mv %s %s.real && ln -s %s %s && rm %s && mv %s.real %s; done"
                                           % (daily, daily, ground["outside"], daily, daily, daily, daily)])
    try:
        while time.monotonic() < stop and flipper.poll() is None:
            play([task("backup_prune", "prune", backup_dir=ground["backups"], now="2030-01-01T00:00:00Z",
                       policy={"full": {"keep_last": 1}})])
    finally:
        flipper.kill()
        flipper.wait()
    untouched(ground["outside"])


def test_a_fifo_sidecar_hangs_nothing_and_marks_one_backup_damaged(ground, play):
    first = play([create(ground)]).result("full")
    second = play([create(ground, "second", type="config")]).result("second")
    # The app user owns the type folders, as when it copied backups there itself.
    for folder in ("daily", "config"):
        subprocess.run(["chown", "-R", "%d:%d" % (NOBODY, NOBODY), os.path.join(ground["backups"], folder)],
                       check=True)
    os.unlink(second["archive"] + ".meta.json")
    as_attacker("mkfifo", second["archive"] + ".meta.json")
    as_attacker("ln", "-sf", "/dev/zero", first["archive"] + ".verify.json")
    started = time.monotonic()
    result = play([task("backup_info", "info", backup_dir=ground["backups"]),
                   task("backup_prune", "prune", backup_dir=ground["backups"], now="2030-01-01T00:00:00Z"),
                   task("backup_verify", "verify", backup_dir=ground["backups"], level="quick")], timeout=120)
    assert time.monotonic() - started < 100
    assert not result.failed, result.stderr
    listed = {b["archive"]: b for b in result.result("info")["backups"]}
    assert "not a regular file" in listed[second["archive"]]["damaged"]
    assert listed[first["archive"]]["damaged"] is None and listed[first["archive"]]["verified"] is None
    assert result.result("info")["latest"]["full"]["archive"] == first["archive"]
    assert second["archive"] in [k["archive"] for k in result.result("prune")["kept"]]
    assert result.result("verify")["archive"] == first["archive"] and result.result("verify")["valid"]


@pytest.mark.parametrize("shape", [[1, 2], "a string", {"type": "full", "size": "huge", "databases": 3}])
def test_a_meta_of_the_wrong_shape_damages_one_backup_not_the_catalog(ground, play, shape):
    first = play([create(ground)]).result("full")
    second = play([create(ground, "second")]).result("second")
    with open(second["archive"] + ".meta.json") as handle:
        good = json.load(handle)
    with open(second["archive"] + ".meta.json", "w") as handle:
        json.dump(dict(good, **shape) if isinstance(shape, dict) else shape, handle)
    result = play([task("backup_info", "info", backup_dir=ground["backups"]),
                   task("backup_prune", "prune", backup_dir=ground["backups"], now="2030-01-01T00:00:00Z"),
                   task("backup_verify", "verify", backup_dir=ground["backups"])])
    assert not result.failed, result.stderr
    listed = {b["archive"]: b for b in result.result("info")["backups"]}
    assert listed[second["archive"]]["damaged"] and listed[second["archive"]]["restorable"] is False
    assert result.result("info")["latest"]["full"]["archive"] == first["archive"]
    assert os.path.exists(second["archive"]) and result.result("verify")["archive"] == first["archive"]


def test_a_name_with_a_newline_is_refused_saying_what_is_allowed(ground, play):
    result = play([create(ground, "named", name="nightly\n")])
    assert result.failed and "letters, digits, '.', '_' and '-'" in result.result("named")["msg"]
    assert not os.path.exists(os.path.join(ground["backups"], "manual"))


def test_a_prune_waits_for_a_running_verify(ground, play):
    old = play([create(ground, "old", type="config")]).result("old")
    from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import reading
    from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import backup_dir_of
    held, done = threading.Event(), threading.Event()

    def read_until_done():
        with reading(backup_dir_of(old["archive"])):
            held.set()
            done.wait(300)
    reader = threading.Thread(target=read_until_done)
    reader.start()
    held.wait(10)
    try:
        result = play([task("backup_prune", "prune", backup_dir=ground["backups"], now="2030-01-01T00:00:00Z",
                            lock_timeout=1)])
    finally:
        done.set()
        reader.join()
    assert result.failed and "being read by a restore or verify" in result.result("prune")["msg"]
    assert os.path.exists(old["archive"])
