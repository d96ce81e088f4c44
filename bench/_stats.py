"""Figures from runs: units, medians, the per-method summary, ratios and the targets they are read against."""

from __future__ import annotations

import statistics


MB = 1024 * 1024


def mb(value) -> float:
    return None if value is None else round(value / MB, 1)


def summarize(values: list) -> dict:
    values = [value for value in values if value is not None]
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summary(runs: list) -> dict:
    """Median and min time, median CPU, median archive size, worst memory, the module's own duration and each
    step's median, over the runs of one method."""
    seconds = summarize([run["seconds"] for run in runs])
    archive_bytes = summarize([run.get("archive_bytes") for run in runs])["median"]
    return {
        "median_s": round(seconds["median"], 3), "min_s": round(seconds["min"], 3), "max_s": round(seconds["max"], 3),
        "cpu_s": round(summarize([run["cpu_seconds"] for run in runs])["median"], 2),
        "archive_mb": mb(archive_bytes),
        "archive_bytes": archive_bytes,
        # Memory: the worst run (the largest peak seen), not a median.
        "tree_peak_mb": max(run["tree_peak_mb"] for run in runs),
        "tree_pss_peak_mb": max(run["tree_pss_peak_mb"] for run in runs),
        "single_peak_mb": max(run["single_peak_mb"] for run in runs),
        "wait4_maxrss_mb": max(run["wait4_maxrss_mb"] for run in runs),
        "module_peak_mb": summarize([run["module_peak_mb"] for run in runs])["max"],
        "module_tree_peak_mb": summarize([run["module_tree_peak_mb"] for run in runs])["max"],
        "module_duration_median_s": summarize([run.get("module_duration") for run in runs])["median"],
        "module_duration_min_s": summarize([run.get("module_duration") for run in runs])["min"],
        "step_median_s": {label: round(summarize([step["seconds"] for run in runs for step in run["steps"]
                                                  if step["label"] == label])["median"], 3)
                          for label in [step["label"] for step in runs[0]["steps"]]},
    }


def target(text: str, value, met: bool, unit: str, diagnostic: bool = False) -> dict:
    """A target of the issue with its figure: PASS or MISS (a figure to read, never a test)."""
    found = {"target": text, "value": value, "unit": unit.strip(), "met": bool(met),
             "display": "%s: %s (%s%s)" % ("PASS" if met else "MISS", text, value, unit)}
    if diagnostic:
        found["diagnostic"] = True
    return found


def ratio(numerator, denominator):
    return round(numerator / denominator, 2) if numerator is not None and denominator else None
