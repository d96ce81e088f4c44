"""The units' states a backup records. This machine's PID 1 is not systemd, so the real systemctl fails here (as it
does in a container without systemd): the backup is made all the same and says why nothing was recorded. The
recording on a real systemd host is checked by molecule's disaster_recovery scenario."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import unit_states
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.selection import select
from tests.unit.plugins.module_utils.builders import NOW, read_archive

# What `systemctl show -p LoadState,UnitFileState,ActiveState,TriggeredBy` prints (systemd 252).
SHOWN_SERVICE = ("LoadState=loaded\nActiveState=inactive\nUnitFileState=disabled\n"
                 "TriggeredBy=reddit-sentiment-pipeline.timer\n")
SHOWN_MONITOR = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\nTriggeredBy=\n"
SHOWN_UNKNOWN = "LoadState=not-found\nActiveState=inactive\nUnitFileState=\nTriggeredBy=\n"
# The real systemctl, where no systemd runs (sd_booted's test): it fails, as in a container without systemd.
FAILING_SYSTEMCTL = pytest.mark.skipif(shutil.which("systemctl") is None or os.path.isdir("/run/systemd/system"),
                                       reason="needs systemctl installed and no systemd running")


def test_what_systemctl_show_prints_becomes_a_state():
    assert unit_states.parse_show(SHOWN_MONITOR) == {"enabled": True, "active": True, "triggered_by": []}
    assert unit_states.parse_show(SHOWN_SERVICE) == {"enabled": False, "active": False,
                                                     "triggered_by": ["reddit-sentiment-pipeline.timer"]}
    assert unit_states.parse_show(SHOWN_UNKNOWN) is None  # systemd does not know it: nothing to record


def test_the_unit_files_directly_under_systemd_are_the_units(app):
    (app / "systemd" / "notes.txt").write_text("not a unit\n")
    (app / "systemd" / "old").mkdir()
    (app / "systemd" / "old" / "retired.timer").write_text("[Timer]\n")
    (app / "systemd" / "reddit-sentiment-pipeline.timer").write_text("[Timer]\n")
    entries = select(str(app), "full").entries
    assert unit_states.unit_names(entries) == ["reddit-sentiment-pipeline.service", "reddit-sentiment-pipeline.timer"]


@FAILING_SYSTEMCTL
def test_a_failing_systemctl_records_nothing_and_says_why():
    states, note = unit_states.record(["reddit-sentiment-monitor.service"])
    assert states is None
    assert note.startswith("unit states not recorded: systemctl show reddit-sentiment-monitor.service failed (")


def test_without_systemctl_nothing_is_recorded_and_the_backup_says_so(app, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a host without systemd's tools
    made = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), compression="none", now=NOW))
    assert made["unit_states"] is None
    assert made["unit_states_note"] == "unit states not recorded: systemctl is not installed on this host"
    manifest = json.loads(read_archive(made["archive"])["MANIFEST.json"][1])
    assert "units" not in manifest and manifest["format_version"] == 1


@FAILING_SYSTEMCTL
@pytest.mark.parametrize("backup_type", ["full", "config"])
def test_a_backup_is_made_when_systemctl_fails(app, tmp_path, backup_type):
    made = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), type=backup_type, compression="none",
                                       now=NOW, required=["config/production.env"]))
    assert made["unit_states"] is None and made["unit_states_note"].startswith("unit states not recorded: ")
    with open(made["archive"] + ".meta.json") as handle:
        assert "units" not in json.load(handle)


def test_a_backup_without_unit_files_asks_nothing(app, tmp_path):
    made = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), type="database", now=NOW))
    assert made["unit_states"] is None and made["unit_states_note"] == "no unit files under systemd/ in this backup"


def test_only_well_formed_recorded_states_are_read():
    good = {"enabled": True, "active": False, "triggered_by": ["a.timer", "../x"]}
    manifest = {"units": {"a.service": good, "b.service": {"enabled": "yes", "active": True, "triggered_by": []},
                          "/etc/passwd": dict(good), "c.timer": ["not", "a", "state"]}}
    assert unit_states.recorded(manifest) == {"a.service": {"enabled": True, "active": False,
                                                            "triggered_by": ["a.timer"]}}
    assert unit_states.recorded({}) is None and unit_states.recorded({"units": "all"}) is None
