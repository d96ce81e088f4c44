"""What a family prints and writes: Markdown tables and lines under them, and the JSON result file."""

from __future__ import annotations

import json
import os


def markdown_table(headers: list, rows: list) -> str:
    def cell(value) -> str:
        if value is None:
            return "—"
        if isinstance(value, float):
            return "%.2f" % value if abs(value) < 100 else "%.0f" % value
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    os.replace(tmp, path)


def fmt(value, pattern: str) -> str:
    return "—" if value is None else pattern % value


def module_cell(summary_: dict) -> str:
    if summary_["module_peak_mb"] is None:
        return "—"
    return "%.1f / %.1f" % (summary_["module_peak_mb"], summary_["module_tree_peak_mb"])


def step_lines(methods: list) -> list:
    """Under a table: each method's step medians, the module's own duration and what lies outside it."""
    lines = []
    for record in methods:
        summary_ = record["summary"]
        parts = ["%s %.2f s" % (label, seconds) for label, seconds in summary_["step_median_s"].items()]
        if summary_["module_duration_median_s"] is not None:
            parts.append("module duration %.2f s (min %.2f)"
                         % (summary_["module_duration_median_s"], summary_["module_duration_min_s"]))
            parts.append("outside the engine %.2f s" % (summary_["median_s"] - summary_["module_duration_median_s"]))
        parts.append("peak tree PSS %.1f MB" % summary_["tree_pss_peak_mb"])
        lines.append("- %s: %s" % (record["key"], "; ".join(parts)))
    return lines


def command_lines(methods: list) -> list:
    lines = ["Commands (one run):"]
    for record in methods:
        lines.append("- %s:" % record["key"])
        for command in record["commands"]:
            env = " ".join("%s=%s" % item for item in sorted((command["env"] or {}).items()))
            lines.append("  - %s: `%s%s`" % (command["label"], env + " " if env else "",
                                             command["command"].replace("\n", "; ")))
    return lines


def measured_headers(*middle: str) -> list:
    """The columns every family's table starts with; MIDDLE (what the method made) after the CPU."""
    return ["method", "median s", "min s", "CPU s", *middle, "peak tree RSS MB", "peak 1-proc RSS MB",
            "module RSS MB (own / +zstd)"]


def measured_cells(record: dict, *middle: str) -> list:
    """A method's cells under measured_headers(): its time, CPU, MIDDLE, memory."""
    summary_ = record["summary"]
    return [record["title"], fmt(summary_["median_s"], "%.2f"), fmt(summary_["min_s"], "%.2f"),
            fmt(summary_["cpu_s"], "%.2f"), *middle, fmt(summary_["tree_peak_mb"], "%.1f"),
            fmt(summary_["single_peak_mb"], "%.1f"), module_cell(summary_)]
