"""A family's profile, measured in the same run as its rows but outside their rounds: each phase of the engine
call alone (bench/profile_phases.py, the fastest of 3 runs each, in the targets' python), what ansible-playbook
costs before any module of ours does work, and the floors those imply against the targets of issue 16.
Diagnostics that explain a target's figure, never a target themselves."""

from __future__ import annotations

import json
import os
import shutil
import time

from _ansible import playbook_step, write_playbook
from _files import clean_dir
from _paths import TARGET_PYTHON
from _steps import Step, run_step
from _timeline import timeline_line

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profile_phases.py")
FOLDER = "profile"
# The no-op module of ours: backup_info of an empty backup directory ships and compiles the collection's
# module_utils (AnsiballZ) as every module of ours does, and then finds nothing to read.
NOOP_MODULE = "backup_info"
_FLOORS: dict = {}


def _timed(step: Step, log_dir: str) -> dict:
    step_run = run_step(step, log_dir)
    if step_run.returncode != 0:
        raise SystemExit("bench: profile step %s failed (exit %d):\n%s\n%s" % (
            step.label, step_run.returncode, step_run.stdout[-2000:], step_run.stderr[-2000:]))
    return {"wall_s": round(step_run.seconds, 3), "cpu_s": round(step_run.cpu_seconds, 3), "stdout": step_run.stdout}


def ansible_floors(workdir: str, collections: str, repeat: int) -> dict:
    """ansible-playbook of ansible.builtin.ping and of our no-op module, ``repeat`` times each in turn, the fastest
    run of each (a floor); measured once per run (by the first family that asks; the others read the same
    figures)."""
    key = (workdir, collections)
    if key not in _FLOORS:
        import verify  # its floor row's playbook: ping on localhost
        folder = os.path.join(workdir, FOLDER, "ansible")
        clean_dir(folder)
        os.makedirs(os.path.join(folder, "empty"), 0o700)
        playbook = os.path.join(folder, "noop.yml")
        write_playbook(playbook, "No-op module of ours", NOOP_MODULE,
                       {"backup_dir": os.path.join(folder, "empty")}, register="info")
        logs = os.path.join(workdir, "logs", FOLDER)
        # The rows' ANSIBLE_HOME (the workdir's), so the floors start from the state the rows start from.
        steps = {"ping": verify.AnsibleFloorMethod(workdir, collections).steps(folder)[0],
                 "module": playbook_step("noop", workdir, collections, playbook, NOOP_MODULE)}
        runs = {name: [] for name in steps}
        for _round in range(repeat):
            for name, step in steps.items():
                runs[name].append(_timed(step, logs))
        fastest = {name: min(found, key=lambda run: run["wall_s"]) for name, found in runs.items()}
        _FLOORS[key] = {name: {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "runs": repeat}
                        for name, run in fastest.items()}
        _FLOORS[key]["module"]["name"] = NOOP_MODULE
        shutil.rmtree(folder, ignore_errors=True)
    return _FLOORS[key]


def measure(family: str, paths: list, workdir: str, options) -> dict:
    """The family's phases alone, one engine call stage by stage, and the ansible-playbook floors: {"phases",
    "timeline", "ansible", "cores", "seconds"}."""
    started = time.monotonic()
    scratch = os.path.join(workdir, FOLDER, family)
    clean_dir(scratch)
    try:
        found = _timed(Step("profile-" + family, argv=[TARGET_PYTHON, SCRIPT, family] + list(paths)
                            + [scratch, "--collections", options.collections]),
                       os.path.join(workdir, "logs", FOLDER))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    measured = json.loads(found["stdout"].strip().splitlines()[-1])
    floors = ansible_floors(workdir, options.collections, options.repeat)
    return {"phases": measured["phases"], "timeline": measured["timeline"], "ansible": floors, "cores": os.cpu_count(),
            "seconds": round(time.monotonic() - started, 1)}


# ---------------------------------------------------------------------------------------------------------------
# The floors: pure arithmetic on the figures above, so the tests can give it numbers.


def phase_seconds(phase: dict) -> float:
    """A phase's least time: its wall, or its CPU seconds when fewer (a burst of load from elsewhere lengthens the
    wall of a one-thread phase, not its CPU); so a floor errs low, never high."""
    return min(phase["wall_s"], phase["cpu_s"])


def stage_seconds(phases: dict, stage: list, cores: int) -> float:
    """Phases that may run side by side: no faster than the slowest alone, nor than their CPU shared by the cores."""
    return max(max(phase_seconds(phases[label]) for label in stage),
               sum(phases[label]["cpu_s"] for label in stage) / cores)


def engine_floor(phases: list, stages: list, cores: int) -> float:
    """Stages one after the other (a stage needs the one before it whole), each as stage_seconds says."""
    by_label = {phase["label"]: phase for phase in phases}
    return sum(stage_seconds(by_label, stage, cores) for stage in stages)


def _stages_text(stages: list, cores: int) -> str:
    return " then ".join(stage[0] if len(stage) == 1 else "(%s and %s side by side on %d cores)" % (
        ", ".join(stage[:-1]), stage[-1], cores) for stage in stages)


def phase_line(profile: dict) -> str:
    """Where the time goes: each phase alone, and ansible-playbook's cost before a module of ours does work."""
    parts = ["%s %.2f s (CPU %.2f s)" % (phase["label"], phase["wall_s"], phase["cpu_s"])
             for phase in profile["phases"]]
    ansible = profile["ansible"]
    parts.append("ansible-playbook of ansible.builtin.ping %.2f s, of %s on an empty folder %.2f s (the fastest of "
                 "%d runs)" % (ansible["ping"]["wall_s"], ansible["module"]["name"], ansible["module"]["wall_s"],
                               ansible["module"]["runs"]))
    return "profile, each phase alone in this run, the fastest of 3 (%.0f s, outside the rounds): %s" % (
        profile["seconds"], "; ".join(parts))


def _took(seconds, what: str) -> str:
    return "" if seconds is None else "; %s took %.2f s in the rounds" % (what, seconds)


def ansible_line(profile: dict, target: dict) -> str:
    """What the target leaves the engine once ansible-playbook has run a module of ours that does nothing."""
    floor = profile["ansible"]["module"]
    left = target["target_s"] - floor["wall_s"]
    said = "%s: the target is %s = %.2f s; ansible-playbook of %s alone takes %.2f s, " % (
        target["row"], target["target"], target["target_s"], floor["name"], floor["wall_s"])
    said += "leaving %.2f s for the engine" % left if left > 0 else \
        "%.2f s over the target before any work: out of reach through ansible-playbook here" % -left
    return said + _took(target["row_s"], "the row") + _took(target["engine_s"], "the engine alone")


def engine_line(profile: dict, target: dict, stages: list) -> str:
    """The engine's floor from its phases against the target."""
    floor = engine_floor(profile["phases"], stages, profile["cores"])
    verdict = "%.2f s under the target" % (target["target_s"] - floor) if floor <= target["target_s"] else \
        "%.2f s over the target: out of reach while the engine does these phases" % (floor - target["target_s"])
    if target["row_s"] is not None and floor > target["row_s"]:  # the phases ran under load the rounds did not see
        verdict = "more than the row itself took: not conclusive"
    return "%s: the target is %s = %.2f s; floor from the phases, %s: %.2f s, %s%s" % (
        target["row"], target["target"], target["target_s"], _stages_text(stages, profile["cores"]), floor, verdict,
        _took(target["row_s"], "the row"))


ONE_CORE = 1.5  # a timeline stage with fewer cores busy than this kept one core busy, the other(s) idle


def cpu_floor(timeline: dict, row_cpu_s: float) -> tuple:
    """(one-core seconds, floor): the row's CPU seconds, its one-core stages (the python start among them) run
    one after the other, the rest shared by every core."""
    one_core = timeline["start_s"] + sum(stage["wall_s"] for stage in timeline["stages"]
                                         if stage["cores_busy"] is None or stage["cores_busy"] < ONE_CORE)
    return one_core, one_core + max(row_cpu_s - one_core, 0.0) / timeline["cores"]


def cpu_line(profile: dict, target: dict) -> str:
    """The engine row's floor from its own CPU seconds and the timeline's one-core stages, against the target."""
    one_core, floor = cpu_floor(profile["timeline"], target["row_cpu_s"])
    verdict = "%.2f s under the target" % (target["target_s"] - floor) if floor <= target["target_s"] else \
        "%.2f s over the target: out of reach while the engine does this work on %d cores" % (
            floor - target["target_s"], profile["timeline"]["cores"])
    return ("%s, by its CPU: the row used %.2f CPU s a run in the rounds; the timeline's one-core stages (%.2f s, "
            "the python start among them) one after the other and the rest shared by %d cores take at least "
            "%.2f s, %s" % (target["row"], target["row_cpu_s"], one_core, profile["timeline"]["cores"], floor,
                            verdict))


def budget(row: str, limit: float, reference_s: float, reference: str, row_s, engine_s=None,
           row_cpu_s=None) -> dict:
    """A row's target as ``lines`` takes it: LIMIT times REFERENCE's REFERENCE_S seconds; the row's own median
    (and, for an ansible row, the engine row's) and its median CPU seconds beside it."""
    target = "%.2fx %s's %.2f s" % (limit, reference, reference_s)
    return {"row": row, "target_s": limit * reference_s, "target": target, "row_s": row_s, "engine_s": engine_s,
            "row_cpu_s": row_cpu_s}


def lines(profile: dict, ansible: dict = None, engine: dict = None, stages: list = ()) -> list:
    """The profile's lines: the phases, then the ansible row's budget and the engine row's floor (each a
    ``budget``; None when the family did not run what its target is read against)."""
    said = [phase_line(profile)]
    if profile.get("timeline"):  # records from before the timeline have none
        said.append(timeline_line(profile["timeline"]))
    if ansible:
        said.append(ansible_line(profile, ansible))
    if engine:
        said.append(engine_line(profile, engine, stages))
        if profile.get("timeline") and engine.get("row_cpu_s") is not None:
            said.append(cpu_line(profile, engine))
    return said


def family_lines(profile: dict, summaries: dict, stages: list, ansible: tuple, engine: tuple) -> list:
    """``lines`` for a family's ansible and engine rows, each given as (row key, limit, reference s, reference):
    a row whose reference did not run gets no budget line."""
    def median(key: str):
        return (summaries.get(key) or {}).get("median_s")

    def made(row: tuple, engine_key: str = None):
        key, limit, reference_s, reference = row
        if reference_s is None:
            return None
        return budget("%s row" % key, limit, reference_s, reference, median(key), engine_key and median(engine_key),
                      (summaries.get(key) or {}).get("cpu_s"))

    return lines(profile, made(ansible, engine[0]), made(engine), stages)


def rendered(result: dict) -> list:
    """A family's profile lines under its table (none when the family measured no profile)."""
    return ["- " + line for line in (result.get("measured") or {}).get("profile", {}).get("lines", [])]
