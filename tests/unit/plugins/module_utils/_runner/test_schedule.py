"""cron expressions to systemd OnCalendar: known answers, errors, and systemd's own calendar against a cron matcher."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._runner.schedule import (
    cron_to_oncalendar, parse_cron,
)

GUIDE = [
    ("0 2 * * *", "*-*-* 02:00:00"),          # full, daily 02:00
    ("0 */6 * * *", "*-*-* 00/6:00:00"),      # incremental, every 6 hours
    ("0 * * * *", "*-*-* *:00:00"),           # database, hourly
    ("0 3 * * 0", "Sun *-*-* 03:00:00"),      # cleanup, Sunday 03:00
    ("0 4 * * 1", "Mon *-*-* 04:00:00"),      # recovery test, Monday 04:00
]
MORE = [
    ("@weekly", "Sun *-*-* 00:00:00"),
    ("@daily", "*-*-* 00:00:00"),
    ("@monthly", "*-*-01 00:00:00"),
    ("0 0 * * 7", "Sun *-*-* 00:00:00"),
    ("30 1,13 * * mon-fri", "Mon,Tue,Wed,Thu,Fri *-*-* 01/12:30:00"),
    ("5 4 1 */3 *", "*-01/3-01 04:05:00"),
    ("0 2-10/4 * * *", "*-*-* 02,06,10:00:00"),
    ("*/20 * * * *", "*-*-* *:00/20:00"),
    ("15 3 * jan,jul sat", "Sat *-01/6-* 03:15:00"),
    ("  0   2 * *   * ", "*-*-* 02:00:00"),
]


@pytest.mark.parametrize("cron,calendar", GUIDE + MORE)
def test_known_translations(cron, calendar):
    assert cron_to_oncalendar(cron) == calendar


@pytest.mark.parametrize("cron,message", [
    ("0 2 * *", "five fields"),
    ("0 2 * * * *", "five fields"),
    ("60 2 * * *", "minute 60 is out of range"),
    ("0 24 * * *", "hour 24 is out of range"),
    ("0 2 0 * *", "day of month 0 is out of range"),
    ("0 2 * 13 *", "month 13 is out of range"),
    ("0 2 * * 8", "day of week 8 is out of range"),
    ("0 2 * * funday", "not a valid day of week"),
    ("0 10-2 * * *", "runs backwards"),
    ("*/0 * * * *", "at least 1"),
    ("0 2 1 * 1", "both day of month and day of week"),
    ("@reboot", "not supported"),
    ("", "five fields"),
])
def test_errors_name_the_problem(cron, message):
    with pytest.raises(BackupError, match=message):
        cron_to_oncalendar(cron)


def cron_fires(fields, moment: datetime) -> bool:
    """A plain cron matcher (Vixie semantics for the expressions we translate: never both day fields)."""
    minute, hour, day, month, weekday = fields
    checks = ((minute, moment.minute), (hour, moment.hour), (day, moment.day), (month, moment.month),
              (weekday, (moment.weekday() + 1) % 7))
    return all(values is None or value in values for values, value in checks)


def cron_next(fields, after: datetime, count: int) -> list:
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    found = []
    while len(found) < count:
        if cron_fires(fields, moment):
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


def systemd_next(calendar: str, count: int) -> list:
    output = subprocess.run(["systemd-analyze", "calendar", "--iterations=%d" % count, calendar], check=True,
                            capture_output=True, text=True, env=dict(os.environ, TZ="UTC")).stdout
    moments = []
    for line in output.splitlines():
        key, _sep, text = line.strip().partition(": ")
        if key == "Next elapse" or key.startswith("Iter. #"):
            moments.append(datetime.strptime(text.strip()[4:23], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc))
    return moments


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("cron", [cron for cron, _calendar in GUIDE + MORE])
def test_systemd_fires_when_cron_does(cron):
    """systemd's own calendar parser gives the same next moments as a cron matcher."""
    for _attempt in range(2):  # a minute boundary between the two clocks: look once more
        now = datetime.now(timezone.utc)
        expected = cron_next(parse_cron(cron), now, 6)
        actual = systemd_next(cron_to_oncalendar(cron), 6)
        if actual == expected:
            return
    assert actual == expected
