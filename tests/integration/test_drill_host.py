"""The drill_host role through the operator's path: the settings in an inventory's group_vars for the backup
server, the role applied to it (venv and collection installed offline by the runner's install tasks, units
written), then each drill's unit command run as its timer would, against an encrypted backup copy whose identity
only the drill host holds. Each drill's result lands in the metrics the alert rules read."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess

import pytest
import yaml

from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring import metrics as _metrics
from tests.integration.runner import run_playbook, run_tasks
from tests.integration.runnerhost import wheelhouse, write_play
from tests.sampleapp import seed_app
from tests.servers import backup_server  # noqa: F401  (a fixture)

APP = "demo"
JOBS = {"verify": "verify", "recovery_test": "recovery-test", "dr_simulation": "dr-simulation",
        "rto_report": "rto-report"}


class DrillHost:
    def __init__(self, base, app: str = APP, root: str = None) -> None:
        self.base = str(base)
        self.app = app
        self.root = root or os.path.join(self.base, "root")
        self.backup_dir = os.path.join(self.base, "remote", app)
        self.identity = os.path.join(self.base, "keys", "age-identity.txt")
        self.inventory = os.path.join(self.base, "inventory")
        self.units = os.path.join(self.root, "etc", "systemd", "system")
        self.textfile = os.path.join(self.root, "var", "lib", "prometheus", "node-exporter",
                                     "reddit_backup_%s-drill.prom" % app)
        self.report = os.path.join(self.root, "var", "lib", "reddit-backup-drill", app + "-drill", "rto-report.txt")

    def write_inventory(self, **extra) -> None:
        """What an operator writes: the backup server in its group, the drill settings in its group_vars."""
        os.makedirs(os.path.join(self.inventory, "group_vars"), exist_ok=True)
        with open(os.path.join(self.inventory, "hosts.yml"), "w") as handle:
            yaml.safe_dump({"all": {"children": {"backup_servers": {"hosts": {"localhost": {
                "ansible_connection": "local"}}}}}}, handle)
        settings = {
            "reddit_backup_app_name": self.app,
            "reddit_backup_app_root": "/srv/" + APP,
            "drill_host_backup_dir": self.backup_dir,
            "drill_host_identity_file": self.identity,
            "drill_host_root": self.root,
            "drill_host_rto_target_seconds": 600,
            "runner_wheelhouse": wheelhouse(),
        }
        settings.update(extra)
        with open(os.path.join(self.inventory, "group_vars", "backup_servers.yml"), "w") as handle:
            yaml.safe_dump(settings, handle)

    def apply(self, tmp_path):
        playbook = write_play(tmp_path, "drill.yml", [{"name": "the drill host", "hosts": "backup_servers",
                                                        "gather_facts": False,
                                                        "roles": [{"role": "devops.reddit_backup.drill_host"}]}])
        return run_playbook(tmp_path, playbook, inventory=self.inventory, timeout=900)

    def exec_start(self, job: str) -> list:
        with open(os.path.join(self.units, "reddit-backup-%s-drill-%s.service" % (self.app, job))) as handle:
            service = handle.read()
        assert "User=root\n" in service
        return shlex.split(re.search(r"^ExecStart=(.*)$", service, re.M).group(1))

    def run_job(self, job: str) -> subprocess.CompletedProcess:
        """The unit's command as systemd runs it: no ANSIBLE_* and no pytest in the environment."""
        clean = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "PYTEST"))}
        return subprocess.run(self.exec_start(job), capture_output=True, text=True, env=clean, timeout=600)

    def metric(self, name: str, **labels):
        with open(self.textfile) as handle:
            series = _metrics.parse(handle.read())
        labels = dict({"app": self.app, "backup_role": "drill"}, **labels)
        return series.get(("reddit_backup_" + name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def drillhost(tmp_path_factory):
    """An encrypted backup copy (made on the "app host" with the public key only) and a drill host holding the
    identity, with the role applied."""
    host = DrillHost(tmp_path_factory.mktemp("drillhost"))
    os.makedirs(os.path.dirname(host.identity))
    subprocess.run(["age-keygen", "-o", host.identity], check=True, capture_output=True)
    os.chmod(host.identity, 0o600)
    recipient = subprocess.run(["age-keygen", "-y", host.identity], check=True, capture_output=True,
                               text=True).stdout.strip()
    app_root = os.path.join(host.base, "app")
    seed_app(app_root, rows=300)
    host.recipient = recipient
    made = run_tasks(tmp_path_factory.mktemp("make-backup"), [
        {"name": "encrypted full backup", "devops.reddit_backup.backup_create": {
            "app_root": app_root, "backup_dir": host.backup_dir, "type": "full",
            "encryption_recipients": [recipient]}},
        {"name": "encrypted database backup", "devops.reddit_backup.backup_create": {
            "app_root": app_root, "backup_dir": host.backup_dir, "type": "database",
            "encryption_recipients": [recipient]}},
    ])
    assert not made.failed, made.data
    host.write_inventory()
    host.applied = host.apply(tmp_path_factory.mktemp("apply"))
    assert not host.applied.failed, (str(host.applied.data)[-5000:], host.applied.stderr[-3000:])
    return host


def test_the_role_writes_a_unit_per_drill_and_declares_them_in_the_metrics(drillhost):
    for job, command in JOBS.items():
        timer = os.path.join(drillhost.units, "reddit-backup-%s-drill-%s.timer" % (APP, job))
        assert os.path.exists(timer), job
        assert drillhost.exec_start(job)[-1] == command
        assert drillhost.exec_start(job)[1:3] == ["--app", APP + "-drill"]
    with open(os.path.join(drillhost.units, "reddit-backup-%s-drill-verify.timer" % APP)) as handle:
        assert "RandomizedDelaySec=15min" in handle.read()
    assert drillhost.metric("schedule_max_age_seconds", operation="verify") == 93600
    assert drillhost.metric("schedule_max_age_seconds", operation="rto_report") == 8208000
    assert drillhost.metric("schedule_since_timestamp_seconds", operation="dr_simulation") > 0
    assert drillhost.metric("last_run_success", operation="verify", type="all") is None


def test_a_second_application_changes_nothing(drillhost, tmp_path):
    again = drillhost.apply(tmp_path)
    assert not again.failed
    changed = [task["task"]["name"] for play in again.data["plays"] for task in play["tasks"]
               if task["hosts"].get("localhost", {}).get("changed")]
    assert changed == []


def test_the_daily_verification_decrypts_with_the_drill_hosts_identity(drillhost):
    done = drillhost.run_job("verify")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert drillhost.metric("last_run_success", operation="verify", type="all") == 1
    # the comprehensive verdicts are recorded in the copy's catalog, so verification_success is per type
    assert drillhost.metric("verification_success", type="full") == 1
    assert drillhost.metric("verification_success", type="database") == 1


def test_the_weekly_recovery_test_runs_on_the_drill_host(drillhost):
    done = drillhost.run_job("recovery_test")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert drillhost.metric("recovery_test_success") == 1
    assert drillhost.metric("recovery_test_restore_seconds") > 0
    assert os.listdir(os.path.join(drillhost.root, "var", "lib", "reddit-backup-drill", "scratch")) == []


def test_the_monthly_simulation_restores_checks_and_records_the_rto(drillhost):
    done = drillhost.run_job("dr_simulation")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "RTO dr_simulation:" in done.stdout and "target 600.0 s: met" in done.stdout
    assert drillhost.metric("last_run_success", operation="dr_simulation", type="all") == 1
    assert 0 < drillhost.metric("last_run_rto_seconds", operation="dr_simulation", type="all") < 600
    assert drillhost.metric("last_run_rto_target_seconds", operation="dr_simulation", type="all") == 600
    assert os.listdir(os.path.join(drillhost.root, "var", "lib", "reddit-backup-drill", "scratch")) == []


def test_the_quarterly_report_reads_the_recorded_drills(drillhost):
    done = drillhost.run_job("rto_report")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    with open(drillhost.report) as handle:
        report = handle.read()
    assert "RTO MET" in report
    assert "dr_simulation  drills 1, failed 0" in report and "recovery_test  drills 1, failed 0" in report
    assert stat.S_IMODE(os.stat(drillhost.report).st_mode) == 0o644
    assert drillhost.metric("last_run_success", operation="rto_report", type="all") == 1


def test_a_wrong_identity_fails_the_drills_and_the_metrics_say_so(drillhost, tmp_path):
    saved = drillhost.identity + ".saved"
    os.rename(drillhost.identity, saved)
    try:
        subprocess.run(["age-keygen", "-o", drillhost.identity], check=True, capture_output=True)
        os.chmod(drillhost.identity, 0o600)
        verify = drillhost.run_job("verify")
        assert verify.returncode != 0
        assert "VERIFICATION FAILED" in verify.stdout
        assert drillhost.metric("last_run_success", operation="verify", type="all") == 0
        simulation = drillhost.run_job("dr_simulation")
        assert simulation.returncode != 0 and "DISASTER-RECOVERY SIMULATION FAILED" in simulation.stdout
        assert drillhost.metric("last_run_success", operation="dr_simulation", type="all") == 0
        assert os.listdir(os.path.join(drillhost.root, "var", "lib", "reddit-backup-drill", "scratch")) == []
    finally:
        os.replace(saved, drillhost.identity)
    assert drillhost.run_job("verify").returncode == 0
    assert drillhost.metric("last_run_success", operation="verify", type="all") == 1


def test_an_identity_others_can_read_is_refused_when_the_role_is_applied(drillhost, tmp_path):
    os.chmod(drillhost.identity, 0o644)
    try:
        refused = drillhost.apply(tmp_path)
    finally:
        os.chmod(drillhost.identity, 0o600)
    assert refused.failed
    assert "must be a regular file owned by root with mode 0600" in str(refused.data)


def fresh_drill_host(tmp_path, identity_mode: int = None, identity_owner: str = None) -> DrillHost:
    """A drill host the role was never applied to, with the identity missing or set as given."""
    host = DrillHost(tmp_path)
    if identity_mode is not None:
        os.makedirs(os.path.dirname(host.identity))
        subprocess.run(["age-keygen", "-o", host.identity], check=True, capture_output=True)
        os.chmod(host.identity, identity_mode)
        if identity_owner:
            subprocess.run(["chown", identity_owner, host.identity], check=True)
    host.write_inventory()
    return host


@pytest.mark.parametrize("mode,owner", [(None, None), (0o600, "nobody"), (0o640, None)],
                         ids=["missing", "wrong-owner", "group-readable"])
def test_a_missing_or_exposed_identity_is_refused_before_anything_is_installed(tmp_path, mode, owner):
    host = fresh_drill_host(tmp_path, mode, owner)
    refused = host.apply(tmp_path)
    assert refused.failed
    assert "The age identity %s must be a regular file owned by root with mode 0600 (or 0400)" % host.identity \
        in str(refused.data)
    assert not os.path.exists(host.root)  # no unit, no folder, no metrics file: nothing changed


def test_an_identity_removed_after_install_fails_the_drill_and_the_metrics_say_so(drillhost):
    saved = drillhost.identity + ".saved"
    os.rename(drillhost.identity, saved)
    try:
        verify = drillhost.run_job("verify")
        assert verify.returncode != 0
        assert drillhost.identity in verify.stdout + verify.stderr, verify.stdout[-3000:] + verify.stderr[-2000:]
        assert "Traceback" not in verify.stdout + verify.stderr
        assert drillhost.metric("last_run_success", operation="verify", type="all") == 0
    finally:
        os.replace(saved, drillhost.identity)
    assert drillhost.run_job("verify").returncode == 0
    assert drillhost.metric("last_run_success", operation="verify", type="all") == 1


def test_the_launcher_refuses_unknown_jobs_and_apps(drillhost):
    command = drillhost.exec_start("verify")[0]
    unknown = subprocess.run([command, "--app", APP + "-drill", "dance"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown job 'dance'" in unknown.stderr
    missing = subprocess.run([command, "--app", "nope", "verify"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no drill is set up for 'nope'" in missing.stderr
    hostile = subprocess.run([command, "--app", "../x", "verify"], capture_output=True, text=True)
    assert hostile.returncode == 2 and "--app needs the drill's name" in hostile.stderr


def test_a_drill_host_that_is_not_the_backup_server_pulls_the_newest_backups(drillhost, backup_server,  # noqa: F811
                                                                             tmp_path):
    """The app host pushed to the backup server (a real sshd on 127.0.0.1); a drill host holding the identity
    pulls from it before it verifies and simulates."""
    pushed = run_tasks(tmp_path, [{"name": "push", "devops.reddit_backup.backup_sync": dict(
        backup_server.options(), backup_dir=drillhost.backup_dir, direction="push")}])
    assert not pushed.failed, pushed.data
    puller = DrillHost(tmp_path / "puller", app="pulled", root=drillhost.root)
    puller.identity = drillhost.identity
    puller.write_inventory(drill_host_identity_file=drillhost.identity, drill_host_pull_remote=backup_server.remote,
                           drill_host_pull_ssh_key=backup_server.ssh_key,
                           drill_host_pull_known_hosts=backup_server.known_hosts)
    applied = puller.apply(tmp_path)
    assert not applied.failed, str(applied.data)[-4000:]
    assert not os.path.exists(puller.backup_dir)
    verified = puller.run_job("verify")
    assert verified.returncode == 0, verified.stdout[-4000:] + verified.stderr[-2000:]
    assert {"daily", "database"} <= set(os.listdir(puller.backup_dir))
    assert puller.metric("last_run_success", operation="verify", type="all") == 1
    simulated = puller.run_job("dr_simulation")
    assert simulated.returncode == 0, simulated.stdout[-4000:] + simulated.stderr[-2000:]
    assert puller.metric("last_run_success", operation="dr_simulation", type="all") == 1


def test_a_scratch_folder_that_private_tmp_would_hide_is_refused(tmp_path):
    """The units run with PrivateTmp: a scratch folder under /tmp or /var/tmp would not be the one the role made."""
    host = DrillHost(tmp_path)
    host.write_inventory(drill_host_scratch_dir="/var/tmp/drills")
    refused = host.apply(tmp_path)
    assert refused.failed
    assert "not under /tmp or /var/tmp, which the units' PrivateTmp hides" in str(refused.data)
    assert not os.path.exists(host.root)
