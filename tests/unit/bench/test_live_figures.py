"""The pure figures of the bench's live family: the writer's lines, the commit-latency percentiles over a window,
and Litestream's CPU and peak memory read from /proc (bench/_writer.py, bench/_litestream.py)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "bench"))

import _litestream  # noqa: E402
import _writer  # noqa: E402


def test_the_writers_lines_are_read_and_a_line_cut_short_is_left_out():
    text = "1700000000.100000 0.000812\n1700000000.200000 0.051000\n1700000000.3000"
    assert _writer.parse_commits(text) == [(1700000000.1, 0.000812), (1700000000.2, 0.051)]
    assert _writer.parse_commits("not a number here\n\n") == []


def test_only_the_commits_that_began_in_the_window_count():
    commits = [(9.9, 0.5), (10.0, 0.001), (12.0, 0.002), (15.0, 0.003), (15.1, 0.9)]
    assert _writer.in_window(commits, 10.0, 15.0) == [0.001, 0.002, 0.003]


@pytest.mark.parametrize("fraction, expected", [(0.5, 50), (0.99, 99), (1.0, 100), (0.0, 1), (0.001, 1)])
def test_the_nearest_rank_percentile(fraction, expected):
    assert _writer.percentile(list(range(100, 0, -1)), fraction) == expected


def test_a_percentile_of_few_values_is_one_of_them_and_none_of_nothing():
    assert _writer.percentile([0.003, 0.001, 0.002], 0.99) == 0.003
    assert _writer.percentile([0.003, 0.001, 0.002], 0.5) == 0.002
    assert _writer.percentile([], 0.5) is None


def test_the_latency_summary_in_milliseconds_with_the_stalls_over_50_ms():
    latencies = [0.001] * 98 + [0.060, 0.200]
    assert _writer.latency_summary(latencies) == {"commits": 100, "p50_ms": 1.0, "p99_ms": 60.0, "max_ms": 200.0,
                                                  "over_50_ms": 2}
    assert _writer.latency_summary([]) == {"commits": 0, "p50_ms": None, "p99_ms": None, "max_ms": None,
                                           "over_50_ms": 0}


def test_cpu_seconds_are_utime_plus_stime_after_a_name_with_spaces_and_parentheses():
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    stat = "4242 (lite stream) (x)) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 130 7 3 20 0 12 0 99 0\n"
    assert _litestream.parse_cpu_seconds(stat, clock_ticks=100) == pytest.approx(3.8)


def test_cpu_seconds_of_this_process_read_from_proc():
    with open("/proc/self/stat") as handle:
        assert _litestream.parse_cpu_seconds(handle.read()) >= 0
    assert _litestream.cpu_seconds(os.getpid()) > 0


def test_status_fields_in_bytes():
    status = "Name:\tlitestream\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n"
    assert _litestream.parse_status_bytes(status, "VmHWM") == 50 * 1024 * 1024
    assert _litestream.parse_status_bytes(status, "VmRSS") == 40 * 1024 * 1024
    assert _litestream.parse_status_bytes(status, "VmSwap") is None
    assert _litestream.status_bytes(os.getpid(), "VmHWM") >= _litestream.status_bytes(os.getpid(), "VmRSS") > 0


def test_the_litestream_configuration_names_the_database_and_its_file_replica(tmp_path):
    config = _litestream.write_config(str(tmp_path / "litestream.yml"), "/srv/app/data/a b.db",
                                      _litestream.file_replica("/srv/replica"))
    yaml = pytest.importorskip("yaml")
    with open(config) as handle:
        assert yaml.safe_load(handle) == {"dbs": [{"path": "/srv/app/data/a b.db", "replica": {
            "type": "file", "path": "/srv/replica", "sync-interval": "1s"}}]}


def test_an_sftp_replica_pins_the_servers_host_key_from_known_hosts(tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB comment\n")
    replica = _litestream.sftp_replica("127.0.0.1", 2222, "root", "/srv/backups/app", "/keys/id", str(known_hosts))
    assert replica == {"type": "sftp", "host": "127.0.0.1:2222", "user": "root", "path": "/srv/backups/app",
                       "key-path": "/keys/id", "host-key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"}


def test_the_replica_is_caught_up_when_its_files_reach_the_local_transaction():
    files = [{"level": 0, "min_txid": "0000000000000001", "max_txid": "000000000000001a"},
             {"level": 1, "min_txid": "0000000000000001", "max_txid": "0000000000000010"}]
    assert _litestream.replica_holds("000000000000001a", files)
    assert not _litestream.replica_holds("000000000000001b", files)
    assert not _litestream.replica_holds("000000000000001a", files, settled=True)
    assert _litestream.replica_holds("000000000000001a", files + [{"level": 9, "max_txid": "0000000000000001"}],
                                     settled=True)
    assert not _litestream.replica_holds("000000000000001a", files[:1] + [{"level": 9, "max_txid": "01"}],
                                         settled=True)
    assert not _litestream.replica_holds(None, files) and not _litestream.replica_holds("0000000000000001", [])


def test_a_window_waits_for_the_first_level_2_or_3_compaction_only_when_it_would_hold_its_clock_boundary():
    hour = 1_796_000_400  # an epoch second on an hour boundary
    assert _litestream.levels_due(hour + 10, hour + 50) == ()
    assert _litestream.levels_due(hour + 280, hour + 320) == (2,)  # the 5-minute boundary at hour + 300
    assert _litestream.levels_due(hour - 20, hour + 20) == (2, 3)
    settled = [{"level": 0, "max_txid": "1a"}, {"level": 1, "max_txid": "1a"}, {"level": 9, "max_txid": "01"}]
    assert _litestream.replica_holds("1a", settled, settled=True)
    assert not _litestream.replica_holds("1a", settled, settled=True, levels=(2,))
    assert _litestream.replica_holds("1a", settled + [{"level": 2, "max_txid": "1a"}], settled=True, levels=(2,))


def test_litestreams_own_files_lie_beside_the_database():
    assert _litestream.local_state("/srv/app/data/a.db") == "/srv/app/data/.a.db-litestream"


def test_a_live_family_run_is_recorded_with_its_latencies_and_rendered(tmp_path):
    import importlib.util
    import json
    import _measured
    spec = importlib.util.spec_from_file_location("render_measurements", os.path.join(
        os.path.dirname(_measured.__file__), "..", "tools", "render_measurements.py"))
    renderer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(renderer)
    summary = {"median_s": 30.0, "min_s": 30.0, "cpu_s": 0.1, "tree_peak_mb": 1.8}
    figures = dict(_writer.latency_summary([0.001, 0.002, 0.070]), litestream_cpu_s_per_min=0.4,
                   litestream_hwm_mb=50.0)
    family = {"loadavg_end": [1.0, 1.0, 1.0], "seconds": 60.0, "targets": [], "measured": {"writer_interval_ms": 100},
              "ratios": {"litestream": {"p99_vs_alone": 1.5, "time_vs_archive_engine": None},
                         "archive_engine": {"p99_vs_alone": None, "time_vs_archive_engine": 1.0}},
              "methods": [{"key": "litestream", "title": "writer, Litestream", "summary": summary, "runs": [{}],
                           "figures": figures},
                          {"key": "archive_engine", "title": "archive", "summary": summary, "runs": [{}]}]}
    results = {"machine": {"code": {"commit": "abc1234", "dirty": []}, "nproc": 2, "cpu": "cpu", "zstd": "zstd",
                           "ansible_core": "core", "loadavg_start": [0.5, 0.5, 0.5]},
               "app": {"seed": {"summary": {"rows": 10}}, "database_bytes": 2 ** 20}, "options": {"repeat": 1},
               "families": {"live": family}}
    path = tmp_path / "measured.json"
    measured = _measured.record(str(path), results)
    recorded = measured["families"]["live"]
    assert recorded["writer_interval_ms"] == 100
    assert recorded["methods"][0]["p99_ms"] == 70.0 and recorded["methods"][0]["litestream_hwm_mb"] == 50.0
    text = renderer.bench_live(json.loads(path.read_text()))
    assert "| `writer, Litestream` | 3 | 2.0 | 70.0 | 70.0 | 1.50x | 0.40 | 50.0 |" in text
    assert "| `archive` | 30.00 | 0.10 | 1.8 | 1.00x |" in text


def test_make_bench_runs_the_live_family_and_leaves_the_1_gb_memory_family_to_its_own_target():
    import run
    options = run.parse_args([])
    assert "live" in options.only and "memory" not in options.only
    assert (options.live_seconds, options.writer_interval_ms) == (30, 100)
    assert run.parse_args(["--only", "memory"]).only == ["memory"]
