"""The machine the figures were measured on: cores, memory, tool versions, load, and which code ran."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

from _paths import TARGET_PYTHON, venv_bin
from _stats import MB


def _first_line(command: list) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return "unavailable (%s)" % error
    text = (completed.stdout or completed.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def loadavg() -> list:
    return [round(value, 2) for value in os.getloadavg()]


def machine_info() -> dict:
    """What the figures depend on: cores, memory, tool versions, and how busy the machine was at the start."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_mb": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // MB,
        "kernel": platform.release(),
        "bench_python": "%s (%s)" % (platform.python_version(), sys.executable),
        "target_python": _first_line([TARGET_PYTHON, "--version"]) + " (%s)" % TARGET_PYTHON,
        "target_python_sqlite": _first_line([TARGET_PYTHON, "-c", "import sqlite3; print(sqlite3.sqlite_version)"]),
        "sqlite3_cli": _first_line(["sqlite3", "--version"]).split(" ")[0],
        "zstd": _first_line(["zstd", "--version"]),
        "gzip": _first_line(["gzip", "--version"]),
        "pigz": _first_line(["pigz", "--version"]) if shutil.which("pigz") else "not installed",
        "tar": _first_line(["tar", "--version"]),
        "ansible_core": _first_line([venv_bin("ansible-playbook"), "--version"]),
        "loadavg_start": loadavg(),
    }


def code_state(collections: str) -> dict:
    """Which engine ran: the commit of the checkout that holds ``collections`` and whether the collection has
    uncommitted changes there (the figures then describe the working tree, not the commit)."""
    def git(*args):
        completed = subprocess.run(["git", "-C", collections] + list(args), capture_output=True, text=True)
        return completed.stdout.strip() if completed.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None:
        return {"collections": collections, "commit": None, "dirty": None}
    dirty = git("status", "--porcelain", "--", os.path.join(collections, "ansible_collections"))
    return {"collections": collections, "commit": git("rev-parse", "--short", "HEAD"),
            "dirty": [line[3:] for line in dirty.splitlines()] if dirty else []}


def machine_lines(info: dict) -> list:
    code = info.get("code") or {}
    if code.get("commit"):
        state = "commit %s%s" % (code["commit"], ", with uncommitted changes to %d files of the collection"
                                 % len(code["dirty"]) if code["dirty"] else ", clean")
    else:
        state = "not a git checkout"
    return [
        "machine: %s cores (%s), %d MB RAM, Linux %s"
        % (info["nproc"], info["cpu"] or "cpu unknown", info["memory_mb"], info["kernel"]),
        "python: bench %s; modules %s, sqlite %s"
        % (info["bench_python"], info["target_python"], info["target_python_sqlite"]),
        "tools: sqlite3 %s; %s; %s; %s; pigz %s" % (info["sqlite3_cli"], info["zstd"], info["gzip"], info["tar"],
                                                    info["pigz"]),
        "ansible: %s" % info["ansible_core"],
        "code: %s (%s)" % (code.get("collections", "?"), state),
        "load average at start: %s" % " ".join(str(value) for value in info["loadavg_start"]),
    ]
