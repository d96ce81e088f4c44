"""The whole service at a moment: which archive the files come from, the requests it refuses before anything runs,
and how the replica's databases are staged over the archive's and reported."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.restore import ReplicaRestoreRequest
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.whole import (
    _ReplicaOverlay, files_archive, restore_whole_service)
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest
from tests.sampleapp import seed_app

DATABASE = "data/reddit_sentiment.db"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """A sample app with full backups made at 10:00 and 12:00, and an incremental one at 13:00."""
    base = tmp_path_factory.mktemp("whole")
    app, backups = str(base / "app"), str(base / "backups")
    seed_app(app, rows=20)
    made = {}
    for kind, when in (("full", "2026-01-02T10:00:00Z"), ("full", "2026-01-02T12:00:00Z"),
                       ("incremental", "2026-01-02T13:00:00Z")):
        made[when] = create_backup(BackupRequest(app, backups, type=kind, now=at(when)))["archive"]
    return {"app": app, "backups": backups, "made": made, "base": base}


def test_the_files_come_from_the_newest_archive_at_or_before_the_moment(archives):
    made = archives["made"]
    assert files_archive(archives["backups"], "2026-01-02T12:00:00Z") == made["2026-01-02T12:00:00Z"]
    assert files_archive(archives["backups"], "2026-01-02T11:59:59Z") == made["2026-01-02T10:00:00Z"]
    assert files_archive(archives["backups"], "2026-01-02T13:30:00Z") == made["2026-01-02T13:00:00Z"]
    assert files_archive(archives["backups"]) == made["2026-01-02T13:00:00Z"]


def test_a_moment_before_every_archive_is_a_clear_error(archives):
    with pytest.raises(BackupError) as raised:
        files_archive(archives["backups"], "2026-01-02T09:59:59Z")
    message = str(raised.value)
    assert "made at or before 2026-01-02T09:59:59Z" in message and archives["backups"] in message
    assert "No archive holds the service's files as they were at 2026-01-02T09:59:59Z: nothing was changed" in message
    assert "restore the databases alone from the replica" in message


def replica(archives, **changes) -> ReplicaRestoreRequest:
    """A replica whose binary must never run: each of these requests is refused before it would."""
    config = archives["base"] / "litestream.yml"
    config.write_text("dbs: []\n")
    options = dict(app_root=archives["app"], databases=[DATABASE], replica_config=str(config),
                   litestream_binary="/bin/false")
    options.update(changes)
    return ReplicaRestoreRequest(**options)


def test_requests_refused_before_anything_runs(archives):
    app = archives["app"]
    before = sorted(os.listdir(app))
    now = at("2026-01-03T00:00:00Z")
    cases = [
        (dict(scope="database"), "restores scope full"),
        (dict(archive=archives["made"]["2026-01-02T10:00:00Z"], backup_dir=None), "do not name an archive"),
        (dict(name="anything"), "do not name an archive"),
        (dict(before="2026-01-04T00:00:00Z"), "is in the future"),
        (dict(before="2026-01-01T00:00:00Z"), "No archive holds the service's files"),
    ]
    for changes, expected in cases:
        options = dict(dest=app, backup_dir=archives["backups"], scope="full", now=now)
        options.update(changes)
        with pytest.raises(BackupError, match=expected):
            restore_whole_service(RestoreRequest(**options), replica(archives))
    assert sorted(os.listdir(app)) == before and not [name for name in os.listdir(os.path.dirname(app))
                                                       if ".pre-restore-" in name]


def test_the_replica_database_replaces_the_staged_one_and_one_the_archive_lacks_gets_its_folders(tmp_path):
    tree = tmp_path / "tree"
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "app.db").write_bytes(b"archived")
    restored = tmp_path / "restored.db"
    restored.write_bytes(b"from the replica")
    overlay = _ReplicaOverlay(None, "/srv/app", [], None, "full")
    records = overlay._stage("data/app.db", str(restored), {"path": "data/app.db", "mode": "0640"}, str(tree))
    assert (tree / "data" / "app.db").read_bytes() == b"from the replica" and not restored.exists()
    assert records["data/app.db"]["mode"] == "0640" and records["data/app.db"]["size"] == 16
    assert oct(os.stat(str(tree / "data" / "app.db")).st_mode & 0o777) == "0o640"

    other = tmp_path / "other.db"
    other.write_bytes(b"new")
    records = overlay._stage("state/sub/new.db", str(other), None, str(tree))
    assert sorted(records) == ["state", "state/sub", "state/sub/new.db"]
    assert records["state"] == {"path": "state", "type": "dir", "mode": "0755"}
    assert (tree / "state" / "sub" / "new.db").read_bytes() == b"new"


def test_the_report_says_what_each_part_reached_and_from_where():
    overlay = _ReplicaOverlay(None, "/srv/app", [DATABASE], at("2026-01-02T12:30:00Z"), "full")
    overlay.files_point = "2026-01-02T12:00:00Z"
    overlay.points = {DATABASE: {"path": DATABASE, "txid": "00000000000000a1", "lag_seconds": 3.0,
                                 "recovery_point": "2026-01-02T12:29:59Z"}}
    report = overlay.report({"archive": "/b/daily/full.tar.zst"})
    assert report["source"] == "archive+replica" and report["before"] == "2026-01-02T12:30:00Z"
    assert report["recovery_point"] == "2026-01-02T12:29:59Z" and report["replica_lag_seconds"] == 3.0
    assert report["reached"] == ("files at 2026-01-02T12:00:00Z (archive); data/reddit_sentiment.db at "
                                 "2026-01-02T12:29:59Z (replica)")
    assert json.loads(json.dumps(report["recovery_points"]))[1] == {
        "part": DATABASE, "source": "replica", "from": "litestream replica", "txid": "00000000000000a1",
        "recovery_point": "2026-01-02T12:29:59Z"}
