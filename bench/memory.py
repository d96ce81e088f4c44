"""The engine's peak memory at a size (issue 16: under 100 MB whatever the database size, proved at 1 GB): a full
backup, a comprehensive verify and a database restore, each the engine called directly, its process and its
children (zstd) sampled from /proc. Not in the default run (`make bench-memory` runs it at 1 GB)."""

from __future__ import annotations

import os

import _fixtures
import backup
import restore
import verify
from _machine import loadavg
from _report import command_lines, fmt, markdown_table
from _stats import target
from backup import find_databases

NAME = "memory"
LIMIT_MB = 100
KEYS = ("backup", "verify", "restore")
TITLES = {"backup": "engine create_backup() (full)", "verify": "engine verify_archive() (comprehensive)",
          "restore": "engine restore() (scope database, into a damaged copy)"}


class _Backup(backup.EngineMethod):
    """backup's engine row, as a method of its own app (run_methods gives steps only the output folder)."""

    def __init__(self, collections: str, app_root: str) -> None:
        super().__init__(collections)
        self.app_root = app_root

    def steps(self, out: str) -> list:
        return super().steps(self.app_root, out, [])


def run(options, workdir: str, app_root: str, only_methods=None) -> dict:
    wanted = [key for key in KEYS if not only_methods or key in only_methods]
    if not wanted:
        return {"skipped": "no method of this family in --methods"}
    databases = find_databases(app_root)
    module = _fixtures.module_backup(workdir, app_root, options.collections) if set(wanted) - {"backup"} else None
    made = {"backup": lambda: _Backup(options.collections, app_root),
            "verify": lambda: verify.EngineMethod(options.collections, module),
            "restore": lambda: restore.EngineMethod(options.collections, app_root, databases, module)}
    chosen = []
    for key in wanted:
        method = made[key]()
        method.key, method.title = key, TITLES[key]  # the families' engine rows, keyed by what they do here
        chosen.append(method)
    result, records = _fixtures.measure_on(NAME, chosen, options, workdir, databases, None, module)
    result["ratios"] = {key: {} for key in records}
    size_mb = sum(os.path.getsize(os.path.join(app_root, db)) for db in databases) / 2 ** 20
    result["targets"] = [_target(key, record["summary"]["module_tree_peak_mb"], size_mb)
                         for key, record in records.items()]
    result["loadavg_end"] = loadavg()
    return result


def _target(key: str, peak_mb, size_mb: float) -> dict:
    return target("engine %s: its process and its children (zstd) under %d MB at a %.0f MB database"
                  % (key, LIMIT_MB, size_mb), peak_mb, peak_mb is not None and peak_mb < LIMIT_MB, " MB")


def render(result: dict) -> str:
    if result.get("skipped"):
        return "## Engine memory: skipped (%s)" % result["skipped"]
    rows = [[record["title"], record["summary"]["median_s"], record["summary"]["cpu_s"],
             fmt(record["summary"]["module_peak_mb"], "%.1f"), fmt(record["summary"]["module_tree_peak_mb"], "%.1f"),
             fmt(record["summary"]["wait4_maxrss_mb"], "%.1f")] for record in result["methods"]]
    lines = ["## Engine memory: peak RSS of the engine's process (and its zstd)", "",
             markdown_table(["method", "median s", "CPU s", "engine process MB", "engine + children MB",
                             "largest process (wait4) MB"], rows), ""]
    lines += ["- " + found["display"] for found in result["targets"]]
    lines.append("- load average at the end: %s" % " ".join(str(value) for value in result["loadavg_end"]))
    lines += [""] + command_lines(result["methods"])
    return "\n".join(lines)
