"""The scheduled backup's offsite copy, as an operator sets it up: a second application on the shared host, its
runner and monitoring roles applied from an inventory whose group_vars name the remote (the loopback sshd), then
`reddit-backup create` run as the timer runs it. The new backup is pushed, retention runs on the remote, the
metrics show the newest remote copy, and a push that fails fails the run and notifies."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import parse_time
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.metrics import parse
from tests.integration.runnerhost import (apphost, installed_from_inventory, run_on_a_terminal,  # noqa: F401
                                          wheelhouse)
from tests.sampleapp import seed_app
from tests.servers import backup_server  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
APP = "offsite"


def series(textfile: str, name: str, **labels):
    with open(textfile) as handle:
        return parse(handle.read()).get(("reddit_backup_" + name, tuple(sorted(dict(labels, app=APP).items()))))


def on_server(server, name: str) -> bool:
    return any(name in files for _root, _dirs, files in os.walk(server.folder))


def seed_old_backup_on_the_server(app, tmp_path, server) -> str:
    """A database backup made three days ago, already on the backup server (an earlier push)."""
    old = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "old"), type="database",
                                      now=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)))
    shutil.copytree(str(tmp_path / "old"), server.folder, dirs_exist_ok=True)
    return os.path.basename(old["archive"])


def test_the_scheduled_backup_is_pushed_pruned_there_and_measured(apphost, tmp_path, backup_server):  # noqa: F811
    app = tmp_path / "offsite-app"
    seed_app(str(app))
    old = seed_old_backup_on_the_server(app, tmp_path, backup_server)
    textfile = os.path.join(apphost.root, "var", "lib", "prometheus", "node-exporter", "reddit_backup_%s.prom" % APP)
    settings = {
        "reddit_backup_app_root": str(app), "reddit_backup_backup_dir": str(tmp_path / "backups"),
        "reddit_backup_remote_sync": True, "reddit_backup_remote": backup_server.remote,
        "reddit_backup_remote_ssh_key": backup_server.ssh_key,
        "reddit_backup_remote_known_hosts": backup_server.known_hosts,
        "reddit_backup_retention_days": {"full": 30, "incremental": 7, "config": 90, "database": 1},
        "runner_root": apphost.root, "runner_app_name": APP, "runner_user": "root", "runner_group": "root",
        "runner_scheduler": "systemd", "runner_wheelhouse": wheelhouse(),
        "monitoring_root": apphost.root, "monitoring_app_name": APP, "monitoring_app_root": str(app),
        "monitoring_user": "root", "monitoring_group": "root", "monitoring_notify": True,
        "monitoring_webhook_url": apphost.webhook.url("/hooks/offsite"),
    }
    with installed_from_inventory(tmp_path, settings, ["runner", "monitoring"]):
        made = apphost.run("--quiet", "--app", APP, "create", "--type", "database")
        assert made.returncode == 0, made.stdout + made.stderr
        assert made.stdout == "", "--quiet: nothing on success"
        new = [b for b in apphost.catalog_of(APP) if b["type"] == "database"][-1]
        assert on_server(backup_server, os.path.basename(new["archive"])), "the new backup was pushed"
        assert not on_server(backup_server, old), "retention ran on the remote: the 3-day-old database backup went"
        newest = series(textfile, "remote_last_success_timestamp_seconds")
        assert newest == int(parse_time(new["created"]).timestamp())
        assert series(textfile, "last_run_success", operation="backup", type="database") == 1

        # the server's host key no longer the one the operator trusts: the push fails, the run fails and notifies
        before = len(apphost.webhook.requests)
        with open(backup_server.known_hosts) as handle:
            trusted = handle.read()
        stranger = tmp_path / "stranger"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
        try:
            with open(backup_server.known_hosts, "w") as handle:
                handle.write(trusted.split()[0] + " " + " ".join(stranger.with_suffix(".pub").read_text().split()[:2])
                             + "\n")
            failed = apphost.run("--quiet", "--app", APP, "create", "--type", "database")
        finally:
            with open(backup_server.known_hosts, "w") as handle:
                handle.write(trusted)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "pushing to the remote copy %s failed" % backup_server.remote in failed.stderr
        event = apphost.webhook.wait_for(before + 1, timeout=15)[-1]
        assert event[0] == "/hooks/offsite" and event[2]["status"] == "failed"
        assert event[2]["operation"] == "backup" and "remote copy" in event[2]["message"]
        assert series(textfile, "last_run_success", operation="backup", type="database") == 0
        assert series(textfile, "remote_last_success_timestamp_seconds") == newest, "kept until a push says more"


def test_usage_errors_stay_out_of_the_metrics(apphost):  # noqa: F811
    """A typo'd type or a verify argument that names no backup: exit 2, and no series or failed run recorded."""
    before = apphost.metrics()
    typo = apphost.run("create", "--type", "differential")
    assert typo.returncode == 2 and "invalid choice: 'differential'" in typo.stderr
    missing = apphost.run("verify", "no-such-backup")
    assert missing.returncode == 2 and "no complete backup named no-such-backup" in missing.stderr
    nowhere = apphost.run("verify", "/nonexistent/backup.tar.zst")
    assert nowhere.returncode == 2 and "there is no file at /nonexistent/backup.tar.zst" in nowhere.stderr
    assert apphost.metrics() == before, "nothing was recorded"
    assert "differential" not in apphost.metrics() and "no-such-backup" not in apphost.metrics()


def test_sync_says_what_it_pushed_in_one_line_and_runs_on_a_terminal(apphost, tmp_path, backup_server):  # noqa: F811
    app = tmp_path / "synced-app"
    seed_app(str(app))
    backups = tmp_path / "backups"
    for backup_type in ("full", "database"):
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups), type=backup_type))
    settings = {
        "reddit_backup_app_root": str(app), "reddit_backup_backup_dir": str(backups),
        "reddit_backup_remote_sync": True, "reddit_backup_remote": backup_server.remote,
        "reddit_backup_remote_ssh_key": backup_server.ssh_key,
        "reddit_backup_remote_known_hosts": backup_server.known_hosts,
        "runner_root": apphost.root, "runner_app_name": "synced", "runner_user": "root", "runner_group": "root",
        "runner_scheduler": "none", "runner_wheelhouse": wheelhouse(),
    }
    with installed_from_inventory(tmp_path, settings, ["runner"]):
        synced = apphost.run("--app", "synced", "sync")  # no terminal: as a timer or AWX runs it
        assert synced.returncode == 0, synced.stdout + synced.stderr
        summary = synced.stdout.strip().splitlines()[-1]
        assert re.match(r"^reddit-backup: sync succeeded in [\d.]+ s: pushed 2 backups \([\d.]+ [KM]iB\) to %s, "
                        r"removed 0 there by the retention policy$" % re.escape(backup_server.remote), summary), \
            summary
        assert "\r" not in synced.stdout + synced.stderr, "no progress drawn without a terminal"
        quiet = apphost.run("--quiet", "--app", "synced", "sync", env={"JOURNAL_STREAM": "8:1"})
        assert quiet.returncode == 0 and quiet.stderr == ""
        assert re.match(r"^reddit-backup: sync succeeded in [\d.]+ s: pushed 0 backups \(0 B\) to ", quiet.stdout) \
            and quiet.stdout.count("\n") == 1, "under a timer: one line per run"

        create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups), type="config"))
        code, screen = run_on_a_terminal([apphost.command, "--app", "synced", "sync"])
        assert code == 0, screen[-3000:]
        assert "reddit-backup: sync succeeded in " in screen and ": pushed 1 backups (" in screen, screen[-3000:]
        assert "Traceback" not in screen
