"""A live database under a writer: the writer's commit latency alone, with Litestream replicating to a local file
replica (issue 17), during a full backup, an incremental and a restore (issue 16: never stalled more than 50 ms);
Litestream's CPU and peak memory meanwhile; and the restore time of the database from the replica beside the
restore from our archive of the same database (issue 17)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time

import _fixtures
import _litestream
from _ansible import engine_step, last_json_line
from _files import DB_RELPATH, clean_dir, warm_page_cache
from _machine import loadavg
from _report import command_lines, fmt, markdown_table
from _stats import mb, ratio, target
from _steps import Step, run_methods
from _writer import STALL_MS, TABLE, WRITER, Writer, in_window, latency_summary
from backup import find_databases
from incremental import EngineMethod as BackupMethod, copy_app
from restore import EngineMethod as ArchiveRestoreMethod, prepare_damaged_app

NAME = "live"
STATE = "live-state"
DEFAULT_SECONDS = 30  # the writer-alone and Litestream rows: a fixed period
DEFAULT_INTERVAL_MS = 100  # issue 17's writer: a row every 100 ms
WARMUP_S = 1.0  # commits before the clock starts: the writer's first ones open files and warm its cache
LEVELS_SLACK_S = 10.0  # past a window's planned end: the stop, the catch-up check, a compaction's seconds of work
WRITER_KEYS = ("alone", "litestream", "litestream_sftp", "full_backup", "incremental", "restore")
RESTORE_KEYS = ("litestream_restore", "replica_engine", "archive_engine")
DURING = {"full_backup": "a full backup", "incremental": "an incremental backup",
          "restore": "a database restore (of another copy of the app)"}


class _Sleep:
    """The clock of the writer-alone and Litestream rows: a fixed period."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def prepare(self, out: str):
        return None

    def steps(self, out: str) -> list:
        return [Step("writer for %g s" % self.seconds, argv=["sleep", "%g" % self.seconds])]

    def result(self, out: str, runs: list) -> dict:
        return {}


class WriterMethod:
    """The writer commits on the live database from before the clock starts until ``inner``'s steps end (a
    fixed period, or an engine call); its latencies in that window are the row's figures."""

    def __init__(self, key: str, title: str, inner, database: str, interval_s: float) -> None:
        self.key = key
        self.title = title
        self.inner = inner
        self.database = database
        self.interval_s = interval_s
        self.writer = None
        self.window_start = None

    def prepare(self, out: str) -> dict:
        prepared = dict(self.inner.prepare(out) or {})
        prepared.update(self.before_writer(out))
        self.writer = Writer(self.database, os.path.join(out, "commits.log"), self.interval_s)
        self.writer.start()
        time.sleep(WARMUP_S)
        self.window_start = time.time()
        return prepared

    def before_writer(self, out: str) -> dict:
        return {}

    def steps(self, out: str) -> list:
        return self.inner.steps(out)

    def result(self, out: str, runs: list) -> dict:
        window_end = time.time()
        found = self.at_window_end(window_end)
        latencies = in_window(self.writer.stop(), self.window_start, window_end)
        found.update(self.after_writer(out))
        found.update(self.inner.result(out, runs))
        found.update(latency_summary(latencies), window_s=round(window_end - self.window_start, 2),
                     latencies_ms=[round(latency * 1000, 3) for latency in latencies])
        return found

    def at_window_end(self, window_end: float) -> dict:
        return {}

    def after_writer(self, out: str) -> dict:
        return {}

    def close(self) -> None:
        """Stops what a failed run left running (a step that failed ends the bench before ``result``)."""
        if self.writer is not None:
            self.writer.stop()


class ReplicatedWriterMethod(WriterMethod):
    """The writer while Litestream replicates the database (to a local file replica, or over SFTP to a loopback
    sshd): Litestream is started and its start-up work done (the first snapshot and compaction: a copy of the whole
    database each) before the writer starts (untimed), and so is the first level-2 or level-3 compaction (another
    copy) when the window would hold its clock boundary; its CPU is read over the window."""

    def __init__(self, *args, binary: str, replica) -> None:
        super().__init__(*args)
        self.binary = binary
        self.replica = replica  # out -> the replica's settings (a fresh, empty replica each run)
        self.replicator = None
        self.cpu_start = None

    def before_writer(self, out: str) -> dict:
        config = _litestream.write_config(os.path.join(out, "litestream.yml"), self.database, self.replica(out))
        self.replicator = _litestream.Replicator(self.binary, config, self.database,
                                                 os.path.join(out, "litestream.log"))
        self.replicator.start()
        start_up = self.replicator.wait_synced(settled=True)
        now = time.time()
        due = _litestream.levels_due(now, now + WARMUP_S + self.inner.seconds + LEVELS_SLACK_S)
        if due:
            start_up += self.replicator.wait_synced(settled=True, levels=due, timeout=3700)
        return {"start_up_s": round(start_up, 2), "levels_waited": list(due)}

    def prepare(self, out: str) -> dict:
        prepared = super().prepare(out)
        self.cpu_start = _litestream.cpu_seconds(self.replicator.process.pid)
        return prepared

    def at_window_end(self, window_end: float) -> dict:
        pid = self.replicator.process.pid
        cpu = _litestream.cpu_seconds(pid) - self.cpu_start
        window = window_end - self.window_start
        return {"litestream_cpu_s": round(cpu, 3), "litestream_cpu_s_per_min": round(cpu / window * 60, 3),
                "litestream_hwm_mb": mb(_litestream.status_bytes(pid, "VmHWM")),
                "litestream_rss_mb": mb(_litestream.status_bytes(pid, "VmRSS"))}

    def after_writer(self, out: str) -> dict:
        try:
            caught_up = self.replicator.wait_synced(timeout=120)
        finally:
            self.replicator.stop()
            self.replicator.remove_local_state()
        return {"litestream_catch_up_s": caught_up}

    def close(self) -> None:
        super().close()
        if self.replicator is not None:
            self.replicator.stop()


def _rows(database: str) -> int:
    db = sqlite3.connect("file:%s?mode=ro" % database, uri=True)
    try:
        return db.execute("SELECT count(*) FROM %s" % TABLE).fetchone()[0]
    finally:
        db.close()


class LitestreamRestoreMethod:
    """`litestream restore -o NEW DB`: the CLI alone, into a new file (no check, no swap)."""

    key = "litestream_restore"
    title = "litestream restore -o (CLI alone, into a new file)"

    def __init__(self, replica: dict) -> None:
        self.replica = replica

    def steps(self, out: str) -> list:
        return [Step("litestream restore", argv=[self.replica["binary"], "restore", "-no-expand-env", "-config",
                                                 self.replica["config"], "-o", os.path.join(out, "restored.db"),
                                                 self.replica["database"]])]

    def result(self, out: str, runs: list) -> dict:
        return _same_rows(os.path.join(out, "restored.db"), self.replica, self.key)


REPLICA_RESTORE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.restore import (
    ReplicaRestoreRequest, restore_from_replica)
print(json.dumps(restore_from_replica(ReplicaRestoreRequest(
    app_root=sys.argv[2], databases=[sys.argv[3]], replica_config=sys.argv[4], litestream_binary=sys.argv[5],
    local_replica=sys.argv[6], dest=sys.argv[7]))))
"""


class ReplicaEngineMethod:
    """The engine's replica restore, `restore_from_replica(ReplicaRestoreRequest(...))`, into a damaged copy of
    the app: Litestream's restore into the staging folder, `PRAGMA integrity_check`, the swap and safety copy."""

    key = "replica_engine"
    title = "engine restore_from_replica() into the app (diagnostic)"

    def __init__(self, collections: str, app_root: str, databases: list, replica: dict) -> None:
        self.collections = collections
        self.app_root = app_root
        self.databases = databases
        self.replica = replica

    def prepare(self, out: str) -> dict:
        return prepare_damaged_app(self.app_root, os.path.join(out, "app"), self.databases)

    def steps(self, out: str) -> list:
        return [engine_step("restore_from_replica", REPLICA_RESTORE, self.collections,
                            [self.app_root, DB_RELPATH, self.replica["config"], self.replica["binary"],
                             self.replica["folder"], os.path.join(out, "app")], "ReplicaRestoreRequest")]

    def result(self, out: str, runs: list) -> dict:
        data = last_json_line(runs[-1].stdout)
        if data.get("source") != "replica" or not data.get("restored"):
            raise RuntimeError("%s: the replica restore replaced nothing: %s" % (self.key, data))
        found = _same_rows(os.path.join(out, "app", DB_RELPATH), self.replica, self.key)
        found.update(module_duration=data["duration"], recovery_point=data.get("recovery_point"))
        return found


def _same_rows(restored: str, replica: dict, what: str) -> dict:
    """The restored database holds every row the writer committed before the replica was made (untimed)."""
    found = _rows(restored)
    if found != replica["writer_rows"]:
        raise RuntimeError("%s: the restored database holds %d writer rows, the live one %d"
                           % (what, found, replica["writer_rows"]))
    return {"restored_bytes": os.path.getsize(restored), "writer_rows": found, "restored_ok": True}


def _state(options, workdir: str, app_root: str, databases: list) -> dict:
    """A copy of the app the writer may change (the cached app stays as seeded) and its full backup (the parent
    of the incremental row, the archive of the restore row), untimed."""
    folder = os.path.join(workdir, STATE)
    clean_dir(folder)
    print("bench: preparing the live family's copy of the app and its full backup (untimed) ...", file=sys.stderr)
    started = time.monotonic()
    live_app = os.path.join(folder, "app")
    copy_app(app_root, live_app, databases)
    parent = _fixtures.engine_backup(options.collections, live_app, os.path.join(folder, "parent"))
    return {"folder": folder, "app_root": live_app, "database": os.path.join(live_app, DB_RELPATH),
            "parent": parent, "seconds": round(time.monotonic() - started, 1)}


def _sftp_server(state: dict):
    """tests/servers.py's backup server: sshd on 127.0.0.1 with its own host key and one client key."""
    from tests.servers import BackupServer  # the test suite's real sshd; only the SFTP row needs it
    base = os.path.join(state["folder"], "sshd")
    os.makedirs(base)
    return BackupServer(base)


def _writer_methods(options, workdir: str, state: dict, databases: list, wanted: list) -> list:
    interval = getattr(options, "writer_interval_ms", DEFAULT_INTERVAL_MS) / 1000.0  # seconds
    seconds = getattr(options, "live_seconds", DEFAULT_SECONDS)
    database = state["database"]
    backup_state = {"app_root": state["app_root"], "parent": state["parent"]}
    parent_fixture = {"archive": state["parent"]["archive"],
                      "databases": {db["path"]: db["sha256"] for db in state["parent"]["databases"]}}
    made = {
        "alone": lambda: WriterMethod("alone", "writer alone (baseline)", _Sleep(seconds), database, interval),
        "litestream": lambda: ReplicatedWriterMethod(
            "litestream", "writer, Litestream replicating to a local file replica", _Sleep(seconds), database,
            interval, binary=_litestream.binary(workdir),
            replica=lambda out: _litestream.file_replica(os.path.join(out, "replica"))),
        "litestream_sftp": lambda: ReplicatedWriterMethod(
            "litestream_sftp", "writer, Litestream replicating over SFTP to a loopback sshd", _Sleep(seconds),
            database, interval, binary=_litestream.binary(workdir), replica=_sftp_replica(state)),
        "full_backup": lambda: WriterMethod(
            "full_backup", "writer during a full backup (engine create_backup)",
            BackupMethod("engine_full", "full", backup_state, options.collections), database, interval),
        "incremental": lambda: WriterMethod(
            "incremental", "writer during an incremental (engine create_backup)",
            BackupMethod("engine_incr", "incremental", backup_state, options.collections), database, interval),
        "restore": lambda: WriterMethod(
            "restore", "writer during a database restore of another copy (engine restore)",
            ArchiveRestoreMethod(options.collections, state["app_root"], databases, parent_fixture), database,
            interval),
    }
    return [made[key]() for key in WRITER_KEYS if key in wanted]


def _sftp_replica(state: dict):
    """A fresh folder on the loopback SFTP server per run (the server started once for the family)."""
    server = state["sftp"]

    def replica(out: str) -> dict:
        folder = os.path.join(server.folder, os.path.basename(out), str(time.time_ns()))
        return _litestream.sftp_replica("127.0.0.1", server.port, server.user, folder, server.ssh_key,
                                        server.known_hosts)
    return replica


def _replica(workdir: str, state: dict) -> dict:
    """The replica the restore rows read: Litestream's first snapshot of the database as the writer rows left it
    (untimed; the writer stopped), made once."""
    folder = os.path.join(state["folder"], "replica")
    shutil.rmtree(folder, ignore_errors=True)
    binary = _litestream.binary(workdir)
    config = _litestream.write_config(os.path.join(state["folder"], "litestream.yml"), state["database"],
                                      _litestream.file_replica(folder))
    replicator = _litestream.Replicator(binary, config, state["database"],
                                        os.path.join(state["folder"], "litestream.log"))
    print("bench: replicating the live copy once for the restore rows (untimed) ...", file=sys.stderr)
    replicator.start()
    try:
        seconds = replicator.wait_synced(settled=True)
    finally:
        replicator.stop()
        replicator.remove_local_state()  # the archive of the restore rows holds the app, not Litestream's cache
    return {"binary": binary, "config": config, "folder": folder, "database": state["database"],
            "writer_rows": _rows(state["database"]), "start_up_s": seconds}


def _restore_methods(options, workdir: str, state: dict, databases: list, wanted: list) -> tuple:
    replica = _replica(workdir, state)
    archive = _fixtures.engine_backup(options.collections, state["app_root"],
                                      os.path.join(state["folder"], "archive"))
    fixture = {"archive": archive["archive"], "databases": {db["path"]: db["sha256"] for db in archive["databases"]}}
    archive_method = ArchiveRestoreMethod(options.collections, state["app_root"], databases, fixture)
    archive_method.key = "archive_engine"
    archive_method.title = "engine restore() of our archive into the app (diagnostic)"
    made = {"litestream_restore": lambda: LitestreamRestoreMethod(replica),
            "replica_engine": lambda: ReplicaEngineMethod(options.collections, state["app_root"], databases, replica),
            "archive_engine": lambda: archive_method}
    warm_page_cache(replica["folder"], archive["archive"])
    return [made[key]() for key in RESTORE_KEYS if key in wanted], replica, archive


def run(options, workdir: str, app_root: str, only_methods=None) -> dict:
    wanted = [key for key in WRITER_KEYS + RESTORE_KEYS if not only_methods or key in only_methods]
    if not wanted:
        return {"skipped": "no method of this family in --methods"}
    databases = find_databases(app_root)
    state = _state(options, workdir, app_root, databases)
    state["sftp"] = _sftp_server(state) if "litestream_sftp" in wanted else None
    methods = []
    try:
        records = {}
        methods = _writer_methods(options, workdir, state, databases, wanted)
        if methods:
            records.update(run_methods(NAME, methods, options.repeat, workdir)[0])
        replica = archive = None
        if any(key in wanted for key in RESTORE_KEYS):
            restore_methods, replica, archive = _restore_methods(options, workdir, state, databases, wanted)
            records.update(run_methods(NAME + "-restore", restore_methods, options.repeat, workdir)[0])
    finally:
        for method in methods:
            method.close()
        if state["sftp"]:
            state["sftp"].stop()
        if not getattr(options, "keep_outputs", False):
            for folder in (os.path.join(workdir, "out", NAME), os.path.join(workdir, "out", NAME + "-restore"),
                           state["folder"]):
                shutil.rmtree(folder, ignore_errors=True)
    for record in records.values():
        record["figures"] = _figures(record)
    ratios, targets = _targets(records)
    interval_ms = getattr(options, "writer_interval_ms", DEFAULT_INTERVAL_MS)
    return {"databases": databases, "methods": list(records.values()), "ratios": ratios, "targets": targets,
            "loadavg_end": loadavg(),
            "measured": {"writer_interval_ms": interval_ms,
                         "live_seconds": getattr(options, "live_seconds", DEFAULT_SECONDS)},
            "writer": {"interval_ms": interval_ms,
                       "seconds": getattr(options, "live_seconds", DEFAULT_SECONDS), "warmup_s": WARMUP_S,
                       "code": WRITER.strip()},
            "state": {"seconds": state["seconds"], "parent": state["parent"]["archive"]},
            "replica": replica, "archive": archive and archive["archive"]}


def _figures(record: dict) -> dict:
    """What the README shows beside a row's time: the writer's latencies pooled over its runs, Litestream's
    CPU and memory (worst run), the first snapshot's time."""
    runs = record["runs"]
    figures = {}
    if "latencies_ms" in runs[0]:
        figures.update(latency_summary([value / 1000.0 for run in runs for value in run["latencies_ms"]]))
        figures["window_s"] = round(sum(run["window_s"] for run in runs) / len(runs), 2)
    if "litestream_cpu_s_per_min" in runs[0]:
        figures["litestream_cpu_s_per_min"] = max(run["litestream_cpu_s_per_min"] for run in runs)
        figures["litestream_hwm_mb"] = max(run["litestream_hwm_mb"] for run in runs)
        figures["litestream_rss_mb"] = max(run["litestream_rss_mb"] for run in runs)
        figures["litestream_start_up_s"] = max(run["prepared"]["start_up_s"] for run in runs)
    return figures


def _targets(records: dict) -> tuple:
    alone = records.get("alone", {}).get("figures", {}).get("p99_ms")
    archive = records.get("archive_engine", {}).get("summary", {}).get("median_s")
    ratios = {}
    for key, record in records.items():
        figures = record["figures"]
        ratios[key] = {"p99_vs_alone": ratio(figures.get("p99_ms"), alone),
                       "time_vs_archive_engine": ratio(record["summary"]["median_s"], archive)
                       if key in RESTORE_KEYS else None}
    targets = []
    for key, during in DURING.items():
        figures = records.get(key, {}).get("figures")
        if figures and figures.get("p99_ms") is not None:
            targets.append(target("the writer's p99 commit latency during %s at most %d ms" % (during, STALL_MS),
                                  figures["p99_ms"], figures["p99_ms"] <= STALL_MS, " ms"))
            targets.append(target("(diagnostic) no commit during %s took more than %d ms (the slowest)"
                                  % (during, STALL_MS), figures["max_ms"], figures["max_ms"] <= STALL_MS, " ms",
                                  diagnostic=True))
    return ratios, targets


def render(result: dict) -> str:
    if result.get("skipped"):
        return "## Live writer: skipped (%s)" % result["skipped"]
    writer = result["writer"]
    records = {record["key"]: record for record in result["methods"]}
    lines = ["## Live writer: commit latency (a row every %d ms) alone, replicated, during backups and a restore"
             % writer["interval_ms"], ""]
    rows = []
    for key in WRITER_KEYS:
        if key not in records:
            continue
        record, figures = records[key], records[key]["figures"]
        rows.append([record["title"], "%.1f" % figures["window_s"], figures["commits"], figures["p50_ms"],
                     figures["p99_ms"], figures["max_ms"], figures["over_%d_ms" % STALL_MS],
                     fmt(result["ratios"][key]["p99_vs_alone"], "%.2fx"),
                     fmt(figures.get("litestream_cpu_s_per_min"), "%.2f"), fmt(figures.get("litestream_hwm_mb"),
                                                                               "%.1f")])
    if rows:
        lines += [markdown_table(["row", "window s (mean)", "commits", "p50 ms", "p99 ms", "max ms",
                                  "commits > %d ms" % STALL_MS, "p99 / alone", "Litestream CPU s per min",
                                  "Litestream VmHWM MB"], rows), ""]
    rows = []
    for key in RESTORE_KEYS:
        if key not in records:
            continue
        summary = records[key]["summary"]
        rows.append([records[key]["title"], "%.2f" % summary["median_s"], "%.2f" % summary["min_s"],
                     "%.2f" % summary["cpu_s"], "%.1f" % summary["tree_peak_mb"],
                     fmt(result["ratios"][key]["time_vs_archive_engine"], "%.2fx")])
    if rows:
        lines += ["### Restore of the same database: from the Litestream replica, from our archive", "",
                  markdown_table(["method", "median s", "min s", "CPU s", "peak tree RSS MB",
                                  "time / archive restore"], rows), ""]
    lines += ["- " + found["display"] for found in result["targets"]]
    if result.get("replica"):
        lines.append("- the restore rows' replica: Litestream's start-up (first snapshot and compaction) took %.1f s "
                     "(untimed); %d writer rows in it" % (result["replica"]["start_up_s"],
                                                          result["replica"]["writer_rows"]))
    lines.append("- load average at the end: %s" % " ".join(str(value) for value in result["loadavg_end"]))
    lines += [""] + command_lines(result["methods"])
    return "\n".join(lines)
