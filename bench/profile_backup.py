"""Where the time of one full backup goes: each phase of the engine alone, the engine with parts switched off,
CPU time against wall time, and a cProfile of ``create_backup``. Diagnostic, not part of ``make bench``.

    python bench/profile_backup.py [--workdir /tmp/reddit-backup-bench] [--repeat 3] [--top 20]
                                   [--collections DIR]

Uses the sample app that ``bench/run.py`` seeded and cached in the workdir (run that first). Runs under the
targets' python (``/usr/bin/python3``), re-executing itself there if needed, with ``collections/`` on sys.path.
Each figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TARGET_PYTHON = "/usr/bin/python3"

if os.path.exists(TARGET_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(TARGET_PYTHON) \
        and __name__ == "__main__":
    os.execv(TARGET_PYTHON, [TARGET_PYTHON] + sys.argv)


def _collections_argument() -> str:
    """--collections, read before argparse: the engine must be importable from it at module level."""
    for index, argument in enumerate(sys.argv):
        if argument == "--collections" and index + 1 < len(sys.argv):
            return os.path.abspath(sys.argv[index + 1])
        if argument.startswith("--collections="):
            return os.path.abspath(argument.split("=", 1)[1])
    return os.path.join(REPO, "collections")


COLLECTIONS = _collections_argument()
sys.path.insert(0, COLLECTIONS)
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite  # noqa: E402

try:  # page hashes for incremental chains arrived after the first engine; profile older trees too
    from ansible_collections.devops.reddit_backup.plugins.module_utils._database import pages as _pages  # noqa: E402
except ImportError:
    _pages = None
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import (  # noqa: E402
    BackupRequest, create_backup)

DB_RELPATH = "data/reddit_sentiment.db"


class Clock:
    """Wall time, this process's CPU time (all threads) and its reaped children's CPU time (zstd)."""

    def __enter__(self):
        self.wall = time.monotonic()
        self.own = resource.getrusage(resource.RUSAGE_SELF)
        self.children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc):
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = time.monotonic() - self.wall
        self.own_cpu = (own.ru_utime + own.ru_stime) - (self.own.ru_utime + self.own.ru_stime)
        self.children_cpu = (children.ru_utime + children.ru_stime) - \
            (self.children.ru_utime + self.children.ru_stime)


def measure(label: str, action, repeat: int, setup=None) -> dict:
    """Median wall and CPU of ``action()`` over ``repeat`` runs (``setup()`` first each time, untimed)."""
    walls, own, children = [], [], []
    for _ in range(repeat):
        if setup:
            setup()
        with Clock() as clock:
            action()
        walls.append(clock.wall)
        own.append(clock.own_cpu)
        children.append(clock.children_cpu)
    figures = {"label": label, "wall": statistics.median(walls), "min": min(walls),
               "python_cpu": statistics.median(own), "children_cpu": statistics.median(children)}
    print("| %s | %.2f | %.2f | %.2f | %.2f |"
          % (label, figures["wall"], figures["min"], figures["python_cpu"], figures["children_cpu"]), flush=True)
    return figures


def profile_options(parser: argparse.ArgumentParser) -> tuple:
    """The options every profiler takes, parsed: (options, app root, database) of the app run.py seeded."""
    parser.add_argument("--workdir", default="/tmp/reddit-backup-bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--collections", default=COLLECTIONS, help="the collections/ tree whose engine to profile")
    options = parser.parse_args()
    app_root = os.path.join(options.workdir, "app")
    database = os.path.join(app_root, DB_RELPATH)
    if not os.path.isfile(database):
        raise SystemExit("no seeded app in %s: run bench/run.py --workdir %s first" % (app_root, options.workdir))
    return options, app_root, database


def main() -> int:
    options, app_root, database = profile_options(argparse.ArgumentParser(description=__doc__.strip().splitlines()[0]))
    scratch = tempfile.mkdtemp(prefix="profile-", dir=options.workdir)
    try:
        return _profile(options, app_root, database, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # also when the output pipe closes early


def _profile(options, app_root: str, database: str, scratch: str) -> int:
    backup_dir = os.path.join(scratch, "backups")
    snapshot = os.path.join(scratch, "snapshot.db")
    plain_tar = os.path.join(scratch, "plain.tar")

    def fresh_backup_dir():
        shutil.rmtree(backup_dir, ignore_errors=True)

    def fresh_snapshot():
        for path in (snapshot, snapshot + "-journal"):
            if os.path.exists(path):
                os.remove(path)

    def backup(**options_):
        return create_backup(BackupRequest(app_root=app_root, backup_dir=backup_dir, **options_))

    def sha256_file(path):
        import hashlib
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)

    print("engine: %s" % COLLECTIONS)
    print("python %s, sqlite %s, %d cores, load average %s; database %.0f MB; median of %d runs\n" % (
        sys.version.split()[0], _sqlite.sqlite3.sqlite_version, os.cpu_count(),
        " ".join("%.2f" % value for value in os.getloadavg()), os.path.getsize(database) / 2 ** 20, options.repeat))
    print("| phase | wall s | min s | python CPU s | children CPU s |")
    print("|---|---|---|---|---|")
    measure("snapshot (online backup API, pages=-1) alone", lambda: _sqlite.snapshot(database, snapshot),
            options.repeat, fresh_snapshot)
    measure("quick_check of the snapshot alone", lambda: _sqlite.check_integrity(snapshot, "quick"), options.repeat)
    measure("sha256 of the snapshot alone (read + hash)", lambda: sha256_file(snapshot), options.repeat)
    if _pages is not None:
        page_size = _sqlite.database_facts(snapshot)["page_size"]
        measure("page hashes + whole sha256 of the snapshot alone (chain index; one read)",
                lambda: _pages.page_hashes(snapshot, page_size), options.repeat)

    def write_plain_tar():
        result = backup(compression="none", integrity="none")
        shutil.copyfile(result["archive"], plain_tar)

    fresh_backup_dir()
    write_plain_tar()
    measure("zstd -3 -T0 of the uncompressed archive alone", lambda: subprocess.run(
        ["zstd", "-q", "-3", "-T0", "-c", plain_tar], stdout=subprocess.DEVNULL, check=True), options.repeat)
    measure("gzip -6 of the uncompressed archive alone", lambda: subprocess.run(
        ["gzip", "-6", "-n", "-c", plain_tar], stdout=subprocess.DEVNULL, check=True), 1)
    measure("create_backup compression=none integrity=none", lambda: backup(compression="none", integrity="none"),
            options.repeat, fresh_backup_dir)
    measure("create_backup compression=zstd integrity=none", lambda: backup(integrity="none"), options.repeat,
            fresh_backup_dir)
    measure("create_backup compression=none integrity=quick", lambda: backup(compression="none"), options.repeat,
            fresh_backup_dir)
    measure("create_backup defaults (zstd, quick)", lambda: backup(), options.repeat, fresh_backup_dir)

    print("\ncProfile of create_backup (defaults), main thread only (the integrity check and the compressor's "
          "pump run in other threads; the compressor is its own process):\n")
    fresh_backup_dir()
    profile = cProfile.Profile()
    with Clock() as clock:
        profile.runcall(backup)
    print("wall %.2f s, python CPU %.2f s, zstd CPU %.2f s\n" % (clock.wall, clock.own_cpu, clock.children_cpu))
    for sort in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(profile, stream=stream).strip_dirs().sort_stats(sort).print_stats(options.top)
        text = stream.getvalue()
        print("sorted by %s:\n%s" % (sort, text[text.find("ncalls"):].rstrip()))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
