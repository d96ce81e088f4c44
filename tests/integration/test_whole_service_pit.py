"""The whole service at a chosen second (devops.reddit_backup.restore_point_in_time with a Litestream replica), from
an operator's inventory: real Litestream replicating a real database under a writer committing every 100 ms, full
archives taken before and after the moment, a configuration change after it. The restore brings back the files of
the newest archive at or before the moment and the database as the replica held it then, in one restore with one
safety copy, and says the point each part reached; a replica that cannot reach the moment, a damaged replica and a
link the app user planted in the replica folder each fail with nothing live changed."""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import sqlite3
import subprocess
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.ansiblerun import failure
from tests.integration.inventory import operator_inventory
from tests.integration.litestreamhost import AS_APP_USER, AppHome, rows
from tests.integration.runner import REPO, TARGET_PYTHON, run_playbook

pytestmark = pytest.mark.skipif(TARGET_PYTHON != "/usr/bin/python3", reason="the app user runs /usr/bin/python3")
DATABASE = "data/reddit_sentiment.db"
CONFIG = "config/production.env"
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def epoch(stamp: str) -> float:
    return datetime.datetime.strptime(stamp, STAMP).replace(tzinfo=datetime.timezone.utc).timestamp()


def write_config(home: AppHome, text: str) -> None:
    path = os.path.join(home.app, CONFIG)
    with open(path, "a") as handle:
        handle.write(text)


def tree(root: str) -> dict:
    """Every entry under ``root``: its type and, for a file, its sha256 (what "nothing changed" compares)."""
    found = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                found[os.path.relpath(path, root)] = "link" if os.path.islink(path) else "dir"
                continue
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    """An archive before Litestream ran (``early``: the replica holds nothing then), replication under the writer,
    a full archive before the chosen second ``moment`` (config version 1), config version 2 and a full archive
    after it; the writer's commit times (one per row, in id order)."""
    home = AppHome()
    replicas = os.path.join(home.home, "replicas")  # root's, 0755; the role makes lsapp/ in it the app user's
    os.mkdir(replicas, 0o755)
    settings = home.settings(litestream_replica_path=os.path.join(replicas, "lsapp"))
    applied = home.apply(tmp_path_factory.mktemp("apply"), settings)
    assert not applied.failed, failure(applied)
    write_config(home, "\nVERSION=0\n")
    create_backup(BackupRequest(home.app, home.backups, type="full"))
    time.sleep(1.5)
    early = datetime.datetime.now(datetime.timezone.utc).strftime(STAMP)
    time.sleep(1.5)
    writer = home.start_writer()
    home.start_service()
    replica = os.path.join(replicas, "lsapp")
    deadline = time.time() + 60
    while len(glob.glob(os.path.join(replica, "**", "*.ltx"), recursive=True)) < 3 and time.time() < deadline:
        time.sleep(0.2)  # Litestream's first syncs: the moment must lie inside the replica's window
    time.sleep(2)
    write_config(home, "VERSION=1\n")
    before = create_backup(BackupRequest(home.app, home.backups, type="full"))
    time.sleep(2.2)
    moment = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    config_at_moment = open(os.path.join(home.app, CONFIG)).read()
    time.sleep(2.2)
    write_config(home, "VERSION=2\n")
    after = create_backup(BackupRequest(home.app, home.backups, type="full"))
    time.sleep(2)
    writer.kill()
    commits = [float(line.split()[0]) for line in writer.communicate()[0].splitlines() if line.strip()]
    time.sleep(2.5)  # Litestream's last sync
    home.stop()  # the restore playbook stops the service; systemd is not running here
    yield {"home": home, "settings": settings, "early": early, "moment": moment, "before": before, "after": after,
           "config": config_at_moment, "commits": commits, "replica": replica}
    home.close()


def restore_to(tmp_path, timeline: dict, moment: str):
    home = timeline["home"]
    units = tmp_path / "units"
    units.mkdir(exist_ok=True)
    chosen = dict(timeline["settings"], reddit_backup_replica=home.path("/etc/reddit-backup/lsapp/replica.json"),
                  reddit_backup_restore_before=moment, reddit_backup_manage_services=False,
                  reddit_backup_health_check=False, reddit_backup_systemd_dir=str(units))
    return run_playbook(tmp_path, os.path.join(REPO, "playbooks", "restore_point_in_time.yml"),
                        inventory=operator_inventory(tmp_path, chosen))


def message(result) -> str:
    return result.stderr + json.dumps(result.data)[-4000:]


def test_a_moment_the_replica_cannot_reach_changes_nothing(timeline, tmp_path):
    home = timeline["home"]
    live = tree(home.app)
    result = restore_to(tmp_path, timeline, timeline["early"])
    assert result.failed
    assert "holds nothing at or before %s" % timeline["early"] in message(result), message(result)
    assert "Nothing was stopped or changed" in message(result)
    assert tree(home.app) == live and not glob.glob(home.app + ".pre-restore-*")


def test_a_damaged_replica_changes_nothing(timeline, tmp_path):
    home = timeline["home"]
    live = tree(home.app)
    files = glob.glob(os.path.join(timeline["replica"], "**", "*.ltx"), recursive=True)
    originals = {path: (open(path, "rb").read(), os.stat(path)) for path in files}
    try:
        for path, (original, _info) in originals.items():  # whichever files the restore reads, each is damaged
            with open(path, "r+b") as handle:
                handle.seek(len(original) // 2)
                handle.write(b"\xff" * 64)
        result = restore_to(tmp_path, timeline, timeline["moment"].strftime(STAMP))
    finally:
        for path, (original, info) in originals.items():
            with open(path, "wb") as handle:
                handle.write(original)
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # a file replica's times are its files' mtimes
    assert result.failed and "litestream" in message(result).lower(), message(result)
    assert tree(home.app) == live and not glob.glob(home.app + ".pre-restore-*")


def test_a_link_the_app_user_planted_in_the_replica_folder_is_refused(timeline, tmp_path):
    """The app user owns the local replica folder; root's Litestream would follow a link it planted there."""
    home = timeline["home"]
    live = tree(home.app)
    planted = os.path.join(timeline["replica"], "planted")
    subprocess.run(AS_APP_USER + ["/usr/bin/python3", "-c", "import os, sys; os.symlink('/etc/shadow', sys.argv[1])",
                                  planted], check=True)
    try:
        result = restore_to(tmp_path, timeline, timeline["moment"].strftime(STAMP))
    finally:
        os.unlink(planted)
    assert result.failed and "which is a symlink, not a regular file" in message(result), message(result)
    assert tree(home.app) == live and not glob.glob(home.app + ".pre-restore-*")


def test_the_whole_service_at_the_moment(timeline, tmp_path):
    home = timeline["home"]
    moment = timeline["moment"]
    result = restore_to(tmp_path, timeline, moment.strftime(STAMP))
    assert not result.failed, message(result)
    restored = [hosts["localhost"] for play in result.data["plays"] for item in play["tasks"]
                if item["task"]["name"].startswith("Restore the whole service at the moment")
                and "localhost" in (hosts := item["hosts"])]
    assert restored and restored[-1].get("changed"), message(result)
    restored = restored[-1]

    # The files: the newest archive at or before the moment (config version 1), not the one after.
    assert restored["source"] == "archive+replica" and restored["archive"] == timeline["before"]["archive"]
    assert open(os.path.join(home.app, CONFIG)).read() == timeline["config"]
    files, database = restored["recovery_points"]
    assert files == {"part": "files", "source": "archive", "from": timeline["before"]["archive"],
                     "recovery_point": restored["archive_created"]}
    assert epoch(restored["archive_created"]) <= moment.timestamp()

    # The database: exactly the rows committed up to the recovery point reached, none after the moment.
    assert database["part"] == DATABASE and database["source"] == "replica"
    point = epoch(database["recovery_point"])
    assert point <= moment.timestamp() and moment.timestamp() - point <= 2.0, database
    found = rows(home.database)
    ids = [row_id for row_id, _at in found]
    assert ids == list(range(1, len(ids) + 1)), "rows are missing in the middle"
    committed_by_point = [position + 1 for position, done in enumerate(timeline["commits"]) if done <= point]
    assert set(committed_by_point) <= set(ids), "a row committed before the recovery point is missing"
    assert all(started < moment.timestamp() for _id, started in found), "a row begun after the moment came back"
    # Litestream gives its syncs' times to the second: the sync reached lies within the second reported.
    assert all(timeline["commits"][row_id - 1] < point + 1.0 for row_id in ids), "a row of a later sync came back"
    print("moment %s: recovery point %s, %d rows restored, last begun at %.3f, %d committed by the point" % (
        moment.strftime(STAMP), database["recovery_point"], len(ids), found[-1][1], len(committed_by_point)))

    connection = sqlite3.connect("file:%s?mode=ro" % home.database, uri=True)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()
    assert os.stat(home.database).st_uid == 65534, "the database is the app user's again"

    # One safety copy of the app root, holding what was live (config version 2).
    safety = restored["safety_copies"]
    assert len(safety) == 1 and safety[0].startswith(home.app + ".pre-restore-")
    assert "VERSION=2" in open(os.path.join(safety[0], CONFIG)).read()

    line = [item["hosts"]["localhost"]["msg"] for play in result.data["plays"] for item in play["tasks"]
            if item["task"]["name"].startswith("Report the recovery time against")][-1]
    assert line.startswith("RTO point-in-time recovery: "), line
    assert ("recovery point reached: files at %s (archive); %s at %s (replica)"
            % (restored["archive_created"], DATABASE, database["recovery_point"])) in line, line
