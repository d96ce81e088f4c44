# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run prints and logs: every line goes to the app's log; the terminal gets it unless --quiet."""

from __future__ import annotations

import collections
import os
import pwd
import sys
from datetime import datetime, timezone

TAIL_LINES = 40


def say(text: str) -> None:
    """A line for the person or script reading stdout (this is a command, not a module: no module.log here)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def complain(text: str) -> None:
    """A line on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_size(size) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % size


class Output:
    """Everything goes to the log; the terminal gets it unless --quiet, which prints only failures."""

    def __init__(self, settings, quiet: bool, logged: bool = True) -> None:
        self.quiet = quiet
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.log = None
        self.log_path = settings.log_file
        if logged:
            self._open_log(settings)

    def _open_log(self, settings) -> None:
        try:
            os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
            # a new log is not world-readable: it names paths and errors of the application
            new = not os.path.exists(self.log_path)
            descriptor = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            if new and os.geteuid() == 0 and settings.runner.get("user"):
                account = pwd.getpwnam(settings.runner["user"])
                os.fchown(descriptor, account.pw_uid, account.pw_gid)  # the jobs append to it too
            self.log = os.fdopen(descriptor, "a", encoding="utf-8")
        except (OSError, KeyError) as error:
            self.log = None
            self.warn("cannot write the log %s (%s); going on without it"
                      % (self.log_path, getattr(error, "strerror", None) or error))

    def line(self, text: str, to_terminal: bool = True) -> None:
        self.tail.append(text)
        self.log_only(text)
        if to_terminal and not self.quiet:
            say(text)

    def log_only(self, text: str) -> None:
        if self.log:
            self.log.write(text + "\n")
            self.log.flush()

    def warn(self, text: str) -> None:
        message = "reddit-backup: warning: %s" % text
        complain(message)
        self.log_only(message)

    def succeeded(self, summary: str) -> None:
        """The success summary. --quiet under a systemd timer still prints it, as restic and borg do: the journal
        then has one line per run (a terminal and cron, which mails any output, get nothing)."""
        self.line(summary)
        if self.quiet and os.environ.get("JOURNAL_STREAM") and not sys.stdout.isatty():
            say(summary)

    def failed(self, summary: str) -> None:
        """The failure summary: logged, on stderr, with the run's tail first when --quiet hid it."""
        if self.quiet:
            complain("\n".join(self.tail))
        self.line(summary, to_terminal=False)
        complain(summary)

    def close(self) -> None:
        if self.log:
            self.log.close()
