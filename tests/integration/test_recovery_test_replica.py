"""The weekly recovery test (devops.reddit_backup.recovery_test) with a Litestream replica, run from an operator's
inventory: it restores the replica too, into its temporary folder (never over the live database), checks it, and
records how far behind it was; a replica the app user (who owns its folder) damaged fails the drill loudly."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.metrics import format_value
from tests.ansiblerun import failure
from tests.integration.inventory import operator_inventory
from tests.integration.litestreamhost import AS_APP_USER, AppHome, rows
from tests.integration.runner import REPO, TARGET_PYTHON, run_playbook

pytestmark = pytest.mark.skipif(TARGET_PYTHON != "/usr/bin/python3", reason="the app user runs /usr/bin/python3")
LAG_METRIC = "reddit_backup_recovery_test_replica_lag_seconds"


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """The app replicated by the litestream role to a local folder (the app user's, as the role makes it) while a
    writer committed for a few seconds; a full backup taken meanwhile."""
    home = AppHome()
    replicas = os.path.join(home.home, "replicas")  # root's, 0755
    os.mkdir(replicas, 0o755)
    settings = home.settings(litestream_replica_path=os.path.join(replicas, "lsapp"))
    applied = home.apply(tmp_path_factory.mktemp("apply"), settings)
    assert not applied.failed, failure(applied)
    home.start_writer()
    home.start_service()
    time.sleep(3)
    create_backup(BackupRequest(home.app, home.backups, type="full"))
    time.sleep(3)
    home.stop()
    yield home, settings, os.path.join(replicas, "lsapp")
    home.close()


def drill(tmp_path, home: AppHome, settings: dict, **extra):
    """recovery_test from the operator's inventory, its metrics written to a folder of the test's."""
    textfiles = tmp_path / "textfiles"
    drills = tmp_path / "drills"
    for folder in (textfiles, drills):
        folder.mkdir(exist_ok=True)
    chosen = dict(settings, reddit_backup_recovery_test_parent=str(drills), monitoring_textfile_dir=str(textfiles),
                  monitoring_app_name="lsapp", **extra)
    result = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "recovery_test.yml"),
                          inventory=operator_inventory(tmp_path, chosen))
    assert os.listdir(str(drills)) == [], "the drill left its temporary folder behind"
    metrics = textfiles / "reddit_backup_lsapp.prom"
    return result, metrics.read_text() if metrics.exists() else ""


def digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_the_drill_restores_the_replica_checks_it_and_records_its_lag(replicated, tmp_path):
    home, settings, _replica = replicated
    live = digest(home.database)
    committed = rows(home.database)
    result, metrics = drill(tmp_path, home, settings,
                            reddit_backup_replica=home.path("/etc/reddit-backup/lsapp/replica.json"))
    assert not result.failed, result.stderr + failure(result)
    assert digest(home.database) == live, "the drill touched the live database"
    restored = result.result("Restore the Litestream replica into it too, to its latest moment "
                             "(never over the live databases)")
    assert restored["source"] == "replica" and restored["safety_copies"] == []
    assert restored["restored"] and all("/drills/" in path for path in restored["restored"]), restored["restored"]
    lag = restored["replica_lag_seconds"]
    print("recovery test: replica restored to %s, %s s behind the last commit (%.3f)" % (
        restored["recovery_point"], lag, committed[-1][1]))
    assert 0 <= lag <= 2.0
    report = result.result("Report the drill")["msg"]
    assert report[-1] == ("replica: restored to %s, %s s behind the newest commit of the live database, integrity valid "
                          "(data/reddit_sentiment.db)" % (restored["recovery_point"], lag)), report
    kept = result.result("Keep the drill's result")["ansible_facts"]["reddit_backup_recovery_test"]
    assert kept["replica"]["lag_seconds"] == lag and kept["replica"]["recovery_point"] == restored["recovery_point"]
    assert 'reddit_backup_recovery_test_success{app="lsapp"} 1' in metrics, metrics
    assert '%s{app="lsapp"} %s' % (LAG_METRIC, format_value(lag)) in metrics, metrics


@pytest.mark.parametrize("attack", ["truncated", "symlink"])
def test_a_replica_the_app_user_damaged_fails_the_drill_loudly(replicated, tmp_path, attack):
    home, settings, replica = replicated
    secret = os.path.join(home.home, "root-secret")  # a file only root reads, that the attacker points at
    with open(secret, "w") as handle:
        handle.write("root's secret 0123456789\n" * 100)
    os.chmod(secret, 0o600)
    damaged = newest_files(replica)
    saved = os.path.join(home.home, "saved-" + attack)
    os.mkdir(saved)
    for position, path in enumerate(damaged):
        shutil.copy2(path, os.path.join(saved, str(position)))
        if attack == "truncated":
            subprocess.run(AS_APP_USER + ["truncate", "-s", str(os.path.getsize(path) // 2), path], check=True)
        else:  # a long target, so that Litestream's own size check (the link's length) does not catch it
            long_way = os.path.join(home.home, *["."] * 60, os.path.relpath(secret, home.home))
            subprocess.run(AS_APP_USER + ["ln", "-sfn", long_way, path], check=True)
    live = digest(home.database)
    try:
        result, metrics = drill(tmp_path, home, settings,
                                reddit_backup_replica=home.path("/etc/reddit-backup/lsapp/replica.json"))
    finally:
        for position, path in enumerate(damaged):
            os.unlink(path)
            shutil.copy2(os.path.join(saved, str(position)), path)
    assert result.failed
    message = result.result("Fail loudly")["msg"]
    print("%s replica: %s" % (attack, message))
    assert message.startswith("RECOVERY TEST FAILED: "), message
    if attack == "truncated":
        assert "litestream restore of" in message and "unexpected EOF" in message, message
    else:
        assert "which is a symlink, not a regular file: someone who can write the replica folder planted it" in message
    assert "The Litestream replica could not be restored and checked" in message, message
    assert "Traceback" not in message and "root's secret" not in json.dumps(result.data) + result.stderr
    assert digest(home.database) == live, "the drill touched the live database"
    assert 'reddit_backup_recovery_test_success{app="lsapp"} 0' in metrics, metrics
    assert LAG_METRIC not in metrics


def test_without_a_replica_the_drill_is_unchanged(replicated, tmp_path):
    home, settings, _replica = replicated
    chosen = {key: value for key, value in settings.items() if not key.startswith("litestream_")}
    assert not os.path.exists("/etc/reddit-backup/lsapp/replica.json")
    result, metrics = drill(tmp_path, home, chosen)
    assert not result.failed, result.stderr + failure(result)
    assert result.result("Restore the Litestream replica into it too, to its latest moment "
                         "(never over the live databases)").get("skipped")
    report = result.result("Report the drill")["msg"]
    assert report[0].startswith("recovery test passed: ") and report[1].startswith("verification: valid")
    assert report[-1] == "replica: none set up (/etc/reddit-backup/lsapp/replica.json does not exist)", report
    assert result.result("Keep the drill's result")["ansible_facts"]["reddit_backup_recovery_test"]["replica"] is None
    assert 'reddit_backup_recovery_test_success{app="lsapp"} 1' in metrics and LAG_METRIC not in metrics


def newest_files(replica: str) -> list:
    """The replica's files holding its newest transaction, at every level (what a restore to the latest reads)."""
    files = [os.path.join(where, name) for where, _dirs, names in os.walk(replica) for name in names
             if name.endswith(".ltx")]
    newest = max(os.path.basename(path).split("-")[1] for path in files)
    return [path for path in files if os.path.basename(path).split("-")[1] == newest]


def test_list_and_backup_info_show_the_replica_window_and_an_unreachable_one(replicated, tmp_path):
    """``reddit-backup list`` (from the runner's settings) and backup_info (from a playbook of the operator's
    inventory) show the window beside the archives; a replica on a server that does not answer is said to be
    unreachable, and the archives are listed all the same."""
    home, _settings, _replica = replicated
    settings_file = home.path("/etc/reddit-backup/lsapp/replica.json")
    unreachable = unreachable_replica(home, tmp_path)
    for replica, reachable in ((settings_file, True), (unreachable, False)):
        listing, document = reddit_backup_list(home, tmp_path, replica)
        assert listing.returncode == 0, listing.stderr
        assert re.search(r"^full\s+backup_\d{8}_\d{6}", listing.stdout, re.M), listing.stdout
        info = run_playbook(tmp_path, str(info_playbook(tmp_path)), inventory=operator_inventory(
            tmp_path, {"reddit_backup_backup_dir": home.backups, "reddit_backup_replica": replica}))
        assert not info.failed, failure(info)
        window = info.result("List the backups and the replica's window")["replica"]
        assert len(info.result("List the backups and the replica's window")["backups"]) == 1
        assert dict(document["replica"], error=None) == dict(window, error=None), (document, window)
        assert window["reachable"] is reachable, window
        said = [line for line in listing.stdout.splitlines() if line.startswith("replica: ")]
        print("\n".join(said))
        if reachable:
            database = window["databases"]["data/reddit_sentiment.db"]
            committed = rows(home.database)
            # Litestream started after the writer's first rows: its first base, the window's opening, came after.
            assert stamp(committed[0][1]) <= database["oldest"] < database["newest"], database
            assert stamp(committed[-1][1] - 2) <= database["newest"] <= stamp(committed[-1][1]), database
            assert said == ["replica: data/reddit_sentiment.db: any second from %s to %s (Litestream, %d files)" % (
                database["oldest"].replace("T", " ").rstrip("Z"), database["newest"].replace("T", " ").rstrip("Z"),
                database["files"])], said
        else:
            assert window["error"].startswith("the replica is unreachable: litestream ltx of ") and window["databases"] == {}
            assert "connection refused" in window["error"], window
            assert len(said) == 1 and said[0].startswith("replica: UNREACHABLE (the replica is unreachable: litestream "
                                                         "ltx of "), said
            assert said[0].endswith("; the archives above are listed all the same"), said


def stamp(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def unreachable_replica(home: AppHome, tmp_path) -> str:
    """Replica settings of root's whose SFTP replica is a port of 127.0.0.1 nobody listens on (a server down)."""
    folder = tmp_path / "unreachable"
    folder.mkdir()
    with socket.socket() as probe:  # a free port, closed again
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = folder / "litestream.yml"
    config.write_text("dbs:\n  - path: %s\n    replica:\n      type: sftp\n      host: 127.0.0.1:%d\n"
                      "      user: root\n      path: /nowhere\n" % (home.database, port))
    installed = json.loads(open(home.path("/etc/reddit-backup/lsapp/replica.json")).read())
    settings = folder / "replica.json"
    settings.write_text(json.dumps(dict(installed, config=str(config), credentials={})))
    for path in (config, settings):
        os.chmod(str(path), 0o600)
    return str(settings)


def reddit_backup_list(home: AppHome, tmp_path, replica: str) -> tuple:
    """``reddit-backup list`` then ``list --json``, with the runner's settings of the app (root's user: no drop)."""
    config = tmp_path / "etc-reddit-backup"
    app = config / "lsapp"
    app.mkdir(parents=True, exist_ok=True)
    (app / "runner.json").write_text(json.dumps({
        "app_root": home.app, "backup_dir": home.backups, "venv": "/nonexistent", "state_dir": str(tmp_path),
        "collections_path": os.path.join(REPO, "collections"), "ansible_cfg": "/nonexistent",
        "log_file": str(tmp_path / "backup.log"), "user": "root"}))
    (app / "settings.json").write_text(json.dumps({"reddit_backup_replica": replica}))
    command = [sys.executable, "-c", "import sys; from ansible_collections.devops.reddit_backup.plugins.module_utils."
               "_command.cli import main; sys.exit(main(sys.argv[1:]))", "--config-dir", str(config), "--app", "lsapp"]
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "collections"))
    listing = subprocess.run(command + ["list"], capture_output=True, text=True, env=env, timeout=120)
    listed = subprocess.run(command + ["list", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    return listing, json.loads(listed.stdout)


def info_playbook(tmp_path):
    playbook = tmp_path / "info.yml"
    playbook.write_text(yaml.safe_dump([{"name": "The catalog", "hosts": "app_servers", "gather_facts": False,
                                         "tasks": [{"name": "List the backups and the replica's window",
                                                    "devops.reddit_backup.backup_info": {
                                                        "backup_dir": "{{ reddit_backup_backup_dir }}",
                                                        "replica": "{{ reddit_backup_replica }}"}}]}]))
    return playbook
