"""The metrics textfile: built from a real catalog and state file, written atomically, readable by promtool."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
from datetime import datetime, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring import metrics as _metrics
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

USAGE = {"path": "/backups", "size": 1000, "avail": 50, "used": 950, "utilisation": 0.95}


@pytest.fixture
def fixed_usage(monkeypatch):
    """The filesystem as a fixed 95% full disk, so the text depends only on the catalog and the state."""
    monkeypatch.setattr(_metrics, "filesystem_usage", lambda path: dict(USAGE))


@pytest.fixture
def paths(tmp_path):
    textdir = tmp_path / "textfile"
    textdir.mkdir()
    return str(tmp_path / "backups"), str(textdir / "reddit_backup_app.prom")


def fake_backup(backup_dir, backup_type, created, size=100, verified=None, name=None, with_key=True):
    """A complete catalog entry as backup_create and backup_verify leave it (sidecars only matter)."""
    folder = os.path.join(backup_dir, _catalog.NAMED_DIR if name else _catalog.TYPE_DIRS[backup_type])
    os.makedirs(folder, exist_ok=True)
    stem = name or "%s_%s" % (_catalog.NAME_PREFIXES[backup_type], created.strftime(_catalog.STAMP_FORMAT))
    archive = os.path.join(folder, stem + ".tar.zst")
    with open(archive, "wb") as handle:
        handle.write(b"x" * size)
    meta = {"type": backup_type, "name": stem, "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "size": size,
            "sha256": "0" * 64, "databases": []}
    with open(archive + ".meta.json", "w") as handle:
        json.dump(meta, handle)
    with open(archive + ".sha256", "wb") as handle:
        handle.write(_catalog.checksum_line("0" * 64, archive))
    if verified is not None:
        verdict = {"verified_at": verified[1], "level": "comprehensive", "status": verified[0],
                   "valid": verified[0] == "valid", "reason": "", "archive_sha256": "0" * 64, "errors": [],
                   "failed_checks": []}
        with open(archive + ".verify.json", "w") as handle:
            json.dump(verdict, handle)
    return archive


def at(hour, day=28):
    return datetime(2025, 5, day, hour, 0, 0, tzinfo=timezone.utc)


def series(result):
    return _metrics.parse(result["text"])


def value(result, name, **labels):
    return series(result).get(("reddit_backup_" + name, tuple(sorted(labels.items()))))


def test_empty_catalog_reports_no_backups_and_the_filesystem(paths, fixed_usage):
    backup_dir, textfile = paths
    result = _metrics.record(textfile, backup_dir)
    for backup_type in _catalog.TYPES:
        assert value(result, "last_success_timestamp_seconds", type=backup_type) == 0
        assert value(result, "backups", type=backup_type) == 0
    assert value(result, "filesystem_utilisation_ratio") == 0.95
    assert not any(name.endswith(("last_run_success", "recovery_test_success")) for name, _ in series(result))
    assert not os.path.exists(backup_dir), "metrics never create the backup directory"


def test_catalog_series(paths, fixed_usage):
    backup_dir, textfile = paths
    fake_backup(backup_dir, "full", at(2, 27), size=300)
    fake_backup(backup_dir, "full", at(2), size=400)
    fake_backup(backup_dir, "database", at(5), size=50)
    fake_backup(backup_dir, "full", at(9), size=70, name="pre-maintenance-20250528")
    result = _metrics.record(textfile, backup_dir, labels={"app": "reddit-sentiment"})
    assert value(result, "last_success_timestamp_seconds", app="reddit-sentiment", type="full") == at(9).timestamp()
    assert value(result, "backups", app="reddit-sentiment", type="full") == 3
    assert value(result, "storage_used_bytes", app="reddit-sentiment", type="full") == 770
    assert value(result, "last_backup_size_bytes", app="reddit-sentiment", type="database") == 50
    assert value(result, "last_success_timestamp_seconds", app="reddit-sentiment", type="config") == 0


def test_verification_uses_the_latest_verdict_and_tolerates_its_absence(paths, fixed_usage):
    backup_dir, textfile = paths
    fake_backup(backup_dir, "full", at(1), verified=("valid", "2025-05-28T01:30:00Z"))
    fake_backup(backup_dir, "full", at(2), verified=("invalid", "2025-05-28T02:30:00Z"))
    fake_backup(backup_dir, "full", at(3))  # not verified yet: must not hide the failure
    fake_backup(backup_dir, "database", at(4), verified=("unverifiable", "2025-05-28T04:10:00Z"))
    result = _metrics.record(textfile, backup_dir)
    assert value(result, "verification_success", type="full") == 0
    assert value(result, "verification_timestamp_seconds", type="full") == at(2).timestamp() + 1800
    assert value(result, "verification_success", type="database") == 0
    assert value(result, "verification_success", type="config") is None
    assert value(result, "verification_backups", status="valid") == 1
    assert value(result, "verification_backups", status="invalid") == 1
    assert value(result, "verification_backups", status="unverifiable") == 1
    assert value(result, "verification_backups", status="unverified") == 1


@pytest.mark.parametrize("verified,expected", [
    (None, ("unverified", None, None)),
    (True, ("valid", True, None)),
    ({"status": "valid", "valid": True, "at": "2025-05-28T02:00:00Z", "current": True},
     ("valid", True, at(2).timestamp())),
    ({"status": "valid", "valid": True, "current": False}, ("unverified", None, None)),
    ({"valid": False}, ("invalid", False, None)),
    ({"status": "invalid"}, ("invalid", False, None)),
    ({}, ("unverified", None, None)),
    ("garbage", ("unverified", None, None)),
])
def test_verification_shapes(verified, expected):
    entry = {"verified": verified} if verified is not None else {}
    assert _metrics.verification_of(entry) == expected


def test_runs_are_kept_between_writes(paths, fixed_usage):
    backup_dir, textfile = paths
    first = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "full", "status": "failed",
                                                       "duration": 2.5, "finished": 1748397600,
                                                       "error": "no space left"})
    assert first["previous"] is None
    assert value(first, "last_run_success", operation="backup", type="full") == 0
    second = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "database",
                                                        "status": "success", "duration": 1.25, "size": 4096})
    assert value(second, "last_run_success", operation="backup", type="full") == 0, "a database run keeps it"
    assert value(second, "last_run_success", operation="backup", type="database") == 1
    assert value(second, "last_run_size_bytes", operation="backup", type="database") == 4096
    assert value(second, "last_run_duration_seconds", operation="backup", type="database") == 1.25
    third = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "full", "status": "success"})
    assert third["previous"]["status"] == "failed"
    assert third["previous"]["error"] == "no space left"
    assert value(third, "last_run_success", operation="backup", type="full") == 1
    assert _metrics.last_run(third["state_file"], "backup", "full")["status"] == "success"


def test_recovery_test_survives_backup_runs(paths, fixed_usage):
    backup_dir, textfile = paths
    _metrics.record(textfile, backup_dir, run={"operation": "recovery_test", "status": "success",
                                               "duration": 30, "restore_seconds": 12.345, "finished": 1748397600})
    result = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "full", "status": "success"})
    assert value(result, "recovery_test_success") == 1
    assert value(result, "recovery_test_restore_seconds") == 12.345
    assert value(result, "recovery_test_timestamp_seconds") == 1748397600
    failed = _metrics.record(textfile, backup_dir, run={"operation": "recovery_test", "status": "failed"})
    assert value(failed, "recovery_test_success") == 0
    assert value(failed, "recovery_test_restore_seconds") is None, "a failed drill measured no restore time"


def test_same_inputs_same_text_and_no_change(paths, fixed_usage):
    backup_dir, textfile = paths
    fake_backup(backup_dir, "full", at(2))
    assert _metrics.record(textfile, backup_dir)["changed"] is True
    again = _metrics.record(textfile, backup_dir)
    assert again["changed"] is False
    with open(textfile) as handle:
        assert handle.read() == again["text"]


def test_textfile_and_state_are_readable_and_no_temp_is_left(paths):
    backup_dir, textfile = paths
    result = _metrics.record(textfile, backup_dir, run={"operation": "cleanup", "status": "success"})
    assert stat.S_IMODE(os.stat(textfile).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(result["state_file"]).st_mode) == 0o644
    assert sorted(os.listdir(os.path.dirname(textfile))) == ["reddit_backup_app.prom",
                                                              "reddit_backup_app.prom.state.json"]
    assert result["state_file"] == textfile + ".state.json"


def test_check_mode_writes_nothing(paths):
    backup_dir, textfile = paths
    result = _metrics.record(textfile, backup_dir, run={"operation": "backup", "status": "failed"}, check_mode=True)
    assert result["changed"] is True
    assert sorted(os.listdir(os.path.dirname(textfile))) == []


def test_a_damaged_state_is_forgotten_with_a_warning(paths, fixed_usage):
    backup_dir, textfile = paths
    with open(textfile + ".state.json", "w") as handle:
        handle.write("{not json")
    result = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "full", "status": "success"})
    assert "unreadable" in result["warnings"][0]
    assert value(result, "last_run_success", operation="backup", type="full") == 1


def test_concurrent_writers_lose_no_run(paths):
    backup_dir, textfile = paths
    errors = []

    def writer(backup_type):
        try:
            for _ in range(10):
                _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": backup_type,
                                                           "status": "success"})
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("full", "database", "config", "incremental")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with open(textfile) as handle:
        text = handle.read()
    for backup_type in ("full", "database", "config", "incremental"):
        assert 'reddit_backup_last_run_success{operation="backup",type="%s"} 1' % backup_type in text


@pytest.mark.parametrize("kwargs,message", [
    ({"textfile_name": "metrics.txt"}, "must end in .prom"),
    ({"labels": {"1app": "x"}}, "not a valid Prometheus label name"),
    ({"labels": {"__name__": "x"}}, "not a valid Prometheus label name"),
    ({"labels": {"type": "x"}}, "set by the metrics themselves"),
    ({"run": {"operation": "dance", "status": "success"}}, "operation 'dance'"),
    ({"run": {"operation": "backup", "status": "ok"}}, "status 'ok'"),
    ({"run": {"operation": "backup", "status": "success", "duration": "slow"}}, "not a number"),
    ({"run": {"operation": "backup", "status": "success", "size": -1}}, "negative"),
])
def test_bad_input_is_named(paths, kwargs, message):
    backup_dir, textfile = paths
    if "textfile_name" in kwargs:
        textfile = os.path.join(os.path.dirname(textfile), kwargs.pop("textfile_name"))
    with pytest.raises(BackupError, match=message):
        _metrics.record(textfile, backup_dir, **kwargs)


def test_missing_textfile_directory_says_what_to_do(tmp_path):
    with pytest.raises(BackupError, match="does not exist; create it"):
        _metrics.record(str(tmp_path / "nope" / "x.prom"), str(tmp_path))


def test_label_values_are_escaped(paths, fixed_usage):
    backup_dir, textfile = paths
    result = _metrics.record(textfile, backup_dir, labels={"app": 'we"ird\\app\nname'})
    assert 'app="we\\"ird\\\\app\\nname"' in result["text"]
    assert value(result, "backups", app='we\\"ird\\\\app\\nname', type="full") == 0


def test_filesystem_usage_of_a_missing_path_measures_its_parent(tmp_path):
    usage = _metrics.filesystem_usage(str(tmp_path / "not" / "yet"))
    assert usage["path"] == str(tmp_path)
    assert 0 <= usage["utilisation"] <= 1
    assert usage["size"] >= usage["avail"] > 0


def test_promtool_accepts_the_textfile(paths):
    """The real exposition-format checker agrees with our writer (names, HELP/TYPE, escaping)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run tools/setup.sh (Debian package prometheus)"
    backup_dir, textfile = paths
    fake_backup(backup_dir, "full", at(2), verified=("valid", "2025-05-28T02:10:00Z"))
    _metrics.record(textfile, backup_dir, labels={"app": "reddit-sentiment"},
                    run={"operation": "recovery_test", "status": "success", "duration": 3, "restore_seconds": 1.5})
    result = _metrics.record(textfile, backup_dir, labels={"app": "reddit-sentiment"},
                             run={"operation": "backup", "type": "full", "status": "success", "duration": 2.25,
                                  "size": 1234})
    checked = subprocess.run([promtool, "check", "metrics"], input=result["text"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", "promtool lint findings: %s%s" % (
        checked.stdout, checked.stderr)


# --- issue 12: only known label values, declared schedules, drill history and the RTO report -------------------

@pytest.mark.parametrize("backup_type", ["differential", "Full", "all ", ""])
def test_an_unknown_type_is_refused_and_leaves_no_series(paths, backup_type):
    backup_dir, textfile = paths
    run = {"operation": "backup", "type": backup_type, "status": "failed"}
    if backup_type == "":
        _metrics.record(textfile, backup_dir, run=run)  # empty means "all", as before
        return
    with pytest.raises(BackupError, match="run type %r is not one of full, incremental, config, database, all"
                       % backup_type):
        _metrics.record(textfile, backup_dir, run=run)
    assert not os.path.exists(_metrics.default_state_file(textfile))
    assert not os.path.exists(textfile)


def test_runs_of_unknown_types_an_older_version_recorded_are_forgotten(paths, fixed_usage):
    backup_dir, textfile = paths
    state = {"format": 1, "recovery_test": None, "runs": {
        "backup/differential": {"operation": "backup", "type": "differential", "status": "failed", "finished": 1},
        "backup/full": {"operation": "backup", "type": "full", "status": "success", "finished": 2}}}
    with open(_metrics.default_state_file(textfile), "w") as handle:
        json.dump(state, handle)
    result = _metrics.record(textfile, backup_dir)
    assert "differential" not in result["text"]
    assert value(result, "last_run_success", operation="backup", type="full") == 1
    assert any("backup/differential" in warning for warning in result["warnings"])


def test_a_declared_schedule_keeps_the_time_it_was_first_declared(paths, fixed_usage):
    backup_dir, textfile = paths
    first = _metrics.record(textfile, backup_dir, schedule={"verify": 93600, "recovery_test": 691200})
    since = value(first, "schedule_since_timestamp_seconds", operation="verify")
    assert value(first, "schedule_max_age_seconds", operation="verify") == 93600
    assert since > 0 and first["changed"]
    again = _metrics.record(textfile, backup_dir, schedule={"verify": 93600, "recovery_test": 691200})
    assert not again["changed"]
    later = _metrics.record(textfile, backup_dir, run={"operation": "verify", "status": "success"},
                            schedule={"verify": 3600})
    assert value(later, "schedule_since_timestamp_seconds", operation="verify") == since
    assert value(later, "schedule_max_age_seconds", operation="verify") == 3600
    assert value(later, "schedule_max_age_seconds", operation="recovery_test") is None
    kept = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "full", "status": "success"})
    assert value(kept, "schedule_max_age_seconds", operation="verify") == 3600


@pytest.mark.parametrize("schedule,message", [
    ({"drill": 10}, "schedule operation 'drill'"),
    ({"verify": 0}, "more than 0 seconds"),
    ({"verify": "daily"}, "not a number"),
    (["verify"], "must be a mapping"),
])
def test_a_bad_schedule_is_named(paths, schedule, message):
    backup_dir, textfile = paths
    with pytest.raises(BackupError, match=message):
        _metrics.record(textfile, backup_dir, schedule=schedule)


def test_the_rto_report_reads_the_recorded_drills(paths, fixed_usage, tmp_path):
    backup_dir, textfile = paths
    state_file = _metrics.default_state_file(textfile)
    for seconds in (30.0, 50.0, 40.0):
        _metrics.record(textfile, backup_dir, run={"operation": "dr_simulation", "status": "success",
                                                   "rto_seconds": seconds, "rto_target_seconds": 60})
    _metrics.record(textfile, backup_dir, run={"operation": "recovery_test", "status": "failed"})
    recorded = _metrics.record(textfile, backup_dir, run={"operation": "recovery_test", "status": "success",
                                                          "restore_seconds": 12.5})
    assert value(recorded, "last_run_rto_seconds", operation="dr_simulation", type="all") == 40
    assert value(recorded, "last_run_rto_target_seconds", operation="dr_simulation", type="all") == 60
    path = str(tmp_path / "rto-report.txt")
    report = _metrics.write_rto_report(path, state_file, 92, 60)
    assert report["passed"] and report["rto_seconds"] == 50
    assert report["kinds"]["dr_simulation"] == {"drills": 3, "failed": 0, "worst_seconds": 50.0,
                                                "median_seconds": 40.0, "latest_seconds": 40.0}
    assert report["kinds"]["recovery_test"]["failed"] == 1
    with open(path) as handle:
        text = handle.read()
    assert "RTO MET" in text and "dr_simulation  drills 3, failed 0, worst 50.0 s" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    missed = _metrics.write_rto_report(path, state_file, 92, 45)
    assert not missed["passed"] and missed["run"]["status"] == "failed"
    assert "RTO NOT PROVEN" in open(path).read()


def test_an_rto_report_without_simulations_fails_and_says_so(paths, tmp_path):
    _backup_dir, textfile = paths
    report = _metrics.write_rto_report(str(tmp_path / "r.txt"), _metrics.default_state_file(textfile), 92, 60)
    assert not report["passed"] and report["run"]["status"] == "failed"
    assert "none recorded" in report["text"]
    with pytest.raises(BackupError, match="folder of the RTO report"):
        _metrics.write_rto_report(str(tmp_path / "no" / "r.txt"), _metrics.default_state_file(textfile), 92, 60)


def test_drill_history_is_bounded(paths, monkeypatch):
    backup_dir, textfile = paths
    monkeypatch.setattr(_metrics, "HISTORY_LIMIT", 3)
    for finished in (1, 2, 3, 4, 5):
        _metrics.record(textfile, backup_dir, run={"operation": "recovery_test", "status": "success",
                                                   "finished": time_of(finished)})
    state, _ = _metrics.load_state(_metrics.default_state_file(textfile))
    assert [drill["finished"] for drill in state["drills"]] == [time_of(3), time_of(4), time_of(5)]


def time_of(day):
    return at(12, day).timestamp()


def test_the_remote_copy_is_kept_until_a_push_says_otherwise(paths, fixed_usage):
    backup_dir, textfile = paths
    plain = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "full", "status": "success"})
    assert value(plain, "remote_last_success_timestamp_seconds") is None, "absent where nothing is pushed"
    pushed = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "database", "status": "success"},
                             remote={"newest": "2025-05-28T02:00:00Z", "checked": 1748400000})
    assert value(pushed, "remote_last_success_timestamp_seconds") == 1748397600
    assert value(pushed, "remote_checked_timestamp_seconds") == 1748400000
    later = _metrics.record(textfile, backup_dir, run={"operation": "backup", "type": "full", "status": "failed"})
    assert value(later, "remote_last_success_timestamp_seconds") == 1748397600
    empty = _metrics.record(textfile, backup_dir, run={"operation": "sync", "status": "success"},
                            remote={"newest": None})
    assert value(empty, "remote_last_success_timestamp_seconds") == 0, "0: nothing on the remote"
    with pytest.raises(BackupError, match="remote newest 'yesterday' is not a time"):
        _metrics.record(textfile, backup_dir, run={"operation": "sync", "status": "success"},
                        remote={"newest": "yesterday"})
