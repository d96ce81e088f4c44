"""One engine call, stage by stage: how long each stage took and how many of the machine's cores were busy
meanwhile. It says where the seconds between a family's floor (its phases alone) and its engine row go: a stage
that keeps one core of two busy, a serial tail, phases that slow each other down when they share the cores.

Stages are the engine's own functions, wrapped for the length of one call (``Timeline.wrap``); a stage's time is
what its call took less the stages it called, and the time of the outermost call outside any inner stage is that
call's own label. Only the calls of the thread that made the outer call are timed (the integrity check and the
hashes that run beside them in threads are in the busy cores, not in a stage of their own). Busy cores come from
/proc/stat, the whole machine's: the profile runs outside the rounds, on a machine the bench keeps quiet."""

from __future__ import annotations

import functools
import os
import threading
import time

def machine_jiffies() -> tuple:
    """(busy, all) jiffies of every core since boot, from /proc/stat's first line (idle and iowait are not busy)."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


class Timeline:
    """Stages of one call: ``wrap`` the functions, make the call, ``unwrap``, then ``stages()``."""

    def __init__(self, cores: int = None, jiffies=machine_jiffies, clock=time.monotonic) -> None:
        self.cores = cores or os.cpu_count()
        self._jiffies = jiffies
        self._clock = clock
        self._open: list = []  # the labels of the stages now running, innermost last
        self._since = None  # (monotonic, busy jiffies, all jiffies) when the running stage last started or resumed
        self._thread = None
        self._totals: dict = {}  # label -> [seconds, busy jiffies, all jiffies], in the order first seen
        self._wrapped: list = []

    def wrap(self, owner, name: str, label: str) -> None:
        """Time every call of ``owner.name`` (a module's function or a class's method) as the stage ``label``."""
        original = getattr(owner, name)
        timeline = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if timeline._thread not in (None, threading.get_ident()):
                return original(*args, **kwargs)
            timeline._enter(label)
            try:
                return original(*args, **kwargs)
            finally:
                timeline._leave()

        self._wrapped.append((owner, name, vars(owner).get(name)))  # None: inherited, not the owner's own
        setattr(owner, name, timed)

    def unwrap(self) -> None:
        """Gives each owner back exactly what it had (an inherited method is inherited again)."""
        for owner, name, own in reversed(self._wrapped):
            if own is None:
                delattr(owner, name)
            else:
                setattr(owner, name, own)
        self._wrapped = []

    def _now(self) -> tuple:
        return (self._clock(),) + tuple(self._jiffies())

    def _charge(self) -> tuple:
        """Charge the time since the last event to the running stage; returns the moment charged up to."""
        now = self._now()
        if self._open:
            totals = self._totals.setdefault(self._open[-1], [0.0, 0, 0])
            for index, value in enumerate(now):
                totals[index] += value - self._since[index]
        return now

    def _enter(self, label: str) -> None:
        if not self._open:
            self._thread = threading.get_ident()
        self._since = self._charge()
        self._open.append(label)

    def _leave(self) -> None:
        self._since = self._charge()
        self._open.pop()
        if not self._open:
            self._thread = None

    def stages(self) -> list:
        """[{"label", "wall_s", "cores_busy"}] in the order each stage first ran; ``cores_busy`` is the machine's
        busy share meanwhile times its cores (None when a stage was too short for the clock's ticks)."""
        found = []
        for label, (seconds, busy, every) in self._totals.items():
            found.append({"label": label, "wall_s": round(seconds, 3),
                          "cores_busy": round(self.cores * busy / every, 1) if every else None})
        return found


def timeline_line(timeline: dict) -> str:
    """The README line of a family's timeline: the python start, then each stage with its busy cores."""
    parts = ["python start and the engine's imports %.2f s" % timeline["start_s"]]
    for stage in timeline["stages"]:
        busy = "" if stage["cores_busy"] is None else ", %.1f of %d cores busy" % (stage["cores_busy"],
                                                                                 timeline["cores"])
        parts.append("%s %.2f s%s" % (stage["label"], stage["wall_s"], busy))
    total = timeline["start_s"] + sum(stage["wall_s"] for stage in timeline["stages"])
    return "one engine call as the engine row makes it, stage by stage (outside the rounds): %s; %.2f s in all" % (
        "; ".join(parts), total)
