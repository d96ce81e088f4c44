"""The figures the READMEs show, kept in a committed file: bench/results/measured.json.

run.py writes everything a run saw to latest.json (git-ignored); this keeps, per family, only what
tools/render_measurements.py renders into the READMEs (the medians, CPU, sizes, memory, ratios, targets) with
the run they came from. A run of some families replaces those families and keeps the others' last figures.
"""

from __future__ import annotations

import datetime
import json
import os

import _report
import _stats

MEASURED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "measured.json")
# Per method: what the README tables read from its summary.
SUMMARY_KEYS = ("median_s", "min_s", "cpu_s", "archive_mb", "archive_bytes", "tree_peak_mb", "single_peak_mb",
                "module_peak_mb", "module_tree_peak_mb", "module_duration_median_s")
# Per run of an incremental method: what the module said about its pages.
PAGE_KEYS = ("changed_pages", "page_count")


def _method(record: dict) -> dict:
    summary = record["summary"]
    method = {"key": record["key"], "title": record["title"]}
    method.update((key, summary.get(key)) for key in SUMMARY_KEYS)
    last = record["runs"][-1]
    method.update((key, last[key]) for key in PAGE_KEYS if key in last)
    method.update(record.get("figures") or {})  # a family's own figures (the live writer's latencies)
    return method


def family_figures(results: dict, family: dict, date: str) -> dict:
    """One family's figures and the run they came from (date, commit, machine, load, database size)."""
    machine = results["machine"]
    seeded = results["app"]["seed"].get("summary") or {}
    figures = {
        "date": date,
        "commit": machine["code"].get("commit"),
        "dirty": bool(machine["code"].get("dirty")),
        "machine": {"cores": machine["nproc"], "cpu": machine["cpu"], "zstd": machine["zstd"],
                    "ansible_core": machine["ansible_core"]},
        "database_mb": round(results["app"]["database_bytes"] / _stats.MB, 1),
        "posts": seeded.get("rows"),
        "repeat": results["options"]["repeat"],
        "loadavg_start": machine["loadavg_start"],
        "loadavg_end": family["loadavg_end"],
        "seconds": family["seconds"],
        "methods": [_method(record) for record in family["methods"]],
        "ratios": family["ratios"],
        "targets": family["targets"],
    }
    figures.update(family.get("measured") or {})  # a family's own run-wide figures (the live writer's interval)
    churn = (family.get("state") or {}).get("churn")
    if churn:
        figures["churn"] = {db: {key: value[key] for key in ("rows", "rows_updated", "every_nth_id")}
                            for db, value in churn.items()}
    return figures


def record(path: str, results: dict) -> dict:
    """Folds this run's families into ``path`` (the others keep their last figures) and writes it."""
    try:
        with open(path) as handle:
            measured = json.load(handle)
    except FileNotFoundError:
        measured = {"families": {}}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, family in results["families"].items():
        if not family.get("skipped"):
            measured["families"][name] = family_figures(results, family, date)
    _report.write_json(path, measured)
    return measured
