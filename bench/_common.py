"""Shared benchmark helpers: the machine, the seeded sample app, timed runs with a process-tree RSS sampler,
figures and the markdown table. Each benchmark family (``backup.py``, later ``verify.py``, ``restore.py``...)
defines its methods as lists of ``Step`` and hands them to ``measure``; ``run.py`` dispatches."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, "collections")
SEED = os.path.join(REPO, "examples", "sample_app", "seed.py")
DB_RELPATH = "data/reddit_sentiment.db"
# Modules run with the targets' own python (Debian 12: 3.11.2), as the integration tests do.
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SAMPLE_INTERVAL = 0.02
PSS_EVERY = 25  # samples: PSS about every 0.5 s
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def venv_bin(tool: str) -> str:
    """``tool`` from the running python's bin directory (the venv), else from PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), tool)
    if os.path.exists(beside):
        return beside
    found = shutil.which(tool)
    if found is None:
        raise SystemExit("bench: %s not found; run from the project's venv (make bench)" % tool)
    return found


# ---------------------------------------------------------------------------------------------------------------
# The machine


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
        "memory_mb": os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE // MB,
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


# ---------------------------------------------------------------------------------------------------------------
# The sample app, seeded once per (size, seed) and cached in the workdir


def _sample_app_sha256() -> str:
    """One digest of seed.py and the skeleton it lays out: a change to either reseeds the cached app."""
    digest = hashlib.sha256()
    paths = [SEED]
    for directory, dirs, files in os.walk(os.path.join(os.path.dirname(SEED), "skeleton")):
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        paths += [os.path.join(directory, name) for name in sorted(files)]
    for path in paths:
        digest.update(os.path.relpath(path, REPO).encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def ensure_sample_app(workdir: str, db_size_mb: float, seed: int = 0) -> dict:
    """The seeded sample app under ``workdir/app``; reseeded (``--force``) only when the size, the seed or
    the sample app (seed.py, skeleton/) changed since the cached copy was made. Returns the cache record
    (seed.py's summary inside)."""
    app_root = os.path.join(workdir, "app")
    record_path = os.path.join(workdir, "app.seeded.json")
    wanted = {"db_size_mb": db_size_mb, "seed": seed, "sample_app_sha256": _sample_app_sha256()}
    try:
        with open(record_path) as handle:
            record = json.load(handle)
        if all(record.get(key) == value for key, value in wanted.items()) and \
                os.path.isfile(os.path.join(app_root, DB_RELPATH)):
            record["cached"] = True
            return record
    except (OSError, ValueError):
        pass
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(record_path):
        os.remove(record_path)  # a seeding that dies half-way must not be taken for a cached app
    command = [sys.executable, SEED, "--app-root", app_root, "--db-size-mb", str(db_size_mb), "--seed", str(seed),
               "--force"]
    print("bench: seeding the sample app (%s MB database) into %s ..." % (db_size_mb, app_root), file=sys.stderr)
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit("bench: seeding failed (%s):\n%s%s" % (" ".join(command), completed.stdout,
                                                                completed.stderr))
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    record = dict(wanted, summary=summary, command=command, seconds=round(time.monotonic() - started, 1))
    with open(record_path, "w") as handle:
        json.dump(record, handle, indent=2)
    record["cached"] = False
    return record


def tree_bytes(root: str, skip=()) -> int:
    """Bytes of the regular files under ``root`` (not following links), leaving out top-level names in ``skip``."""
    total = 0
    for directory, dirs, files in os.walk(root):
        if directory == root:
            dirs[:] = [name for name in dirs if name not in skip]
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def clean_dir(path: str) -> None:
    """An empty ``path``: whatever a previous run left there is removed."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


# ---------------------------------------------------------------------------------------------------------------
# Peak memory of a process tree, sampled from /proc


def _children(pid: int) -> list:
    """Direct children of ``pid`` (every thread's children file: a thread that forks owns its children)."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _children_by_scan(pid: int) -> list:
    """The fallback when the kernel has no children files: every /proc/N/stat's parent field."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as handle:
                stat = handle.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(name))
    return found


HAS_CHILDREN_FILES = os.path.exists("/proc/self/task/%d/children" % os.getpid())


def _rss(pid: int) -> int:
    try:
        with open("/proc/%d/statm" % pid) as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    """Proportional set size: shared pages split between their users, so a tree's sum counts them once."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _cmdline(pid: int) -> list:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


_OWN_CMDLINE = _cmdline(os.getpid())


def _comm(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip()
    except OSError:
        return str(pid)


def _exe(pid: int) -> str:
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


class TreeSampler(threading.Thread):
    """Samples, every ``interval`` seconds, the RSS of ``root`` and all its descendants: the peak of the sum
    (``tree_peak``; ``tree_pss_peak`` the same in PSS, sampled less often), the peak of the largest single
    process (``single_peak``), each process's own peak (by a short name), and — when ``is_module(cmdline,
    exe)`` picks out a process — the peak of that process alone (``module_peak``) and of that process with its
    descendants (``module_tree_peak``, e.g. with its zstd)."""

    def __init__(self, root: int, is_module=None, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.is_module = is_module
        self.interval = interval
        self.tree_peak = 0
        self.tree_pss_peak = 0
        self._pss_taken_at = 0
        self.single_peak = 0
        self.module_peak = 0
        self.module_tree_peak = 0
        self.samples = 0
        self.processes: dict = {}  # pid -> {"name": ..., "peak": bytes, "module": bool}
        self._stop_event = threading.Event()

    def _describe(self, pid: int) -> dict:
        described = self.processes.get(pid)
        exe = _exe(pid)
        # Looked at again after an exec (bash running its last command in place), or when first seen between
        # fork and exec (still the bench's command line) or while its command line could not be read.
        if described is None or described["exe"] != exe or described["unsure"]:
            argv = _cmdline(pid)
            name = " ".join(os.path.basename(part) if index == 0 else part for index, part in enumerate(argv[:2]))
            module = bool(self.is_module and argv and self.is_module(argv, exe))
            # A new image after exec starts a new peak; the fork image before it was its parent's pages.
            peak = described["peak"] if described and described["exe"] == exe else 0
            described = self.processes[pid] = {"name": name[:60] or "[%s]" % _comm(pid), "peak": peak,
                                               "module": module,
                                               "exe": exe, "unsure": not argv or argv == _OWN_CMDLINE}
        return described

    def sample(self) -> None:
        list_children = _children if HAS_CHILDREN_FILES else _children_by_scan
        total = 0
        module_total = 0
        alive = []
        stack = [(self.root, False)]
        while stack:
            pid, inside_module = stack.pop()
            rss = _rss(pid)
            if rss == 0 and pid != self.root:
                continue  # gone, or a zombie
            alive.append(pid)
            described = self._describe(pid)
            described["peak"] = max(described["peak"], rss)
            total += rss
            self.single_peak = max(self.single_peak, rss)
            inside_module = inside_module or described["module"]
            if described["module"]:
                self.module_peak = max(self.module_peak, rss)
            if inside_module:
                module_total += rss
            stack.extend((child, inside_module) for child in list_children(pid))
        # PSS costs ~1.3 ms a process (the kernel walks the page tables), RSS ~0.03 ms: PSS only when the RSS sum
        # passes its peak by 4 MB and every PSS_EVERY samples, so the sampler stays a small load.
        if total > self._pss_taken_at + 4 * MB or self.samples % PSS_EVERY == 0:
            self.tree_pss_peak = max(self.tree_pss_peak, sum(_pss(pid) for pid in alive))
            self._pss_taken_at = max(self._pss_taken_at, total)
        self.tree_peak = max(self.tree_peak, total)
        self.module_tree_peak = max(self.module_tree_peak, module_total)
        self.samples += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def top_processes(self, count: int = 6) -> list:
        """The largest processes seen, by their own peak: [name, MB, is-module]."""
        ranked = sorted(self.processes.values(), key=lambda described: -described["peak"])[:count]
        return [[described["name"], mb(described["peak"]), described["module"]] for described in ranked]


# ---------------------------------------------------------------------------------------------------------------
# Timed runs


@dataclass
class Step:
    """One command of a method. ``shell`` is what an operator would type (run with bash -o pipefail); ``argv``
    runs a program directly. ``is_module`` marks the process whose own peak is reported as the module's."""

    label: str
    shell: str = None
    argv: list = None
    env: dict = None
    cwd: str = None
    is_module: object = None

    def display(self) -> str:
        if self.shell is not None:
            return self.shell
        return " ".join(_quote(part) for part in self.argv)


def _quote(part: str) -> str:
    return part if re.fullmatch(r"[\w@%+=:,./-]+", part) else "'%s'" % part.replace("'", "'\\''")


@dataclass
class StepRun:
    label: str
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    tree_peak: int
    tree_pss_peak: int
    single_peak: int
    # wait4's ru_maxrss: the largest single process of the tree, never missed between samples, but with a floor:
    # the child starts as a fork of the bench itself (about 20 MB) until it execs.
    maxrss: int
    cpu_seconds: float  # user + system of the tree (wait4: the child and every descendant it reaped)
    module_peak: int
    module_tree_peak: int
    samples: int
    top: list = field(default_factory=list)


def run_step(step: Step, log_dir: str) -> StepRun:
    """Run one step, timing it and sampling its process tree; its stdout and stderr are kept in files."""
    os.makedirs(log_dir, exist_ok=True)
    slug = re.sub(r"\W+", "-", step.label).strip("-")
    out_path, err_path = os.path.join(log_dir, slug + ".out"), os.path.join(log_dir, slug + ".err")
    env = dict(os.environ, **(step.env or {}))
    argv = ["bash", "-o", "pipefail", "-e", "-c", step.shell] if step.shell is not None else step.argv
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=step.cwd)
        sampler = TreeSampler(process.pid, step.is_module)
        sampler.sample()
        sampler.start()
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    with open(out_path, errors="replace") as handle:
        stdout = handle.read()
    with open(err_path, errors="replace") as handle:
        stderr = handle.read()
    return StepRun(step.label, seconds, process.returncode, stdout, stderr, sampler.tree_peak,
                   sampler.tree_pss_peak, sampler.single_peak, usage.ru_maxrss * 1024,
                   usage.ru_utime + usage.ru_stime, sampler.module_peak, sampler.module_tree_peak, sampler.samples,
                   sampler.top_processes())


def mb(value) -> float:
    return None if value is None else round(value / MB, 1)


def summarize(values: list) -> dict:
    values = [value for value in values if value is not None]
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# ---------------------------------------------------------------------------------------------------------------
# Output


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


# ---------------------------------------------------------------------------------------------------------------
# Rounds of methods, shared by the families


def run_methods(family: str, methods: list, repeat: int, workdir: str, steps_for=None,
                artifact_key: str = None) -> tuple:
    """Every method ``repeat`` times, round-robin (one of each per round, so a burst of load from elsewhere hits
    all methods alike), each run into a freshly emptied ``WORKDIR/out/FAMILY/KEY``.

    A method has ``key``, ``title``, ``steps(out)`` (or ``steps_for(method, out)`` gives them) and
    ``result(out, step_runs) -> dict``; optionally ``prepare(out)``, run untimed before each run (a fresh copy
    to restore into, a parent backup to build on). Returns (records by key, the last round's result by key).
    ``artifact_key`` names the result's byte count shown in the progress line."""
    records = {method.key: {"key": method.key, "title": method.title, "runs": [], "commands": []}
               for method in methods}
    last = {}
    for round_number in range(repeat):
        for method in methods:
            out = os.path.join(workdir, "out", family, method.key)
            clean_dir(out)
            prepare = getattr(method, "prepare", None)
            prepared = prepare(out) if prepare is not None else None
            steps = steps_for(method, out) if steps_for is not None else method.steps(out)
            records[method.key]["commands"] = [{"label": step.label, "command": step.display(), "env": step.env,
                                                "cwd": step.cwd} for step in steps]
            load = loadavg()
            step_runs = []
            for step in steps:
                step_run = run_step(step, os.path.join(workdir, "logs", family, method.key))
                step_runs.append(step_run)
                if step_run.returncode != 0:
                    raise SystemExit("bench: %s %s step %s failed (exit %d):\n%s\n%s" % (
                        family, method.key, step.label, step_run.returncode, step_run.stdout[-3000:],
                        step_run.stderr[-3000:]))
            result = method.result(out, step_runs)
            record = run_record(round_number + 1, load, step_runs, result)
            if prepared:
                record["prepared"] = prepared
            records[method.key]["runs"].append(record)
            last[method.key] = result
            size = " %s MB" % mb(result[artifact_key]) if artifact_key and result.get(artifact_key) is not None \
                else ""
            print("bench: %-11s round %d/%d %-12s %7.2f s%s  tree %s MB" % (
                family, round_number + 1, repeat, method.key, record["seconds"], size, record["tree_peak_mb"]),
                file=sys.stderr)
    for record in records.values():
        record["summary"] = summary(record["runs"])
    return records, last


def run_record(round_number: int, load: list, step_runs: list, result: dict) -> dict:
    """One run of a method: its time, CPU and memory (whole tree, largest process, the module's), per step."""
    record = {
        "round": round_number,
        "loadavg_before": load,
        "seconds": round(sum(step_run.seconds for step_run in step_runs), 3),
        "cpu_seconds": round(sum(step_run.cpu_seconds for step_run in step_runs), 3),
        "steps": [{"label": step_run.label, "seconds": round(step_run.seconds, 3),
                   "cpu_seconds": round(step_run.cpu_seconds, 3),
                   "tree_peak_mb": mb(step_run.tree_peak), "tree_pss_peak_mb": mb(step_run.tree_pss_peak),
                   "single_peak_mb": mb(step_run.single_peak),
                   "wait4_maxrss_mb": mb(step_run.maxrss), "samples": step_run.samples,
                   "top_processes": step_run.top} for step_run in step_runs],
        "tree_peak_mb": mb(max(step_run.tree_peak for step_run in step_runs)),
        "tree_pss_peak_mb": mb(max(step_run.tree_pss_peak for step_run in step_runs)),
        "single_peak_mb": mb(max(step_run.single_peak for step_run in step_runs)),
        "wait4_maxrss_mb": mb(max(step_run.maxrss for step_run in step_runs)),
        "module_peak_mb": mb(max(step_run.module_peak for step_run in step_runs)) or None,
        "module_tree_peak_mb": mb(max(step_run.module_tree_peak for step_run in step_runs)) or None,
    }
    record.update((key, value) for key, value in result.items() if key != "databases")
    return record


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


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_tree(path: str) -> None:
    """Flush what a preparation copied, so its writeback is not charged to the timed run that follows."""
    for directory, _dirs, files in os.walk(path):
        for name in files + ["."]:
            target = os.path.join(directory, name)
            if os.path.islink(target):
                continue
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def warm_page_cache(*paths: str) -> None:
    """Read files (or every file under folders) once, untimed, so every method reads them from the page cache."""
    for root in paths:
        if os.path.isfile(root):
            files = [root]
        else:
            files = [os.path.join(directory, name) for directory, _dirs, names in os.walk(root) for name in names]
        for path in files:
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    while handle.read(1 << 20):
                        pass


# ---------------------------------------------------------------------------------------------------------------
# Ansible: a one-task playbook on localhost, the module's result read back from the minimal callback


def ansible_env(workdir: str, collections: str) -> dict:
    return {
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": os.path.join(workdir, "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(workdir, "ansible-tmp"),
    }


def write_playbook(path: str, title: str, module: str, params: dict, register: str = "result") -> None:
    """A one-task playbook on localhost (values as JSON, which YAML reads)."""
    lines = ["- name: %s" % title, "  hosts: localhost", "  connection: local", "  gather_facts: false",
             "  tasks:", "    - name: %s" % title, "      devops.reddit_backup.%s:" % module]
    lines += ["        %s: %s" % (key, json.dumps(value)) for key, value in params.items()]
    lines += ["      register: %s" % register, ""]
    with open(path, "w") as handle:
        handle.write("\n".join(lines))


def module_matcher(*names: str):
    """``is_module`` for a Step: the python whose command line names the module (``AnsiballZ_<module>.py``: the
    local connection does not pipeline) or the engine function called directly; failing that, a process
    running the targets' python when the controller runs another."""
    def is_module(argv: list, exe: str) -> bool:
        if not os.path.basename(exe).startswith("python"):
            return False  # not the `/bin/sh -c '/usr/bin/python3 .../AnsiballZ_x.py'` around it
        joined = " ".join(argv)
        if any(name in joined for name in names):
            return True
        target_python = os.path.realpath(TARGET_PYTHON)
        return exe == target_python and target_python != os.path.realpath(sys.executable)
    return is_module


def playbook_step(label: str, workdir: str, collections: str, playbook: str, module: str) -> Step:
    argv = [venv_bin("ansible-playbook"), "-i", "localhost,", "-e", "ansible_python_interpreter=%s" % TARGET_PYTHON,
            playbook]
    return Step(label, argv=argv, env=ansible_env(workdir, collections), cwd=REPO,
                is_module=module_matcher("AnsiballZ_%s" % module))


def minimal_result(stdout: str) -> dict:
    """The result dict that the minimal callback printed after ``localhost | STATUS => ``."""
    match = re.search(r"^localhost \| [\w!]+ => ", stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError("ansible-playbook printed no task result:\n%s" % stdout[-3000:])
    return json.JSONDecoder().raw_decode(stdout, match.end())[0]


def engine_step(label: str, code: str, collections: str, args: list, function: str) -> Step:
    """The engine called directly in the targets' python: ``code`` gets the collections tree as sys.argv[1]."""
    argv = [TARGET_PYTHON, "-c", code.strip(), collections] + list(args)
    return Step(label, argv=argv, is_module=lambda argv, exe: function in " ".join(argv))


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])
