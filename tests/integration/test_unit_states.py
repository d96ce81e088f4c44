"""The units' states recorded at backup time, through the operator's path: the settings in an inventory's
group_vars, the top-level restore_systemd playbook, and its plan (reddit_backup_units_plan) read from the run. This
host has no systemd (services off, unit files go to a folder), so it knows none of the units: the plan takes the
recorded states, else the guide's. The recording itself on a real systemd host: molecule's disaster_recovery."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.integration.runner import REPO, TARGET_PYTHON, run_playbook
from tests.unit.plugins.module_utils.builders import rewrite

MONITOR, TIMER, SERVICE = ("reddit-sentiment-monitor.service", "reddit-sentiment-pipeline.timer",
                           "reddit-sentiment-pipeline.service")
# As systemctl show reads them on a host where the operator had the timer switched off (not the guide's default).
RECORDED = {MONITOR: {"enabled": True, "active": True, "triggered_by": []},
            TIMER: {"enabled": False, "active": False, "triggered_by": []},
            SERVICE: {"enabled": False, "active": False, "triggered_by": [TIMER]}}


@pytest.fixture
def health(sample_app):
    server = subprocess.Popen([sys.executable, str(sample_app / "apps" / "collector" / "health_server.py"), "--db",
                               str(sample_app / "data" / "reddit_sentiment.db"), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    yield "http://" + server.stdout.readline().split()[-1]
    server.terminate()
    server.wait(timeout=10)


def backup(app, backups, units=None) -> dict:
    """A full backup; with ``units``, as made on a host whose systemd answered (its header records them)."""
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups), compression="none"))
    if units is not None:
        rewrite(made["archive"], header={"units": units})
    return made


def restore_systemd(tmp_path, app, health_url: str):
    """restore_systemd with the settings in group_vars/all.yml of an inventory, as an operator runs it."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    hosts = {"all": {"children": {"app_servers": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": TARGET_PYTHON}}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (tmp_path / "systemd-system").mkdir()
    settings = {"reddit_backup_app_root": str(app), "reddit_backup_backup_dir": str(tmp_path / "backups"),
                "reddit_backup_manage_services": False, "reddit_backup_systemd_dir": str(tmp_path / "systemd-system"),
                "reddit_backup_health_url": health_url, "reddit_backup_health_retries": 5,
                "reddit_backup_health_delay": 1}
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(settings))
    shutil.rmtree(str(app / "systemd"))  # the unit files are lost
    result = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "restore_systemd.yml"), inventory=str(inventory))
    assert not result.failed, result.stderr + json.dumps(result.data)[-3000:]
    return result


def plan(result) -> dict:
    decided = result.result("Decide each unit's state (timer-driven first, then the host's, the recorded, the guide's)")
    return decided["results"][-1]["ansible_facts"]["reddit_backup_units_plan"]


def test_the_recorded_states_are_returned_by_the_restore(sample_app, tmp_path):
    made = backup(sample_app, tmp_path / "backups", RECORDED)
    with open(made["archive"] + ".meta.json") as handle:
        assert json.load(handle)["units"] == RECORDED  # readable without opening (or decrypting) the archive
    restored = restore(RestoreRequest(archive=made["archive"], dest=str(sample_app), scope="systemd"))
    assert restored["unit_states"] == RECORDED


def test_a_backup_without_recorded_states_still_restores(sample_app, tmp_path):
    made = backup(sample_app, tmp_path / "backups")
    assert made["unit_states"] is None and made["unit_states_note"].startswith("unit states not recorded: ")
    restored = restore(RestoreRequest(archive=made["archive"], dest=str(sample_app), scope="systemd"))
    assert restored["unit_states"] is None


def test_malformed_recorded_states_are_left_out(sample_app, tmp_path):
    units = dict(RECORDED, **{"../../etc/passwd.service": RECORDED[MONITOR], "x.timer": {"enabled": "yes"}})
    made = backup(sample_app, tmp_path / "backups", units)
    restored = restore(RestoreRequest(archive=made["archive"], dest=str(sample_app), scope="systemd"))
    assert restored["unit_states"] == RECORDED


def test_restore_systemd_puts_unknown_units_back_as_recorded(sample_app, tmp_path, health):
    backup(sample_app, tmp_path / "backups", RECORDED)
    result = restore_systemd(tmp_path, sample_app, health)
    assert plan(result) == {MONITOR: {"enabled": True, "active": True, "from": "recorded"},
                            TIMER: {"enabled": False, "active": False, "from": "recorded"},
                            SERVICE: {"enabled": False, "active": False, "from": "timer"}}


def test_restore_systemd_without_recorded_states_takes_the_guides_default(sample_app, tmp_path, health):
    backup(sample_app, tmp_path / "backups")
    result = restore_systemd(tmp_path, sample_app, health)
    assert plan(result) == {MONITOR: {"enabled": True, "active": True, "from": "default"},
                            TIMER: {"enabled": True, "active": True, "from": "default"},
                            SERVICE: {"enabled": False, "active": False, "from": "timer"}}


def test_a_recorded_timer_driven_service_is_never_enabled(sample_app, tmp_path, health):
    """The guard comes first: a service recorded enabled and running but started by a timer stays off."""
    units = dict(RECORDED, **{SERVICE: {"enabled": True, "active": True, "triggered_by": [TIMER]},
                              TIMER: {"enabled": True, "active": True, "triggered_by": []}})
    os.rename(str(sample_app / "systemd" / TIMER), str(sample_app / "timer.keep"))  # only its recorded TriggeredBy
    backup(sample_app, tmp_path / "backups", units)
    result = restore_systemd(tmp_path, sample_app, health)
    assert plan(result)[SERVICE] == {"enabled": False, "active": False, "from": "timer"}
