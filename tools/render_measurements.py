#!/usr/bin/env python3
"""Render every measured figure in the READMEs from the result files the measuring commands write.

    python tools/render_measurements.py                  rewrite each measured block from the result files
    python tools/render_measurements.py --check          exit 1 naming each block that differs (the unit test)
    python tools/render_measurements.py --record-molecule build/molecule/results
                                                         fold a tools/molecule.py run into molecule/results/
                                                         measured.json (the scenarios that passed), then render
    python tools/render_measurements.py --record-fresh-check build/fresh-check
                                                         replace tools/results/fresh-check.json with a
                                                         tools/fresh-check.sh run, then render

Result files (committed): bench/results/measured.json (`make bench`, bench/_measured.py),
molecule/results/measured.json (`make molecule`, through --record-molecule) and tools/results/fresh-check.json
(`make fresh-check`, through --record-fresh-check). A block in a document is
    <!-- measured:SOURCE:NAME -->
    ...generated text...
    <!-- /measured -->
and holds nothing but what RENDERERS[(SOURCE, NAME)] makes of the result file, so a figure cannot drift from
the run that measured it.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTION = os.path.join(ROOT, "collections", "ansible_collections", "devops", "reddit_backup")
RESULTS = {"bench": os.path.join(ROOT, "bench", "results", "measured.json"),
           "molecule": os.path.join(ROOT, "molecule", "results", "measured.json"),
           "fresh-check": os.path.join(ROOT, "tools", "results", "fresh-check.json"),
           "command": os.path.join(ROOT, "bench", "results", "command.json")}
BLOCK = re.compile(r"(<!-- measured:(?P<source>[a-z-]+):(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /measured -->)",
                   re.S)
# RTO lines by the scenario name the playbook prints: the guide's name for it, the playbook.
RECOVERIES = (
    ("database corruption", "Database corruption", "restore_database"),
    ("configuration loss", "Configuration loss", "restore_config"),
    ("configuration loss (systemd units)", "Configuration loss (systemd units)", "restore_systemd"),
    ("complete system failure", "Complete system failure (application wiped, same server)", "restore_full"),
    ("point-in-time recovery", "Point-in-time recovery (to a moment between two backups)", "restore_point_in_time"),
    ("complete server failure", "Complete server failure, onto a new server (from the old server's removal)",
     "disaster_recovery"),
    ("complete server failure (databases from the replica)",
     "Complete server failure, the databases from the Litestream replica (from the app host's kill)",
     "disaster_recovery"),
)
SCENARIOS = (
    ("default", "`default` (create, prepare, converge, idempotence, verify with `state: absent`)"),
    ("recovery", "`recovery` (two backups, five disasters and recoveries)"),
    ("pre_maintenance", "`pre_maintenance` (two runs of the playbook)"),
    ("disaster_recovery", "`disaster_recovery` (three hosts; the venv rebuilt from the backup's wheels)"),
    ("drill_host", "`drill_host` (the drill host's four timers, each run as its timer would)"),
    ("replication", "`replication` (Litestream over SFTP under a live writer; the app host killed, recovered from "
                    "the replica)"),
    ("fleet", "`fleet` (six app hosts and a backup server; one backup run, an attack, a drill, the off-host alert)"),
)
RTO_LINE = re.compile(r"^(?P<host>[^:]+): RTO (?P<scenario>.+?): (?P<seconds>[0-9.]+) s from start to healthy; "
                      r"target (?P<target>[0-9]+) s .*: (?P<verdict>met|MISSED)$")
RPO_LINE = re.compile(r"^(?P<host>[^:]+): RPO (?P<scenario>.+?): .*, (?P<seconds>[0-9]+) s before this recovery; "
                      r"target (?P<target>[0-9]+) s .*: (?P<verdict>met|MISSED)$")
# The replication scenario's measurement: commits lost with the killed host (from its writer's log).
RPO_LOST_LINE = re.compile(r"^(?P<host>[^:]+): RPO (?P<scenario>.+?): (?P<seconds>[0-9.]+) s of commits lost .*; "
                           r"target (?P<target>[0-9]+) s: (?P<verdict>met|MISSED)$")
SUMMARY_LINE = re.compile(r"^(?P<name>\S.*?)\s+(?P<result>ok|FAILED)\s+(?P<seconds>[0-9]+)s$")


def documents() -> list:
    """Every document that may hold a measured block."""
    paths = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "bench", "README.md"),
             os.path.join(ROOT, "molecule", "README.md"), os.path.join(COLLECTION, "README.md")]
    paths += sorted(glob.glob(os.path.join(COLLECTION, "docs", "*.md")))
    paths += sorted(glob.glob(os.path.join(COLLECTION, "roles", "*", "README.md")))
    return paths


def load(source: str) -> dict:
    with open(RESULTS[source], encoding="utf-8") as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------------------------------------------
# bench


def _cell(value, pattern: str) -> str:
    return "—" if value is None else pattern % value


def _table(headers: list, rows: list) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _run_line(family: dict, command: str = "make bench") -> str:
    machine = family["machine"]
    return ("Measured by `%s` on %s, commit %s%s: %s cores (%s), %s, %s; %s MB database (%s posts), "
            "%d runs of each method, round-robin; load average %s at the start, %s when the family ended." % (
                command, family["date"], family["commit"], " with uncommitted changes" if family["dirty"] else "",
                machine["cores"], machine["cpu"], machine["zstd"].replace("*** ", "").split(",")[0],
                machine["ansible_core"], family["database_mb"], "{:,}".format(family["posts"]), family["repeat"],
                " ".join(str(value) for value in family["loadavg_start"]),
                " ".join(str(value) for value in family["loadavg_end"])))


def _targets(family: dict) -> str:
    """The targets' lines, then the profile's (where the time went and the floors; families recorded before the
    profile have none)."""
    lines = [found["display"] for found in family["targets"]] + (family.get("profile") or {}).get("lines", [])
    return "\n".join("- %s" % line for line in lines)


def _family_block(family: dict, headers: list, row, command: str = "make bench") -> str:
    if family is None:
        return "No figures yet: `%s` has not recorded this family in bench/results/measured.json." % command
    rows = [row(method, family["ratios"][method["key"]]) for method in family["methods"]]
    return "\n\n".join([_run_line(family, command), _table(headers, rows), _targets(family)])


def bench_backup(results: dict) -> str:
    def row(method: dict, ratio: dict) -> list:
        # The module and its zstd for the ansible row (what the memory target is judged on), else the whole tree.
        rss = method["module_tree_peak_mb"] if method["key"] == "ansible" else method["tree_peak_mb"]
        speedup = ratio["speedup_vs_guide"]
        return ["`%s`" % method["title"], _cell(method["median_s"], "%.2f"), _cell(method["cpu_s"], "%.2f"),
                _cell(method["archive_mb"], "%.1f"), _cell(rss, "%.1f"),
                "1.00x" if method["key"] == "guide" else _cell(speedup, "%.2fx faster"),
                _cell(ratio["time_vs_zstd_hand"], "%.2fx")]
    return _family_block(results["families"].get("backup"), ["method", "median s", "CPU s", "archive MB",
                                                         "peak RSS MB", "vs guide", "vs zstd hand"], row)


def bench_verify(results: dict) -> str:
    def row(method: dict, ratio: dict) -> list:
        return ["`%s`" % method["title"], _cell(method["median_s"], "%.2f"), _cell(method["cpu_s"], "%.2f"),
                _cell(ratio["time_vs_baseline"], "%.2fx"), _cell(ratio["cpu_vs_baseline"], "%.2fx"),
                "1.00x" if method["key"] == "guide" else _cell(ratio["speedup_vs_guide"], "%.2fx faster")]
    return _family_block(results["families"].get("verify"), ["method", "median s", "CPU s", "time / baseline",
                                                         "CPU / baseline", "vs guide"], row)


def bench_restore(results: dict) -> str:
    def row(method: dict, ratio: dict) -> list:
        return ["`%s`" % method["title"], _cell(method["median_s"], "%.2f"), _cell(method["cpu_s"], "%.2f"),
                _cell(ratio["time_vs_guide"], "%.2fx"), _cell(ratio["cpu_vs_guide"], "%.2fx")]
    return _family_block(results["families"].get("restore"), ["method", "median s", "CPU s", "time / guide",
                                                          "CPU / guide"], row)


def bench_incremental(results: dict) -> str:
    def row(method: dict, ratio: dict) -> list:
        pages = "%d / %d (%.2f%%)" % (method["changed_pages"], method["page_count"],
                                      100.0 * method["changed_pages"] / method["page_count"]) \
            if method.get("page_count") else "—"
        size = None if ratio["size_vs_full"] is None else ratio["size_vs_full"] * 100
        return ["`%s`" % method["title"], _cell(method["median_s"], "%.2f"), _cell(method["cpu_s"], "%.2f"),
                _cell(method["archive_bytes"] / 2 ** 20, "%.2f"), pages, _cell(ratio["time_vs_full"], "%.2fx"),
                _cell(ratio["cpu_vs_full"], "%.2fx"), _cell(size, "%.2f%%")]
    family = results["families"].get("incremental")
    if family is None:
        return _family_block(None, [], None)
    churn = "; ".join("churn of %s: %s of %s rows updated, one in every %s ids" % (
        db, "{:,}".format(value["rows_updated"]), "{:,}".format(value["rows"]), value["every_nth_id"])
        for db, value in sorted(family.get("churn", {}).items()))
    block = _family_block(family, ["method", "median s", "CPU s", "archive MB", "pages changed", "time / full",
                                   "CPU / full", "size / full"], row)
    return block + ("\n- %s" % churn if churn else "")


LIVE_WRITER_ROWS = ("alone", "litestream", "litestream_sftp", "full_backup", "incremental", "restore")
LIVE_RESTORE_ROWS = ("litestream_restore", "replica_engine", "archive_engine")


def _live_writer_row(method: dict, ratio: dict) -> list:
    return ["`%s`" % method["title"], str(method["commits"]), _cell(method["p50_ms"], "%.1f"),
            _cell(method["p99_ms"], "%.1f"), _cell(method["max_ms"], "%.1f"), _cell(ratio["p99_vs_alone"], "%.2fx"),
            _cell(method.get("litestream_cpu_s_per_min"), "%.2f"), _cell(method.get("litestream_hwm_mb"), "%.1f")]


def _live_restore_row(method: dict, ratio: dict) -> list:
    return ["`%s`" % method["title"], _cell(method["median_s"], "%.2f"), _cell(method["cpu_s"], "%.2f"),
            _cell(method["tree_peak_mb"], "%.1f"), _cell(ratio["time_vs_archive_engine"], "%.2fx")]


def bench_live(results: dict) -> str:
    family = results["families"].get("live")
    if family is None:
        return _family_block(None, [], None)
    methods = {method["key"]: method for method in family["methods"]}
    writer = _table(["writer's commits (a row every %s ms)" % family.get("writer_interval_ms", 100), "commits",
                     "p50 ms", "p99 ms", "max ms", "p99 / alone", "Litestream CPU s per min",
                     "Litestream VmHWM MB"],
                    [_live_writer_row(methods[key], family["ratios"][key]) for key in LIVE_WRITER_ROWS
                     if key in methods])
    restores = _table(["restore of the same database", "median s", "CPU s", "peak tree RSS MB",
                       "time / archive restore"],
                      [_live_restore_row(methods[key], family["ratios"][key]) for key in LIVE_RESTORE_ROWS
                       if key in methods])
    return "\n\n".join([_run_line(family), writer, restores, _targets(family)])


def bench_memory(results: dict) -> str:
    def row(method: dict, ratio: dict) -> list:
        return ["`%s`" % method["title"], _cell(method["median_s"], "%.2f"), _cell(method["module_peak_mb"], "%.1f"),
                _cell(method["module_tree_peak_mb"], "%.1f")]
    return _family_block(results["families"].get("memory"), ["method", "median s", "engine process MB",
                                                         "engine + children MB"], row, "make bench-memory")


def bench_duration(results: dict) -> str:
    families = results["families"]
    parts = ", ".join("%s %.0f s (%s)" % (name, family["seconds"], family["date"][:10])
                      for name, family in families.items())
    return ("The families' wall times in the last runs recorded in `bench/results/measured.json`, preparation "
            "included: %s; the load average of each run is beside its table in the top-level README." % parts)


# ---------------------------------------------------------------------------------------------------------------
# molecule


def _when(entry: dict) -> str:
    commit = entry.get("commit")
    return entry["date"] + (", commit %s" % commit if commit else "")


def molecule_scenarios(results: dict) -> str:
    rows = []
    if results.get("image_build"):
        rows.append(["image build (first run only; cached after)", "%d s" % results["image_build"]["seconds"],
                     _when(results["image_build"])])
    for key, title in SCENARIOS:
        entry = results["scenarios"].get(key)
        if entry:
            rows.append([title, "%d s" % entry["seconds"], _when(entry)])
    return _table(["step", "wall time", "measured (tools/molecule.py)"], rows)


def _duration(seconds: int) -> str:
    return "%d h" % (seconds // 3600) if seconds % 3600 == 0 else "%d min" % (seconds // 60)


def molecule_recovery(results: dict) -> str:
    rows = []
    for scenario, title, playbook in RECOVERIES:
        entry = results["recovery_times"].get(scenario)
        if entry:
            rows.append([title, _duration(entry["target_s"]), "%.1f s" % entry["seconds"],
                         "`%s`" % playbook, _when(entry)])
    return _table(["scenario (guide)", "guide's target RTO", "measured RTO", "playbook", "measured"], rows)


def molecule_rpo(results: dict) -> str:
    entry = results["rpo"]["complete server failure"]
    text = ("The `disaster_recovery` playbook's RPO line said %d s (%s; the restored backup's age when the "
            "recovery ended; the guide allows %d h)." % (entry["seconds"], _when(entry), entry["target_s"] // 3600))
    lost = results["rpo"].get("replication (databases from the Litestream replica)")
    if lost:
        text += ("\nWith the databases from the Litestream replica (`replication`), %.3f s of commits were lost "
                 "(%s; the last row the killed host committed against the newest row on the new host; target %d s)."
                 % (lost["seconds"], _when(lost), lost["target_s"]))
    return text


def molecule_fleet(results: dict) -> str:
    fleet = results.get("figures", {}).get("fleet")
    if not fleet:
        return "No figures yet: `tools/molecule.py fleet` has not recorded them in molecule/results/measured.json."
    disk = fleet["server_disk_bytes"]
    rows = [["`backup` playbook, %d app hosts in one run (forks)" % fleet["hosts"],
             "%.1f s wall" % fleet["fleet_backup_seconds"]],
            ["the same playbook on one app host", "%.1f s wall" % fleet["single_backup_seconds"]],
            ["backup server disk per host (`du -sb` of its folder; %s backups each)" % "/".join(
                str(count) for count in sorted(set(fleet["backups_per_host"]))),
             "%.2f MiB on average (%.2f to %.2f MiB)" % (sum(disk.values()) / len(disk) / 2 ** 20,
                                                         min(disk.values()) / 2 ** 20, max(disk.values()) / 2 ** 20)],
            ["backup server job, CPU per host (one run over %d hosts: %.2f s CPU, %.2f s wall)" % (
                len(disk), fleet["server_job_cpu_seconds"], fleet["server_job_wall_seconds"]),
             "%.3f s" % fleet["server_job_cpu_per_host_seconds"]]]
    return "\n\n".join(["Measured by `tools/molecule.py fleet` (%s; load average %s at the end):" % (
        _when(fleet), " ".join(str(value) for value in fleet["loadavg_end"])), _table(["what", "measured"], rows)])


def molecule_rto_example(results: dict) -> str:
    entry = results["recovery_times"]["database corruption"]
    return "\n".join([
        "```console",
        "$ ansible-playbook playbooks/restore_database.yml -e reddit_backup_hosts=app1.example.internal",
        "...",
        "RTO database corruption: %.1f s from start to healthy; target %d s (%d min): %s" % (
            entry["seconds"], entry["target_s"], entry["target_s"] // 60,
            "met" if entry["seconds"] <= entry["target_s"] else "MISSED"),
        "$ ansible-playbook playbooks/restore_point_in_time.yml -e 'reddit_backup_restore_before=\"6 hours ago\"'",
        "```",
        "",
        "(The RTO figure is the `recovery` molecule scenario's, %s.)" % _when(entry),
    ])


# ---------------------------------------------------------------------------------------------------------------
# fresh-check


def fresh_check_steps(results: dict) -> str:
    rows = [["`%s`" % step["name"] if step["name"] != "fresh root" else "the fresh root (debootstrap, or the kept "
             "minbase root unpacked)", "%d s" % step["seconds"], step["result"]] for step in results["commands"]]
    rows += [["`make test`: `%s`" % step["name"], "%d s" % step["seconds"], step["result"]]
             for step in results["test_steps"]]
    load = results.get("load_note") or "load average %s at the end" % " ".join(
        str(value) for value in results["loadavg_end"])
    return "\n\n".join(["Measured by `make fresh-check` on %s, commit %s (%s; %s):" % (
        results["date"], results["commit"], load, results["skipped"]),
        _table(["step in the fresh Debian 12 root", "wall time", "result"], rows)])


# ---------------------------------------------------------------------------------------------------------------
# the scheduled command's fixed cost (bench/command.py)

COMMAND_METHODS = (
    ("before", "`reddit-backup create --type database`, before: it ran the backup playbook (ansible-playbook)"),
    ("after", "`reddit-backup create --type database`, after: it calls the engine directly"),
    ("engine", "the engine's `create_backup()` alone, in the runner venv's Python"),
)


def command_fixed_cost(results: dict) -> str:
    figures = results["results"]
    machine = results["machine"]

    def median(method: str, key: str):
        return (figures[method].get(key) or {}).get("median")

    rows = []
    for key, title in COMMAND_METHODS:
        wall = figures[key]["wall_seconds"]
        rows.append([title, _cell(wall["median"], "%.2f"), "%.2f–%.2f" % (wall["min"], wall["max"]),
                     _cell(median(key, "cpu_seconds"), "%.2f"), _cell(median(key, "tree_peak_mb"), "%.1f"),
                     _cell(median(key, "largest_process_mb"), "%.1f")])
    engine = median("engine", "engine_seconds")
    fixed = ["- fixed cost around the engine's own %.2f s: %.2f s before, %.2f s after (%.1fx less)" % (
        engine, median("before", "wall_seconds") - engine, median("after", "wall_seconds") - engine,
        (median("before", "wall_seconds") - engine) / (median("after", "wall_seconds") - engine))]
    run = "Measured by `bench/command.py` (`make bench`) on %s, commit %s: %d cores (%s), %s; %.0f MB database, " \
          "%d runs of each method after a warm-up round, round-robin; load average %s at the start." % (
              results["date"], machine["code"]["commit"], machine["nproc"], machine["cpu"], machine["ansible_core"],
              results["options"]["db_size_mb"], results["options"]["repeat"],
              " ".join(str(value) for value in machine["loadavg_start"]))
    return "\n\n".join([run, _table(["method", "median s", "min–max s", "CPU s", "peak RSS of the tree MB",
                                      "largest process MB"], rows), "\n".join(fixed)])


RENDERERS = {
    ("command", "fixed-cost"): command_fixed_cost,
    ("bench", "backup"): bench_backup,
    ("bench", "verify"): bench_verify,
    ("bench", "restore"): bench_restore,
    ("bench", "incremental"): bench_incremental,
    ("bench", "live"): bench_live,
    ("bench", "memory"): bench_memory,
    ("bench", "duration"): bench_duration,
    ("molecule", "scenarios"): molecule_scenarios,
    ("molecule", "recovery"): molecule_recovery,
    ("molecule", "rpo"): molecule_rpo,
    ("molecule", "fleet"): molecule_fleet,
    ("molecule", "rto-example"): molecule_rto_example,
    ("fresh-check", "steps"): fresh_check_steps,
}


# ---------------------------------------------------------------------------------------------------------------
# Documents


def render_text(text: str, path: str, results: dict) -> str:
    def replace(match) -> str:
        key = (match.group("source"), match.group("name"))
        if key not in RENDERERS:
            raise SystemExit("%s: unknown measured block %s:%s (known: %s)" % (
                os.path.relpath(path, ROOT), key[0], key[1], ", ".join("%s:%s" % name for name in RENDERERS)))
        return match.group(1) + RENDERERS[key](results[key[0]]) + "\n" + match.group(5)
    return BLOCK.sub(replace, text)


def blocks(text: str) -> list:
    return [(match.group("source"), match.group("name")) for match in BLOCK.finditer(text)]


def render_all(check: bool) -> list:
    """Rewrites (or, with check, compares) every document; returns the ones that differ."""
    results = {source: load(source) for source in RESULTS}
    stale = []
    for path in documents():
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        rendered = render_text(text, path, results)
        if rendered != text:
            stale.append(os.path.relpath(path, ROOT))
            if not check:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(rendered)
    return stale


# ---------------------------------------------------------------------------------------------------------------
# Recording a molecule run


def _commit() -> str:
    def git(*args) -> str:
        return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD")
    return commit + (" with uncommitted changes" if git("status", "--porcelain", "--", "collections", "molecule")
                     else "")


def record_molecule(results_dir: str, image_build_seconds: str = "", path: str = RESULTS["molecule"]) -> dict:
    """Folds one tools/molecule.py run (its summary.txt and *.recovery-times.txt) into the result file: the
    scenarios that passed replace their entries; the others keep the last run that measured them."""
    measured = load("molecule") if os.path.exists(path) else {}
    for key in ("scenarios", "recovery_times", "rpo", "figures"):
        measured.setdefault(key, {})
    stamp = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "commit": _commit(),
             "loadavg_end": [float(value) for value in open("/proc/loadavg").read().split()[:3]]}
    if image_build_seconds:
        measured["image_build"] = dict(stamp, seconds=int(image_build_seconds))
    passed = set()
    with open(os.path.join(results_dir, "summary.txt"), encoding="utf-8") as handle:
        for line in handle:
            found = SUMMARY_LINE.match(line.strip())
            if found and found.group("result") == "ok":
                passed.add(found.group("name"))
                measured["scenarios"][found.group("name")] = dict(stamp, seconds=int(found.group("seconds")))
    for scenario in sorted(passed):
        figures = os.path.join(results_dir, "%s.measured.json" % scenario)
        if os.path.exists(figures):
            with open(figures, encoding="utf-8") as handle:
                measured["figures"][scenario] = dict(stamp, **json.load(handle))
        times = os.path.join(results_dir, "%s.recovery-times.txt" % scenario)
        if not os.path.exists(times):
            continue
        with open(times, encoding="utf-8") as handle:
            for line in handle:
                for pattern, key in ((RTO_LINE, "recovery_times"), (RPO_LINE, "rpo"), (RPO_LOST_LINE, "rpo")):
                    found = pattern.match(line.strip())
                    if found:
                        measured[key][found.group("scenario")] = dict(
                            stamp, scenario=scenario, seconds=float(found.group("seconds")),
                            target_s=int(found.group("target")), line=line.strip().split(": ", 1)[1])
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(measured, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)
    return measured


def _summary_lines(path: str) -> list:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        found = [SUMMARY_LINE.match(line.strip()) for line in handle]
    return [{"name": match.group("name"), "result": match.group("result"), "seconds": int(match.group("seconds"))}
            for match in found if match]


def _fresh_check_skipped(work: str) -> str:
    """The `make test` steps fresh-check.sh left out, and the matrix entries that skipped themselves in the root."""
    steps = _read_words(os.path.join(work, "skipped-steps.txt"))
    said = ["left out inside the root: %s" % (" ".join(steps) or "nothing")]
    log = os.path.join(work, "make-test.log")
    if os.path.exists(log):
        with open(log, encoding="utf-8", errors="replace") as handle:
            said += sorted({line.strip()[len("[matrix] "):] for line in handle
                            if line.startswith("[matrix] ") and line.rstrip().endswith("skipped")})
    return "; ".join(said)


def _read_words(path: str) -> list:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return handle.read().split()


def record_fresh_check(work: str, path: str = RESULTS["fresh-check"]) -> dict:
    """One tools/fresh-check.sh run (its summary.txt and test-summary.txt) replaces the result file."""
    measured = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
                "commit": _commit().split()[0],
                "loadavg_end": [float(value) for value in open("/proc/loadavg").read().split()[:3]],
                "skipped": _fresh_check_skipped(work),
                "commands": _summary_lines(os.path.join(work, "summary.txt")),
                "test_steps": _summary_lines(os.path.join(work, "test-summary.txt"))}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(measured, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)
    return measured


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    parser.add_argument("--record-molecule", metavar="DIR", help="a tools/molecule.py results folder to record")
    parser.add_argument("--record-fresh-check", metavar="DIR", help="a tools/fresh-check.sh folder to record")
    parser.add_argument("--image-build-seconds", default="", help="with --record-molecule: the image build's time "
                        "(empty when the image was cached)")
    options = parser.parse_args(argv)
    if options.record_molecule:
        record_molecule(options.record_molecule, options.image_build_seconds)
    if options.record_fresh_check:
        record_fresh_check(options.record_fresh_check)
    stale = render_all(check=options.check)
    if options.check and stale:
        print("measured figures differ from the result files in: %s; run python tools/render_measurements.py"
              % ", ".join(stale), file=sys.stderr)
        return 1
    for path in stale:
        print("rendered the measured figures in %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
