"""Units and cron files of the backup jobs: their content, systemd's own verdict on them, and plans that write only
what changed and remove only what belongs to the application."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._runner import units as _units
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

GUIDE_JOBS = [
    {"name": "full", "schedule": "0 2 * * *", "command": ["create", "--type", "full"],
     "description": "daily full backup"},
    {"name": "incremental", "schedule": "0 */6 * * *", "command": ["create", "--type", "incremental"]},
    {"name": "database", "schedule": "0 * * * *", "command": ["create", "--type", "database"]},
    {"name": "cleanup", "schedule": "0 3 * * 0", "command": ["cleanup"]},
    {"name": "recovery_test", "schedule": "0 4 * * 1", "command": ["recovery-test"], "timeout": "2h",
     "randomized_delay": "10min"},
]


def schedule(tmp_path, app="reddit-sentiment", scheduler="systemd", jobs=GUIDE_JOBS, **extra) -> _units.Schedule:
    values = dict(app=app, scheduler=scheduler, command="/bin/echo", user="root", group="root",
                  systemd_dir=str(tmp_path / "systemd"), cron_dir=str(tmp_path / "cron.d"),
                  jobs=[_units.job_from(job) for job in jobs], config_watch=["/srv/app/config", "/srv/app/systemd"])
    values.update(extra)
    return _units.Schedule(**values)


def install(sched):
    planned = _units.plan(sched)
    _units.apply(planned)
    return planned


def test_systemd_files_and_what_to_enable(tmp_path):
    planned = install(schedule(tmp_path))
    names = sorted(os.listdir(tmp_path / "systemd"))
    assert names == sorted(["reddit-backup-reddit-sentiment-%s.%s" % (job["name"], kind) for job in GUIDE_JOBS
                            for kind in ("service", "timer")]
                           + ["reddit-backup-reddit-sentiment-config.service", "reddit-backup-reddit-sentiment-config.path"])
    assert sorted(planned["enable"]) == sorted(["reddit-backup-reddit-sentiment-%s.timer" % job["name"]
                                                for job in GUIDE_JOBS] + ["reddit-backup-reddit-sentiment-config.path"])
    timer = (tmp_path / "systemd" / "reddit-backup-reddit-sentiment-recovery_test.timer").read_text()
    for line in ("OnCalendar=Mon *-*-* 04:00:00", "Persistent=true", "RandomizedDelaySec=10min",
                 "Unit=reddit-backup-reddit-sentiment-recovery_test.service", "WantedBy=timers.target"):
        assert line + "\n" in timer
    service = (tmp_path / "systemd" / "reddit-backup-reddit-sentiment-recovery_test.service").read_text()
    assert "ExecStart=/bin/echo --app reddit-sentiment --quiet recovery-test\nTimeoutStartSec=2h\n" in service
    path = (tmp_path / "systemd" / "reddit-backup-reddit-sentiment-config.path").read_text()
    assert "PathChanged=/srv/app/config\nPathChanged=/srv/app/systemd\n" in path
    config = (tmp_path / "systemd" / "reddit-backup-reddit-sentiment-config.service").read_text()
    assert "ExecStartPre=/bin/sleep 5\nExecStart=/bin/echo --app reddit-sentiment --quiet create --type config\n" \
        in config
    for name in names:
        assert stat.S_IMODE(os.stat(tmp_path / "systemd" / name).st_mode) == 0o644


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    install(schedule(tmp_path))
    units = sorted(str(path) for path in (tmp_path / "systemd").iterdir())
    checked = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stderr.strip() == "", checked.stderr


def test_cron_files(tmp_path):
    install(schedule(tmp_path, scheduler="cron", cron_mailto="ops@example.com"))
    names = sorted(os.listdir(tmp_path / "cron.d"))
    assert names == sorted("reddit-backup-reddit-sentiment-%s" % job["name"] for job in GUIDE_JOBS)
    full = (tmp_path / "cron.d" / "reddit-backup-reddit-sentiment-full").read_text()
    assert full.endswith("SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                         "MAILTO=ops@example.com\n"
                         "0 2 * * * root /bin/echo --app reddit-sentiment --quiet create --type full\n")
    assert not (tmp_path / "systemd").exists()


def test_second_plan_changes_nothing(tmp_path):
    install(schedule(tmp_path))
    again = _units.plan(schedule(tmp_path))
    assert again["write"] == [] and again["remove"] == [] and len(again["unchanged"]) == 12


def test_a_changed_mode_or_content_is_rewritten(tmp_path):
    install(schedule(tmp_path))
    timer = tmp_path / "systemd" / "reddit-backup-reddit-sentiment-full.timer"
    os.chmod(timer, 0o600)
    service = tmp_path / "systemd" / "reddit-backup-reddit-sentiment-full.service"
    service.write_text("edited by hand\n")
    planned = install(schedule(tmp_path))
    assert sorted(item["path"] for item in planned["write"]) == sorted([str(timer), str(service)])
    assert planned["write"][0]["before"] is not None
    assert stat.S_IMODE(os.stat(timer).st_mode) == 0o644 and "Type=oneshot" in service.read_text()


def test_switching_and_removing_touch_only_the_application(tmp_path):
    install(schedule(tmp_path, app="foo"))
    install(schedule(tmp_path, app="foo-bar", scheduler="cron"))
    install(schedule(tmp_path, app="foo-bar"))
    (tmp_path / "cron.d" / "someone-else").write_text("* * * * * root true\n")
    # foo: cron now, one job less; foo's units go, foo-bar's stay
    jobs = [job for job in GUIDE_JOBS if job["name"] != "incremental"]
    planned = install(schedule(tmp_path, app="foo", scheduler="cron", jobs=jobs))
    assert "reddit-backup-foo-incremental.timer" in planned["stop"]
    assert not [name for name in os.listdir(tmp_path / "systemd") if name.startswith("reddit-backup-foo-")
                and not name.startswith("reddit-backup-foo-bar-")]
    assert len([n for n in os.listdir(tmp_path / "systemd") if n.startswith("reddit-backup-foo-bar-")]) == 12
    assert sorted(n for n in os.listdir(tmp_path / "cron.d") if n.startswith("reddit-backup-foo-")
                  and not n.startswith("reddit-backup-foo-bar-")) == sorted("reddit-backup-foo-%s" % job["name"]
                                                                            for job in jobs)
    # absent: everything of foo-bar goes, nothing else
    planned = install(schedule(tmp_path, app="foo-bar", present=False))
    assert len(planned["remove"]) == 12 and planned["enable"] == []
    left = sorted(os.listdir(tmp_path / "cron.d"))
    assert "someone-else" in left and all(not n.startswith("reddit-backup-foo-bar-") for n in left)
    # none: no files for foo either
    install(schedule(tmp_path, app="foo", scheduler="none"))
    assert os.listdir(tmp_path / "cron.d") == ["someone-else"]


def test_no_path_unit_without_watched_paths(tmp_path):
    install(schedule(tmp_path, config_watch=[]))
    assert not any(name.endswith(".path") for name in os.listdir(tmp_path / "systemd"))


def test_on_calendar_overrides_the_schedule(tmp_path):
    jobs = [{"name": "full", "on_calendar": "Mon..Fri *-*-* 22:00:00", "command": ["create"]}]
    install(schedule(tmp_path, jobs=jobs))
    timer = (tmp_path / "systemd" / "reddit-backup-reddit-sentiment-full.timer").read_text()
    assert "OnCalendar=Mon..Fri *-*-* 22:00:00\n" in timer


@pytest.mark.parametrize("jobs,scheduler,message", [
    ([{"name": "config", "command": ["create"], "schedule": "@daily"}], "systemd", "job name 'config'"),
    ([{"name": "Full", "command": ["create"], "schedule": "@daily"}], "systemd", "job name 'Full'"),
    ([{"name": "nightly-full", "command": ["create"], "schedule": "@daily"}], "systemd", "job name 'nightly-full'"),
    ([{"name": "full", "command": "create --type full", "schedule": "@daily"}], "systemd", "must be a list"),
    ([{"name": "full", "command": ["create", "--name", "a b"], "schedule": "@daily"}], "systemd", "no spaces"),
    ([{"name": "full", "command": ["create", "100%"], "schedule": "@daily"}], "cron", "no spaces"),
    ([{"name": "full", "command": ["create"], "on_calendar": "daily"}], "cron", "no cron schedule"),
    ([{"name": "full", "command": ["create"]}], "systemd", "neither a schedule nor an on_calendar"),
    ([{"name": "full", "command": ["create"], "schedule": "0 2 * *"}], "cron", "five fields"),
    ([{"name": "full", "command": ["create"], "schedule": "0 2 1 * 1"}], "systemd", "both day of month"),
    ([{"name": "full", "command": ["create"], "schedule": "@daily"}] * 2, "systemd", "unique"),
])
def test_bad_jobs_are_named(tmp_path, jobs, scheduler, message):
    with pytest.raises(BackupError, match=message):
        _units.plan(schedule(tmp_path, jobs=jobs, scheduler=scheduler))


@pytest.mark.parametrize("app", ["", "with space", "dotted.name", "-leading", "x" * 65])
def test_bad_application_names(tmp_path, app):
    with pytest.raises(BackupError, match="application name"):
        _units.plan(schedule(tmp_path, app=app))


# --- the fleet's spread -------------------------------------------------------------------------------------

def test_spread_gives_every_timer_a_fixed_randomized_delay_and_a_job_keeps_its_own(tmp_path):
    install(schedule(tmp_path, spread_minutes=30))
    folder = tmp_path / "systemd"
    full = (folder / "reddit-backup-reddit-sentiment-full.timer").read_text()
    assert "OnCalendar=*-*-* 02:00:00\n" in full and "Persistent=true\n" in full
    assert "RandomizedDelaySec=30min\nFixedRandomDelay=true\n" in full
    drill = (folder / "reddit-backup-reddit-sentiment-recovery_test.timer").read_text()
    assert "RandomizedDelaySec=10min\nFixedRandomDelay=true\n" in drill and "30min" not in drill


def test_no_spread_no_delay(tmp_path):
    install(schedule(tmp_path, spread_minutes=0))
    full = (tmp_path / "systemd" / "reddit-backup-reddit-sentiment-full.timer").read_text()
    assert "RandomizedDelaySec" not in full and "FixedRandomDelay" not in full


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_spread_timers(tmp_path):
    install(schedule(tmp_path, spread_minutes=45))
    units = sorted(str(path) for path in (tmp_path / "systemd").iterdir())
    checked = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stderr.strip() == "", checked.stderr


@pytest.mark.parametrize("expression, minutes", [
    ("0 2 * * *", 1440), ("0 * * * *", 60), ("0 */6 * * *", 360), ("0 3 * * 0", 1440), ("*/15 * * * *", 15),
    ("0,50 * * * *", 10), ("30 1,23 * * *", 120), ("@hourly", 60)])
def test_shortest_period(expression, minutes):
    assert _units.shortest_period_minutes(expression) == minutes


@pytest.mark.parametrize("spread, message", [
    (60, "schedule spread of 60 minutes is not shorter than job database's period (60 minutes"),
    (-1, "schedule spread -1: give a whole number of minutes, 0 or more"),
    ("30", "schedule spread '30': give a whole number of minutes")])
def test_a_spread_the_schedule_cannot_hold_is_refused(tmp_path, spread, message):
    with pytest.raises(BackupError, match=re.escape(message)):
        _units.plan(schedule(tmp_path, spread_minutes=spread))
    assert not (tmp_path / "systemd").exists()


def test_cron_waits_a_stable_host_derived_offset(tmp_path, monkeypatch):
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    monkeypatch.setattr(_units, "MACHINE_ID", str(machine_id))
    install(schedule(tmp_path, scheduler="cron", spread_minutes=30))
    line = (tmp_path / "cron.d" / "reddit-backup-reddit-sentiment-full").read_text().splitlines()[-1]
    delay = _units.cron_delay_seconds("3d1219c7c4c5404aaa1f6d2a48adfda4", "reddit-backup-reddit-sentiment-full", 30)
    assert 0 < delay < 1800
    assert line == "0 2 * * * root sleep %d && /bin/echo --app reddit-sentiment --quiet create --type full" % delay
    # another host, another offset; the same host, the same one on every run
    offsets = {_units.cron_delay_seconds("%032x" % host, "reddit-backup-reddit-sentiment-full", 30)
               for host in range(100)}
    assert len(offsets) > 90 and all(0 <= offset < 1800 for offset in offsets)
    assert _units.cron_delay_seconds("a", "b", 30) == _units.cron_delay_seconds("a", "b", 30)
    assert _units.cron_delay_seconds("a", "b", 0) == 0


def test_cron_spreads_a_job_with_its_own_timer_delay_too(tmp_path):
    jobs = [{"name": "often", "schedule": "*/15 * * * *", "command": ["create"], "randomized_delay": "1min"}]
    _units.plan(schedule(tmp_path, jobs=jobs, spread_minutes=20))  # the timer keeps its own 1 minute
    with pytest.raises(BackupError, match=re.escape("job often's period (15 minutes")):
        _units.plan(schedule(tmp_path, scheduler="cron", jobs=jobs, spread_minutes=20))
