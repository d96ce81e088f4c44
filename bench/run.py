"""Benchmarks of devops.reddit_backup against the guide's manual method. See bench/README.md.

    python bench/run.py [--db-size-mb 400] [--repeat 3] [--workdir DIR]
                        [--only backup,verify,restore,incremental,live] [--methods guide,ansible,engine,...]
                        [--live-seconds 30] [--writer-interval-ms 100]
    python bench/run.py --only memory --db-size-mb 1024 --repeat 1     (not in the default run)
                        [--collections DIR] [--seed 0] [--keep-outputs] [--output FILE]

Prints the machine, then a markdown table per benchmark family; writes everything to bench/results/latest.json
and the figures the READMEs show to bench/results/measured.json (committed; tools/render_measurements.py renders
them into the READMEs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _files  # noqa: E402
import _machine  # noqa: E402
import _paths  # noqa: E402
import _report  # noqa: E402
import _stats  # noqa: E402
import _fixtures  # noqa: E402
import _measured  # noqa: E402
import backup  # noqa: E402
import incremental  # noqa: E402
import live  # noqa: E402
import memory  # noqa: E402
import restore  # noqa: E402
import verify  # noqa: E402

# One module per benchmark family: NAME, run(options, workdir, app_root, only_methods) -> dict, render(dict) -> str.
FAMILIES = {module.NAME: module for module in (backup, verify, restore, incremental, live, memory)}
# What a run without --only runs: the memory family proves its point at 1 GB (make bench-memory), a size of its own.
DEFAULT_FAMILIES = [name for name in FAMILIES if name != memory.NAME]
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--db-size-mb", type=float, default=400, help="sample app database size (default 400)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method (default 3)")
    parser.add_argument("--workdir", default="/tmp/reddit-backup-bench",
                        help="where the seeded app is cached and outputs go (default /tmp/reddit-backup-bench)")
    parser.add_argument("--only", default=",".join(DEFAULT_FAMILIES),
                        help="comma-separated families to run (default: %s; also: %s)" % (
                            ", ".join(DEFAULT_FAMILIES), ", ".join(sorted(set(FAMILIES) - set(DEFAULT_FAMILIES)))))
    parser.add_argument("--methods", default=None,
                        help="comma-separated method keys to run within the families (default: all)")
    parser.add_argument("--collections", default=_paths.COLLECTIONS,
                        help="the collections/ tree to benchmark (default: this checkout's); e.g. an export of "
                             "another commit, to compare engine changes")
    parser.add_argument("--live-seconds", type=float, default=live.DEFAULT_SECONDS,
                        help="live family: how long the writer-alone and Litestream rows run (default %(default)s)")
    parser.add_argument("--writer-interval-ms", type=float, default=live.DEFAULT_INTERVAL_MS,
                        help="live family: the writer commits a row every this many ms (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the sample app (default 0)")
    parser.add_argument("--keep-outputs", action="store_true",
                        help="keep the last round's outputs in WORKDIR/out, the shared archives in WORKDIR/fixtures "
                             "and the incremental family's state (removed by default)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="JSON results (default bench/results/latest.json)")
    parser.add_argument("--measured", default=_measured.MEASURED,
                        help="the README figures: this run's families replace theirs in it "
                             "(default bench/results/measured.json)")
    options = parser.parse_args(argv)
    options.only = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = [name for name in options.only if name not in FAMILIES]
    if unknown:
        parser.error("unknown benchmark family %s; choose from %s" % (", ".join(unknown), ", ".join(FAMILIES)))
    options.collections = os.path.abspath(options.collections)
    if not os.path.isdir(os.path.join(options.collections, "ansible_collections", "devops", "reddit_backup")):
        parser.error("--collections %s holds no ansible_collections/devops/reddit_backup" % options.collections)
    options.methods = [key.strip() for key in options.methods.split(",")] if options.methods else None
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    return options


def main(argv=None) -> int:
    options = parse_args(argv)
    started = time.monotonic()
    workdir = os.path.abspath(options.workdir)
    machine = _machine.machine_info()
    machine["code"] = _machine.code_state(options.collections)
    print("\n".join(_machine.machine_lines(machine)))
    seeded = _files.ensure_sample_app(workdir, options.db_size_mb, options.seed)
    app_root = os.path.join(workdir, "app")
    db_bytes = os.path.getsize(os.path.join(app_root, _files.DB_RELPATH))
    app_bytes = _files.tree_bytes(app_root)
    print("sample app: %s (database %.1f MB, all files %.1f MB; %s)" % (
        app_root, db_bytes / _stats.MB, app_bytes / _stats.MB,
        "cached" if seeded["cached"] else "seeded in %.0f s" % seeded["seconds"]))
    print("runs: %d of each method, round-robin, page cache warm\n" % options.repeat)
    results = {
        "machine": machine,
        "options": {"db_size_mb": options.db_size_mb, "repeat": options.repeat, "workdir": workdir,
                    "collections": options.collections,
                    "only": options.only, "methods": options.methods, "seed": options.seed},
        "app": {"root": app_root, "database_bytes": db_bytes, "app_bytes": app_bytes, "seed": seeded},
        "families": {},
    }
    try:
        for name in options.only:
            family = FAMILIES[name]
            family_started = time.monotonic()
            results["families"][name] = family.run(options, workdir, app_root, options.methods)
            results["families"][name]["seconds"] = round(time.monotonic() - family_started, 1)
            print(family.render(results["families"][name]))
            print("\n(%s family: %.0f s, preparation included)\n" % (name, results["families"][name]["seconds"]))
    finally:
        if not options.keep_outputs:
            _fixtures.remove(workdir)  # the archives verify and restore read (about the database's size)
    results["seconds"] = round(time.monotonic() - started, 1)
    _report.write_json(options.output, results)
    _measured.record(options.measured, results)
    shown = os.path.relpath(options.output)
    shown = options.output if shown.startswith("..") else shown
    print("bench: %.0f s in all; results in %s; README figures in %s" % (
        results["seconds"], shown, os.path.relpath(options.measured)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
