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
    """How far this process has read ``path`` (the position of the descriptor open on it), reported to
    ``progress`` against the file's size: progress for engine calls that take no callback (verify)."""

    def __init__(self, path: str, progress: Progress) -> None:
        super().__init__(daemon=True)
        self.path = os.path.realpath(path)
        self.progress = progress
        self.total = os.path.getsize(path) if os.path.isfile(path) else 0
        self.stopped = threading.Event()

    def position(self):
        try:
            for descriptor in os.listdir("/proc/self/fd"):
                if os.readlink("/proc/self/fd/" + descriptor) == self.path:
                    with open("/proc/self/fdinfo/" + descriptor, encoding="ascii") as handle:
                        return int(handle.readline().split()[1])  # "pos:\t<offset>"
        except (OSError, ValueError, IndexError):
            return None
        return None

    def run(self) -> None:
        while not self.stopped.wait(REDRAW_SECONDS / 2):
            done = self.position()
            if done is not None:
                self.progress.update(done, self.total)

    def __enter__(self) -> "ReadWatch":
        if self.progress.enabled and self.total:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join()
        self.progress.close()
