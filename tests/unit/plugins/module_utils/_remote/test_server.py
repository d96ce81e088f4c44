"""The backup server's job: retention and freshness over a client's folder (from the sidecars alone), the numbers
root takes back, the metrics it writes. The role's run, as each client's user through sshd, is in
tests/integration/test_backup_server.py."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._remote import server as _server
from tests.unit.plugins.module_utils.builders import fake_backup

T0 = datetime(2025, 5, 1, 2, 0, 0, tzinfo=timezone.utc)


def test_check_client_prunes_with_the_policy_and_reports_the_newest_of_each_type(tmp_path):
    folder = tmp_path / "backups"
    for days in (0, 1, 2):
        fake_backup(folder, "full", T0 + timedelta(days=days))
    fake_backup(folder, "config", T0 + timedelta(days=1, hours=3))
    report = _server.check_client(str(folder), None, {"full": {"keep_last": 1}}, now=T0 + timedelta(days=3))
    stem = "backup_20250503_020000.tar.zst"
    assert sorted(os.listdir(folder / "daily")) == [stem, stem + ".meta.json", stem + ".sha256"]
    assert report["deleted"] == 2 and report["pruned_bytes"] == 14
    assert report["newest"] == {"full": (T0 + timedelta(days=2)).timestamp(),
                                "config": (T0 + timedelta(days=1, hours=3)).timestamp(),
                                "incremental": 0.0, "database": 0.0}
    assert "replica_newest" not in report


def test_check_client_keeps_a_push_under_way(tmp_path):
    """rsync lands an archive's sidecars before the archive: the server's retention leaves them."""
    folder = tmp_path / "backups"
    fake_backup(folder, "full", T0)
    arriving = fake_backup(folder, "full", T0 + timedelta(days=1))
    os.unlink(arriving)
    _server.check_client(str(folder), None, None, now=T0 + timedelta(days=1))
    assert os.path.exists(arriving + ".meta.json") and os.path.exists(arriving + ".sha256")


def test_the_replica_age_is_its_newest_regular_file_never_a_link(tmp_path):
    replica = tmp_path / "replica"
    (replica / "generations" / "a").mkdir(parents=True)
    (replica / "generations" / "a" / "00000001.wal").write_text("x")
    os.utime(replica / "generations" / "a" / "00000001.wal", (1000, 1000))
    os.symlink("/etc/hostname", replica / "newer-link")
    os.symlink("/", replica / "generations" / "root-link")
    report = _server.check_client(str(tmp_path / "backups"), str(replica), None, now=T0)
    assert report["replica_newest"] == 1000.0


def test_root_takes_numbers_only_and_a_failed_check_vouches_for_nothing():
    kept = _server._numbers_only({"newest": {"full": 5, "evil\"type": 1}, "pruned_bytes": 3, "extra": "x",
                                  "replica_newest": 7})
    assert kept == {"newest": {"full": 5.0, "incremental": 0.0, "config": 0.0, "database": 0.0},
                    "pruned_bytes": 3.0, "replica_newest": 7.0}
    text = _server.render(_server.client_samples("app1", None, 100.0))
    assert 'reddit_backup_server_check_success{host="app1"} 0.0' in text
    assert 'reddit_backup_server_newest_backup_timestamp_seconds{host="app1",type="full"} 0.0' in text
    assert "# TYPE reddit_backup_server_check_success gauge" in text
    assert "replica" not in text


def test_run_names_what_is_wrong_with_the_client_list(tmp_path, capsys):
    config = tmp_path / "clients.json"
    config.write_text("[]")
    assert _server.main(["run", str(config)]) == 1
    assert "has no list of clients: run the backup_server role again" in capsys.readouterr().err
    assert _server.main(["run", str(tmp_path / "missing.json")]) == 1
    assert "cannot be read" in capsys.readouterr().err
    assert _server.main(["client", str(tmp_path), "-", "{not json"]) == 1
    assert "not JSON" in capsys.readouterr().err
    assert _server.main(["nonsense"]) == 2


def test_run_with_no_clients_writes_an_empty_metrics_file(tmp_path):
    config = tmp_path / "clients.json"
    textfile = tmp_path / "server.prom"
    config.write_text(json.dumps({"clients": [], "textfile": str(textfile)}))
    assert _server.run(str(config)) == 0
    assert textfile.read_text() == "\n" and oct(os.stat(textfile).st_mode & 0o777) == "0o644"
