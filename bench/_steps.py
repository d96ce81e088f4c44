"""Timed runs: a method is a list of Step; each runs under the sampler, every method round-robin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

from _files import clean_dir
from _machine import loadavg
from _sampler import TreeSampler
from _stats import mb, summary


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
