"""The guide's Scenario 2 on localhost: the old server's encrypted full backup (carrying a wheelhouse) is pushed
to a real sshd on 127.0.0.1, the old app is gone, and devops.reddit_backup.disaster_recovery rebuilds it in a new
folder: pull, restore, venv rebuilt offline from the wheelhouse, /health from the restored app's own health server,
RTO and RPO lines. systemd is not on this machine (services off here; the molecule scenario runs them)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

from tests.integration.runner import REPO, run_playbook
from tests.integration.runnerhost import make_wheel
from tests.servers import backup_server, free_port, wait_for_port  # noqa: F401  (a fixture)


def test_disaster_recovery_on_a_new_server(backup_server, sample_app, tmp_path, play):  # noqa: F811
    identity = tmp_path / "age-identity.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    os.chmod(str(identity), 0o600)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True,
                               text=True).stdout.strip()
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    make_wheel(wheelhouse)
    (sample_app / "apps" / "collector" / "requirements.txt").write_text("demo-dependency==1.0\n")
    old_backups = tmp_path / "old-backups"
    made = play([
        {"name": "backup", "devops.reddit_backup.backup_create": {
            "app_root": str(sample_app), "backup_dir": str(old_backups), "encryption_recipients": [recipient],
            "wheelhouse": str(wheelhouse)}},
        {"name": "push", "devops.reddit_backup.backup_sync": dict(backup_dir=str(old_backups),
                                                                 **backup_server.options())},
    ])
    assert not made.failed, made.stderr
    snapshot_sha256 = made.result("backup")["databases"][0]["sha256"]
    rows = sqlite3.connect(str(sample_app / "data" / "reddit_sentiment.db")).execute(
        "SELECT count(*) FROM posts").fetchone()[0]
    shutil.rmtree(str(sample_app))  # the old server is gone
    shutil.rmtree(str(old_backups))

    new_root = tmp_path / "new-server" / "app"
    os.makedirs(str(tmp_path / "new-server" / "systemd-system"))  # as a new server's /etc/systemd/system is there
    port = free_port()
    options = {"reddit_backup_hosts": "localhost", "reddit_backup_app_root": str(new_root),
               "reddit_backup_backup_dir": str(tmp_path / "new-server" / "backups"),
               "reddit_backup_app_owner": "root", "reddit_backup_app_group": "root",
               "new_server_home": "/root", "new_server_shell": "/bin/bash",  # root as the app user, as it is
               "reddit_backup_manage_services": False, "reddit_backup_identity_file": str(identity),
               "reddit_backup_remote": backup_server.remote, "reddit_backup_remote_ssh_key": backup_server.ssh_key,
               "reddit_backup_remote_known_hosts": backup_server.known_hosts,
               "reddit_backup_health_check": False,
               # a new folder, not the old server's app root: a move on purpose; no runner on this test machine
               "reddit_backup_restore_to_other_root": True, "reddit_backup_dr_runner": False,
               # the restored unit files go to the test's own folder, never to this machine's /etc/systemd/system
               "reddit_backup_systemd_dir": str(tmp_path / "new-server" / "systemd-system")}
    args = []
    for key, value in options.items():
        args += ["-e", '{"%s": %s}' % (key, _json(value))]
    result = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "disaster_recovery.yml"), extra_args=args)
    assert not result.failed, result.stderr + str(result.data)[-3000:]
    assert result.result("Pull the backup from the backup server (checked against its .sha256 before it is "
                         "listed)")["transferred"]
    rto = result.result("Report the recovery time against the guide's objective")["msg"]
    rpo = result.result("Report the data-loss window")["msg"]
    assert rto.startswith("RTO complete server failure: ") and rto.endswith("met")
    assert rpo.startswith("RPO complete server failure: ") and rpo.endswith("met")
    summary = result.result("Say what the recovery brought back, and what it did not")["msg"]
    assert summary[2] == "venv: rebuilt offline from the backup's wheelhouse"
    assert "venv/: never in a backup" in summary[1]
    assert summary[3].startswith("schedules: NOT re-applied (reddit_backup_dr_runner is false)")

    # The data equals the old server's last backup, and the venv was rebuilt offline from the wheelhouse.
    restored_db = new_root / "data" / "reddit_sentiment.db"
    assert sqlite3.connect(str(restored_db)).execute("SELECT count(*) FROM posts").fetchone()[0] == rows
    assert hashlib.sha256(restored_db.read_bytes()).hexdigest() == snapshot_sha256
    check = subprocess.run([str(new_root / "venv" / "bin" / "python"), "-c",
                            "import demo_dependency; print(demo_dependency.VALUE)"], capture_output=True, text=True)
    assert check.stdout.strip() == "42", check.stderr

    # The restored app serves /health/database (its monitor service, started by hand here: no systemd).
    server = subprocess.Popen([sys.executable, str(new_root / "apps" / "collector" / "health_server.py"), "--db",
                               str(restored_db), "--port", str(port)], stdout=subprocess.PIPE)
    try:
        wait_for_port(port)
        import json  # pylint: disable=import-outside-toplevel
        import urllib.request  # pylint: disable=import-outside-toplevel
        with urllib.request.urlopen("http://127.0.0.1:%d/health/database" % port, timeout=10) as answer:
            health = json.loads(answer.read())
        assert health["status"] == "healthy" and health["posts"] == rows
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def _json(value) -> str:
    import json  # pylint: disable=import-outside-toplevel
    return json.dumps(value)
