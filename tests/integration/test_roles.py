"""The runner, monitoring and new_server roles, applied for real on localhost into folders that stand for /.

Nothing here needs systemd: units and cron files are rendered into the folder, checked for content, and checked
with `systemd-analyze verify` (it works without a booted systemd when the binaries a unit names exist). Starting
the timers in a real systemd is the molecule scenarios' job.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._runner.units import (
    cron_delay_seconds, machine_identity,
)
from tests.integration.runner import REPO, run_playbook
from tests.integration.runnerhost import (APP, apphost, apply, changed_tasks, read, render_only, role_play,  # noqa: F401
                                          task_result, write_play)
from tests.sampleapp import seed_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GUIDE_TIMERS = {
    "full": "*-*-* 02:00:00",
    "incremental": "*-*-* 00/6:00:00",
    "database": "*-*-* *:00:00",
    "cleanup": "Sun *-*-* 03:00:00",
    "recovery_test": "Mon *-*-* 04:00:00",
}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def units_of(folder, app=APP) -> list:
    pattern = re.compile(r"^reddit-backup-%s-[a-z0-9_]+(\.service|\.timer|\.path)?$" % re.escape(app))
    return sorted(name for name in os.listdir(folder) if pattern.match(name)) if os.path.isdir(folder) else []


# --- the shared installation: runner (systemd) + monitoring -----------------------------------------------------

def test_install_changes_things_and_a_second_run_changes_nothing(apphost, tmp_path):  # noqa: F811
    assert changed_tasks(apphost.first_run), "the first run installed nothing?"
    second = apphost.install(tmp_path)
    assert not second.failed, second.stderr
    assert changed_tasks(second) == []


def test_the_venv_and_the_collection_come_from_the_pushed_files(apphost):  # noqa: F811
    home = os.path.join(apphost.root, "opt", "reddit-backup")
    assert sorted(os.listdir(os.path.join(home, "dist", "wheels"))) == sorted(os.listdir(
        os.path.join(REPO, "build", "runner-dist", "wheels")))
    version = subprocess.run([os.path.join(home, "venv", "bin", "ansible"), "--version"], capture_output=True,
                             text=True, check=True).stdout.splitlines()[0]
    import importlib.metadata
    assert importlib.metadata.version("ansible-core") in version
    collection = os.path.join(home, "collections", "ansible_collections", "devops", "reddit_backup")
    assert os.path.isfile(os.path.join(collection, "MANIFEST.json"))
    assert os.path.isfile(os.path.join(collection, "playbooks", "backup.yml"))


def test_one_service_and_timer_per_job_with_the_guide_schedule(apphost):  # noqa: F811
    names = units_of(apphost.units)
    expected = sorted(["reddit-backup-demo-%s.%s" % (job, kind) for job in GUIDE_TIMERS for kind in
                       ("service", "timer")] + ["reddit-backup-demo-config.path", "reddit-backup-demo-config.service"])
    assert names == expected
    for job, calendar in GUIDE_TIMERS.items():
        timer = read(os.path.join(apphost.units, "reddit-backup-demo-%s.timer" % job))
        assert "OnCalendar=%s\n" % calendar in timer
        assert "Persistent=true\n" in timer
        assert "Unit=reddit-backup-demo-%s.service\n" % job in timer
        assert "WantedBy=timers.target" in timer
        service = read(os.path.join(apphost.units, "reddit-backup-demo-%s.service" % job))
        assert "Type=oneshot\n" in service and "User=root\n" in service
        assert re.search(r"^ExecStart=%s --app demo --quiet \S" % re.escape(apphost.command), service, re.M)
    full = read(os.path.join(apphost.units, "reddit-backup-demo-full.service"))
    assert "--quiet create --type full\n" in full
    assert "--quiet recovery-test\n" in read(os.path.join(apphost.units, "reddit-backup-demo-recovery_test.service"))


def test_configuration_changes_trigger_a_config_backup(apphost):  # noqa: F811
    path_unit = read(os.path.join(apphost.units, "reddit-backup-demo-config.path"))
    for watched in ("config", "systemd", "monitoring/alerting_rules.yml", "monitoring/prometheus_config.yml"):
        assert "PathChanged=%s/%s\n" % (apphost.app_root, watched) in path_unit
    assert "Unit=reddit-backup-demo-config.service" in path_unit
    service = read(os.path.join(apphost.units, "reddit-backup-demo-config.service"))
    assert "--quiet create --type config\n" in service
    assert "ExecStartPre=/bin/sleep 5\n" in service


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(apphost):  # noqa: F811
    units = [os.path.join(apphost.units, name) for name in units_of(apphost.units)]
    checked = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == "", "systemd-analyze found problems:\n" + checked.stderr


def test_command_settings_and_monitoring_files(apphost):  # noqa: F811
    assert mode(apphost.command) == 0o755
    assert subprocess.run([apphost.command, "--help"], capture_output=True).returncode == 0
    settings = read(os.path.join(apphost.config, "runner.json"))
    assert '"app_root": "%s"' % apphost.app_root in settings
    inventory = read(os.path.join(apphost.config, "inventory.yml"))
    assert "reddit_backup_app_root: %s" % apphost.app_root in inventory
    assert "reddit_backup_manage_services: false" in inventory
    webhook_file = os.path.join(apphost.config, "webhook_url")
    assert mode(webhook_file) == 0o600
    assert read(webhook_file).strip() == apphost.webhook.url("/hooks/s3cr3t-t0ken")
    monitoring = read(os.path.join(apphost.config, "monitoring.json"))
    assert "s3cr3t" not in monitoring and '"webhook_url_file": "%s"' % webhook_file in monitoring
    assert mode(apphost.textfile) == 0o644
    assert 'reddit_backup_last_success_timestamp_seconds{app="demo",type="full"}' in apphost.metrics()
    rules = os.path.join(apphost.root, "etc", "prometheus", "rules", "reddit_backup.rules.yml")
    assert read(rules) == read(os.path.join(REPO, "collections", "ansible_collections", "devops", "reddit_backup",
                                             "roles", "monitoring", "files", "reddit_backup.rules.yml"))


def test_the_secret_webhook_url_is_not_in_the_output(apphost):  # noqa: F811
    assert "s3cr3t" not in str(apphost.first_run.data) + apphost.first_run.stderr


def test_config_change_handler_takes_a_config_backup_without_systemd(apphost, tmp_path):  # noqa: F811
    """scheduler none (or cron): the role that deploys the configuration notifies the runner's handler."""
    app_root = tmp_path / "other-app"
    seed_app(app_root)
    runner = {"role": "devops.reddit_backup.runner", "vars": {
        "runner_root": apphost.root, "runner_app_name": "other", "runner_app_root": str(app_root),
        "runner_user": "root", "runner_group": "root", "runner_scheduler": "none",
        # the venv and collection the first application installed serve this one too
        "runner_install": False, "runner_playbook_vars": {}}}
    deploy = {"name": "Deploy a new production.env", "ansible.builtin.copy": {
        "content": "LOG_LEVEL=DEBUG\n", "dest": str(app_root / "config" / "production.env"), "mode": "0644"},
        "notify": "reddit_backup config changed"}
    playbook = write_play(tmp_path, "deploy.yml", role_play([runner], tasks=[deploy]))
    result = run_playbook(tmp_path, playbook, timeout=600)
    assert not result.failed, result.stderr
    assert task_result(result, "Take a configuration backup")["changed"]
    backups = list_backups(str(app_root / "backups"))
    assert [backup["type"] for backup in backups] == ["config"]
    assert units_of(apphost.units, "other") == [], "scheduler none installs no unit"
    assert "create --type config" in read(str(app_root / "logs" / "backup.log"))
    # several applications on one host: the first one's units are untouched, the second one goes away cleanly
    runner["vars"]["runner_state"] = "absent"
    playbook = write_play(tmp_path, "remove.yml", role_play([runner]))
    assert not run_playbook(tmp_path, playbook).failed
    assert not os.path.exists(os.path.join(apphost.root, "etc", "reddit-backup", "other"))
    assert len(units_of(apphost.units)) == 12 and os.path.exists(apphost.command)


# --- render-only installations: cron, overrides, several apps, absent ----------------------------------------

def test_cron_then_systemd_with_overrides_then_absent(tmp_path):
    root = tmp_path / "root"
    cron_dir, units = root / "etc" / "cron.d", root / "etc" / "systemd" / "system"
    # cron: one file per job, the guide's lines
    apply(tmp_path, "cron.yml", render_only(root, "app-one", runner_scheduler="cron", runner_cron_mailto="ops@x"),
          render_only(root, "app", runner_scheduler="cron"))
    files = units_of(cron_dir, "app-one")
    assert files == sorted("reddit-backup-app-one-%s" % job for job in GUIDE_TIMERS)
    assert units_of(cron_dir, "app") == sorted("reddit-backup-app-%s" % job for job in GUIDE_TIMERS)
    command = os.path.join(str(root), "usr", "local", "bin", "reddit-backup")
    full = read(cron_dir / "reddit-backup-app-one-full")
    wait = cron_delay_seconds(machine_identity(), "reddit-backup-app-one-full", 30)  # the default spread
    assert "\n0 2 * * * root sleep %d && %s --app app-one --quiet create --type full\n" % (wait, command) in full
    assert "MAILTO=ops@x\n" in full and "SHELL=/bin/sh\n" in full
    assert "0 */6 * * * root" in read(cron_dir / "reddit-backup-app-one-incremental")
    assert "0 3 * * 0 root" in read(cron_dir / "reddit-backup-app-one-cleanup")
    assert "0 4 * * 1 root" in read(cron_dir / "reddit-backup-app-one-recovery_test")
    assert all(mode(cron_dir / name) == 0o644 and re.match(r"^[A-Za-z0-9_-]+$", name) for name in files)
    assert units_of(units, "app-one") == []

    # app-one: systemd now, one job removed, one moved, one null; app: removed. app-one's cron files go, its units
    # come; every file of app goes; the shared command stays for app-one
    second = apply(tmp_path, "systemd.yml", render_only(
        root, "app-one", runner_scheduler="systemd", runner_config_backup_on_change=False,
        runner_job_overrides={"incremental": {"enabled": False}, "database": {"schedule": "30 * * * *"},
                              "recovery_test": None}),
        render_only(root, "app", runner_state="absent", monitoring_state="absent"), monitoring=True)
    assert units_of(cron_dir, "app-one") == [] and units_of(cron_dir, "app") == []
    assert units_of(units, "app-one") == sorted("reddit-backup-app-one-%s.%s" % (job, kind) for job in
                                                ("full", "database", "cleanup") for kind in ("service", "timer"))
    assert "OnCalendar=*-*-* *:30:00\n" in read(units / "reddit-backup-app-one-database.timer")
    assert not (root / "etc" / "reddit-backup" / "app").exists() and os.path.exists(command)
    assert (root / "etc" / "reddit-backup" / "app-one" / "monitoring.json").exists()
    assert "Take a configuration backup" not in changed_tasks(second)

    # absent for the last app: everything the roles installed is gone
    apply(tmp_path, "absent.yml", render_only(root, "app-one", runner_state="absent", monitoring_state="absent"),
          monitoring=True)
    left = sorted(os.path.relpath(os.path.join(folder, name), str(root))
                  for folder, _dirs, names in os.walk(str(root)) for name in names)
    assert left == [], left
    assert not os.path.exists(command) and not (root / "opt" / "reddit-backup").exists()


def test_bad_settings_are_refused_with_a_clear_message(tmp_path):
    bad = render_only(tmp_path / "root", "app", runner_job_overrides={"full": {"schedule": "0 2 * *"}})
    result = run_playbook(tmp_path, write_play(tmp_path, "bad.yml", role_play(
        [{"role": "devops.reddit_backup.runner", "vars": bad}])))
    assert result.failed
    assert "five fields" in task_result(result, "Plan the schedules")["msg"]
    bad = render_only(tmp_path / "root", "app", runner_jobs={"nightly-full": {"schedule": "0 2 * * *",
                                                                                "command": ["create"]}})
    result = run_playbook(tmp_path, write_play(tmp_path, "bad2.yml", role_play(
        [{"role": "devops.reddit_backup.runner", "vars": bad}])))
    assert result.failed and "job name 'nightly-full'" in task_result(result, "Plan the schedules")["msg"]


# --- new_server -----------------------------------------------------------------------------------------------

@pytest.fixture
def throwaway_user():
    name = "rbt%d" % os.getpid()
    yield name
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)


@pytest.mark.needs_root  # creates a user
def test_new_server_creates_the_user_and_folders_twice_without_change(tmp_path, throwaway_user):
    variables = {"new_server_user": throwaway_user, "new_server_home": str(tmp_path / "home"),
                 "new_server_app_root": str(tmp_path / "home" / "cicd_project")}
    playbook = write_play(tmp_path, "new.yml", role_play([{"role": "devops.reddit_backup.new_server",
                                                           "vars": variables}]))
    first = run_playbook(tmp_path, playbook)
    assert not first.failed, first.stderr
    assert "Install the missing base packages" not in changed_tasks(first), "every base package is installed here"
    account = pwd.getpwnam(throwaway_user)
    assert account.pw_shell == "/bin/bash" and grp.getgrgid(account.pw_gid).gr_name == throwaway_user
    app_root = tmp_path / "home" / "cicd_project"
    assert mode(app_root) == 0o755 and mode(app_root / "backups") == 0o700 and (app_root / "logs").is_dir()
    assert os.stat(app_root / "backups").st_uid == account.pw_uid
    second = run_playbook(tmp_path, playbook)
    assert not second.failed and changed_tasks(second) == []


def test_roles_render_in_ansible_doc():
    for role in ("runner", "monitoring", "new_server"):
        shown = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"),
                                "-t", "role", "devops.reddit_backup.%s" % role], capture_output=True, text=True,
                               env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections")))
        assert shown.returncode == 0, shown.stderr
        # Bold is an escape sequence in a terminal and *main* with NO_COLOR (as in CI).
        plain = shown.stdout.replace("\x1b[1m", "").replace("\x1b[0m", "").replace("*", "")
        assert "ENTRY POINT: main" in plain


def test_roles_and_the_record_entry_point_pass_syntax_check(tmp_path):
    plays = role_play([{"role": "devops.reddit_backup.runner"}, {"role": "devops.reddit_backup.monitoring"},
                       {"role": "devops.reddit_backup.new_server"}],
                      tasks=[{"name": "Record", "ansible.builtin.include_role": {
                          "name": "devops.reddit_backup.monitoring", "tasks_from": "record"}}])
    checked = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--syntax-check",
                              "-i", "localhost,", write_play(tmp_path, "syntax.yml", plays)], capture_output=True,
                             text=True, env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections")))
    assert checked.returncode == 0, checked.stdout + checked.stderr
