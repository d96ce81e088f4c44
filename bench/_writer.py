"""A live writer for the benchmarks: a process of the targets' python committing one row at a fixed interval to
a database of the app, timing each commit itself; and the figures read from what it printed (percentiles of the
commit latency over a window)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time

from _paths import TARGET_PYTHON

# One commit per interval, as the app's collector would store a post: BEGIN IMMEDIATE (so a lock wait counts as
# latency), one INSERT of a ~500-byte row, COMMIT, with SQLite's defaults (WAL as the app's database is,
# synchronous FULL). It prints, per commit, when it began (epoch) and how long it took, until SIGTERM.
WRITER = """
import signal, sqlite3, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
interval = float(sys.argv[2])
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS bench_writer (id INTEGER PRIMARY KEY, at REAL NOT NULL, body TEXT NOT NULL)")
out = open(sys.argv[3], "w", buffering=1)
body = "x" * 500
while not stop:
    started = time.time()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO bench_writer (at, body) VALUES (?, ?)", (started, body))
    db.execute("COMMIT")
    out.write("%.6f %.6f\\n" % (started, time.time() - started))
    time.sleep(max(0.0, interval - (time.time() - started)))
"""

TABLE = "bench_writer"
STALL_MS = 50  # issue 16: no commit stalled more than this by a backup or restore


class Writer:
    """The writer on ``database``, its commits logged to ``log``; ``start`` returns once it has committed."""

    def __init__(self, database: str, log: str, interval_s: float) -> None:
        self.database = database
        self.log = log
        self.interval_s = interval_s
        self.process = None

    def start(self, timeout: float = 30) -> None:
        self.process = subprocess.Popen([TARGET_PYTHON, "-c", WRITER.strip(), self.database, str(self.interval_s),
                                         self.log], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not (os.path.exists(self.log) and os.path.getsize(self.log)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("bench: the writer on %s did not commit (exit %s)" % (self.database,
                                                                                       self.process.returncode))
            time.sleep(0.05)

    def stop(self) -> list:
        """Stops it (SIGTERM: it ends after its current commit); returns [(began, latency s)] of every commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with open(self.log) as handle:
            return parse_commits(handle.read())


def parse_commits(text: str) -> list:
    """[(began, latency s)] from the writer's lines; a line cut short (the writer killed mid-write) is left out."""
    commits = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        try:
            commits.append((float(fields[0]), float(fields[1])))
        except ValueError:
            continue
    return commits


def in_window(commits: list, start: float, end: float) -> list:
    """Latencies (s) of the commits that began in [start, end]."""
    return [latency for began, latency in commits if start <= began <= end]


def percentile(values: list, fraction: float):
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies: list) -> dict:
    """Commits, p50, p99, max (ms) and how many commits took longer than STALL_MS."""
    def ms(value):
        return None if value is None else round(value * 1000, 2)
    return {"commits": len(latencies), "p50_ms": ms(percentile(latencies, 0.50)),
            "p99_ms": ms(percentile(latencies, 0.99)), "max_ms": ms(max(latencies) if latencies else None),
            "over_%d_ms" % STALL_MS: sum(1 for latency in latencies if latency * 1000 > STALL_MS)}
