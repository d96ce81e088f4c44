"""bench/_timeline.py: one call timed stage by stage, the busy cores of each stage, and the profile's CPU floor from
it (bench/_profile.py)."""

from __future__ import annotations

import os
import sys
import threading
import types

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "bench"))

import _profile  # noqa: E402
from _timeline import Timeline, timeline_line  # noqa: E402


class Machine:
    """The clock and /proc/stat as a test sets them: seconds, (busy, all) jiffies that move only when told."""

    def __init__(self) -> None:
        self.now, self.busy, self.all = 0.0, 0, 0

    def clock(self) -> float:
        return self.now

    def jiffies(self) -> tuple:
        return self.busy, self.all

    def spend(self, seconds: float, busy: int = 0, every: int = 0) -> None:
        self.now += seconds
        self.busy += busy
        self.all += every


def an_engine(machine: Machine):
    """A module whose outer call runs two inner stages, one of them twice, with time and ticks spent in each."""
    engine = types.SimpleNamespace()

    def snapshot():
        machine.spend(0.05, 10, 20)  # one core of two

    def archive():
        machine.spend(0.1, 40, 40)  # both cores

    def backup():
        machine.spend(0.02)
        engine.snapshot()
        engine.archive()
        engine.snapshot()

    engine.snapshot, engine.archive, engine.backup = snapshot, archive, backup
    return engine


def timed(engine, machine: Machine) -> list:
    """engine.backup() timed with its three functions as stages."""
    timeline = Timeline(cores=2, jiffies=machine.jiffies, clock=machine.clock)
    for name, label in (("backup", "the rest"), ("snapshot", "snapshot"), ("archive", "archive")):
        timeline.wrap(engine, name, label)
    engine.backup()
    timeline.unwrap()
    return timeline.stages()


def test_each_stage_is_its_own_time_less_the_stages_it_called_with_its_busy_cores():
    machine = Machine()
    found = timed(an_engine(machine), machine)
    stages = {stage["label"]: stage for stage in found}
    assert [stage["label"] for stage in found] == ["the rest", "snapshot", "archive"]
    assert stages["snapshot"]["wall_s"] == pytest.approx(0.1)  # two calls of 0.05 s
    assert stages["archive"]["wall_s"] == pytest.approx(0.1)
    assert stages["the rest"]["wall_s"] == pytest.approx(0.02)
    assert stages["snapshot"]["cores_busy"] == 1.0 and stages["archive"]["cores_busy"] == 2.0
    assert stages["the rest"]["cores_busy"] is None  # no tick passed: too short to say


def test_unwrap_gives_back_the_functions_and_methods_it_wrapped():
    class Base:
        def run(self):
            return "ran"

    class Job(Base):
        pass

    machine = Machine()
    engine = an_engine(machine)
    original = engine.snapshot
    timeline = Timeline(cores=2, jiffies=machine.jiffies, clock=machine.clock)
    timeline.wrap(engine, "snapshot", "snapshot")
    timeline.wrap(Job, "run", "run")
    assert engine.snapshot is not original and Job().run() == "ran"
    timeline.unwrap()
    assert engine.snapshot is original
    assert "run" not in vars(Job) and Job.run is Base.run and Job().run() == "ran"  # inherited again


def test_a_call_from_another_thread_meanwhile_is_not_a_stage_of_the_timed_call():
    machine = Machine()
    engine = an_engine(machine)

    def backup():
        helper = threading.Thread(target=lambda: engine.archive())  # e.g. the integrity check beside the archive
        helper.start()
        helper.join()
        engine.snapshot()

    engine.backup = backup
    found = timed(engine, machine)
    assert [stage["label"] for stage in found] == ["the rest", "snapshot"]


def a_timeline(**busy) -> dict:
    return {"start_s": 0.1, "cores": 2, "stages": [
        {"label": "the rest", "wall_s": 0.07, "cores_busy": busy.get("rest", 0.5)},
        {"label": "snapshot", "wall_s": 0.53, "cores_busy": busy.get("snapshot", 1.0)},
        {"label": "archive", "wall_s": 1.84, "cores_busy": busy.get("archive", 2.0)},
        {"label": "zstd's end", "wall_s": 0.01, "cores_busy": None}]}


def test_the_timeline_line_lists_the_start_and_every_stage_with_its_busy_cores():
    assert timeline_line(a_timeline()) == (
        "one engine call as the engine row makes it, stage by stage (outside the rounds): python start and the "
        "engine's imports 0.10 s; the rest 0.07 s, 0.5 of 2 cores busy; snapshot 0.53 s, 1.0 of 2 cores busy; "
        "archive 1.84 s, 2.0 of 2 cores busy; zstd's end 0.01 s; 2.55 s in all")


def test_the_cpu_floor_runs_the_one_core_stages_in_turn_and_shares_the_rest_among_the_cores():
    one_core, floor = _profile.cpu_floor(a_timeline(), 5.0)
    assert one_core == pytest.approx(0.1 + 0.07 + 0.53 + 0.01)
    assert floor == pytest.approx(0.71 + (5.0 - 0.71) / 2)
    assert _profile.cpu_floor(a_timeline(snapshot=1.6), 5.0)[0] == pytest.approx(0.18)  # two cores busy: shared
    assert _profile.cpu_floor(a_timeline(), 0.5) == pytest.approx((0.71, 0.71))  # never less than the one-core part


def test_the_cpu_line_says_whether_the_rows_own_cpu_leaves_the_target_in_reach():
    profile = {"phases": [], "timeline": a_timeline()}
    over = _profile.budget("engine row", 1.15, 2.0, "the hand pipeline", 3.2, row_cpu_s=5.01)
    assert _profile.cpu_line(profile, over) == (
        "engine row, by its CPU: the row used 5.01 CPU s a run in the rounds; the timeline's one-core stages "
        "(0.71 s, the python start among them) one after the other and the rest shared by 2 cores take at least "
        "2.86 s, 0.56 s over the target: out of reach while the engine does this work on 2 cores")
    under = _profile.budget("engine row", 1.15, 3.0, "the hand pipeline", 3.2, row_cpu_s=5.01)
    assert _profile.cpu_line(profile, under).endswith("2.86 s, 0.59 s under the target")


def test_the_profile_lines_add_the_timeline_and_the_cpu_floor_only_when_measured():
    profile = {"phases": [{"label": "snapshot", "wall_s": 0.5, "cpu_s": 0.5}], "cores": 2, "seconds": 5.0,
               "ansible": {"ping": {"wall_s": 1.1, "cpu_s": 1.0, "runs": 3},
                           "module": {"wall_s": 1.0, "cpu_s": 0.9, "name": "backup_info", "runs": 3}}}
    engine = _profile.budget("engine row", 1.15, 2.0, "the hand pipeline", 3.2, row_cpu_s=5.0)
    assert len(_profile.lines(profile, None, engine, [["snapshot"]])) == 2  # an old record: phases and floor
    with_timeline = _profile.lines(dict(profile, timeline=a_timeline()), None, engine, [["snapshot"]])
    assert [line.split(" ")[0] for line in with_timeline] == ["profile,", "one", "engine", "engine"]
    assert "by its CPU" in with_timeline[-1]
