# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a long run on a terminal: bytes done, rate and time left, one line redrawn on stderr once the run
has taken a few seconds. Nothing is drawn without a terminal (timers, cron, AWX): they get the summary line."""

from __future__ import annotations

import os
import sys
import threading
import time

from .output import human_size

QUIET_SECONDS = 2.0  # a run shorter than this draws nothing
REDRAW_SECONDS = 0.5


def on_terminal(quiet: bool) -> bool:
    return not quiet and sys.stdout.isatty() and sys.stderr.isatty()


class Progress:
    """``update(done, total)`` from the work; ``close()`` clears the line. Disabled, both do nothing."""

    def __init__(self, enabled: bool, what: str, clock=time.monotonic, stream=None) -> None:
        self.enabled = enabled
        self.what = what
        self.clock = clock
        self.stream = stream or sys.stderr
        self.started = clock()
        self.drawn_at = None
        self.width = 0

    def update(self, done: int, total: int) -> None:
        now = self.clock()
        if not self.enabled or now - self.started < QUIET_SECONDS:
            return
        if self.drawn_at is not None and now - self.drawn_at < REDRAW_SECONDS and done < total:
            return
        self.drawn_at = now
        self._draw(line_for(self.what, done, total, now - self.started))

    def _draw(self, text: str) -> None:
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.width:
            self._draw("")
            self.stream.write("\r")
            self.stream.flush()


def line_for(what: str, done: int, total: int, elapsed: float) -> str:
    """'verify: 1.2 GiB of 3.4 GiB (35%), 85.0 MiB/s, 27 s left'."""
    rate = done / elapsed if elapsed > 0 else 0.0
    left = (total - done) / rate if rate > 0 and total >= done else None
    percent = " (%d%%)" % (100 * done // total) if total else ""
    return "%s: %s of %s%s, %s/s, %s left" % (what, human_size(done), human_size(total), percent,
                                              human_size(int(rate)), "?" if left is None else "%d s" % left)


class ReadWatch(threading.Thread):
    """How far this process and its children (the verify's decompressor, rsync and its ssh for a push) have read
    ``paths``: for each file the furthest position a descriptor open on it reached, and its whole size once it was
    seen and is closed again; reported to ``progress`` against the files' total size. Progress for engine calls
    that take no callback (verify, sync)."""

    def __init__(self, paths, progress: Progress) -> None:
        super().__init__(daemon=True)
        self.sizes = {os.path.realpath(path): os.path.getsize(path) for path in paths if os.path.isfile(path)}
        self.progress = progress
        self.read = dict.fromkeys(self.sizes, 0)
        self.stopped = threading.Event()

    def positions(self) -> dict:
        """{path: position} of the watched files open now in this process or its descendants."""
        found = {}
        for pid in [str(os.getpid())] + descendants(os.getpid()):
            try:
                descriptors = os.listdir("/proc/%s/fd" % pid)
            except OSError:
                continue  # ended meanwhile
            for descriptor in descriptors:
                try:
                    target = os.readlink("/proc/%s/fd/%s" % (pid, descriptor))
                    if target in self.sizes:
                        with open("/proc/%s/fdinfo/%s" % (pid, descriptor), encoding="ascii") as handle:
                            found[target] = max(found.get(target, 0), int(handle.readline().split()[1]))
                except (OSError, ValueError, IndexError):
                    continue
        return found

    def sample(self) -> int:
        """Bytes read so far, after one look at the open files."""
        open_now = self.positions()
        for path in self.sizes:
            if path in open_now:
                self.read[path] = max(self.read[path], min(open_now[path], self.sizes[path]))
            elif self.read[path]:
                self.read[path] = self.sizes[path]  # seen reading, closed since: sent
        return sum(self.read.values())

    def run(self) -> None:
        while not self.stopped.wait(REDRAW_SECONDS / 2):
            self.progress.update(self.sample(), sum(self.sizes.values()))

    def __enter__(self) -> "ReadWatch":
        if self.progress.enabled and self.sizes:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join()
        self.progress.close()


def descendants(pid: int) -> list:
    """The pids of ``pid``'s children, theirs, and so on (from each process's parent in /proc/PID/stat)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                parents[entry] = handle.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
    found, frontier = [], [str(pid)]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found
