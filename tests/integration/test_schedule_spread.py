"""The fleet's spread as an operator sets it: reddit_backup_schedule_spread in the inventory's group_vars, the
runner role applied to the app_servers group, the units and cron files read back from disk (and systemd's own
`systemd-analyze verify`), and the values the schedules cannot hold refused with a message that names them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._runner.units import (
    cron_delay_seconds, machine_identity,
)
from tests.integration.inventory import operator_inventory
from tests.integration.runner import run_playbook
from tests.integration.runnerhost import read, task_result, write_play

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOBS = ("full", "incremental", "database", "cleanup", "recovery_test")


def install(tmp_path, **settings):
    """The runner role on the app_servers group, with SETTINGS in group_vars/all.yml (files only, under a root)."""
    root = tmp_path / "root"
    group_vars = {"reddit_backup_app_name": "fleet", "reddit_backup_app_root": "/srv/fleet",
                  "reddit_backup_app_owner": "root", "reddit_backup_app_group": "root",
                  "runner_root": str(root), "runner_install": False, **settings}
    play = [{"name": "Schedules of the fleet", "hosts": "app_servers", "gather_facts": False,
             "roles": [{"role": "devops.reddit_backup.runner"}]}]
    result = run_playbook(tmp_path, write_play(tmp_path, "fleet.yml", play),
                          inventory=operator_inventory(tmp_path, group_vars))
    return result, root


def test_group_vars_spread_reaches_every_timer_and_systemd_accepts_them(tmp_path):
    result, root = install(tmp_path, reddit_backup_schedule_spread=20)
    assert not result.failed, result.stderr
    units = root / "etc" / "systemd" / "system"
    for job in JOBS:
        timer = read(units / ("reddit-backup-fleet-%s.timer" % job))
        assert "Persistent=true\n" in timer
        assert "\nRandomizedDelaySec=20min\nFixedRandomDelay=true\n" in timer, timer
    if shutil.which("systemd-analyze"):
        paths = sorted(str(units / name) for name in os.listdir(units))
        checked = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True)
        assert checked.returncode == 0 and checked.stderr.strip() == "", checked.stderr


def test_zero_turns_the_spread_off(tmp_path):
    result, root = install(tmp_path, reddit_backup_schedule_spread=0)
    assert not result.failed, result.stderr
    timer = read(root / "etc" / "systemd" / "system" / "reddit-backup-fleet-database.timer")
    assert "RandomizedDelaySec" not in timer and "FixedRandomDelay" not in timer


def test_cron_waits_its_host_derived_offset(tmp_path):
    result, root = install(tmp_path, reddit_backup_schedule_spread=45, runner_scheduler="cron")
    assert not result.failed, result.stderr
    command = os.path.join(str(root), "usr", "local", "bin", "reddit-backup")
    for job, when in (("full", "0 2 * * *"), ("database", "0 * * * *")):
        wait = cron_delay_seconds(machine_identity(), "reddit-backup-fleet-%s" % job, 45)
        assert 0 <= wait < 45 * 60
        line = read(root / "etc" / "cron.d" / ("reddit-backup-fleet-%s" % job)).splitlines()[-1]
        assert line.startswith("%s root sleep %d && %s --app fleet --quiet " % (when, wait, command)), line


@pytest.mark.parametrize("value, task, message", [
    (60, "Plan the schedules", "schedule spread of 60 minutes is not shorter than job database's period "
                               "(60 minutes, '0 * * * *'): its runs would slide onto the next ones; give less than 60"),
    (-5, "Plan the schedules", "schedule spread -5: give a whole number of minutes, 0 or more"),
    ("half an hour", None, "reddit_backup_schedule_spread"),
])
def test_bad_spreads_are_refused_with_a_clear_message(tmp_path, value, task, message):
    result, root = install(tmp_path, reddit_backup_schedule_spread=value)
    assert result.failed
    if task:
        assert message in task_result(result, task)["msg"]
    else:
        failed = [host for play in result.data["plays"] for entry in play["tasks"]
                  for host in entry["hosts"].values() if host.get("failed")]
        assert failed and message in failed[0]["msg"] and "int" in failed[0]["msg"], failed
    assert not (root / "etc" / "systemd" / "system").exists()


def test_a_job_that_runs_more_often_needs_a_smaller_spread(tmp_path):
    result, _root = install(tmp_path, reddit_backup_schedule_spread=20,
                            runner_job_overrides={"database": {"schedule": "*/15 * * * *"}})
    assert result.failed
    assert "job database's period (15 minutes" in task_result(result, "Plan the schedules")["msg"]
