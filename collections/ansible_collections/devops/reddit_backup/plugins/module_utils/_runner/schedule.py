# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schedules: a cron expression (the guide's `BACKUP_SCHEDULE="0 2 * * *"`) checked and turned into the systemd
`OnCalendar=` expression that fires at the same moments, so one setting drives cron files and timers alike."""

from __future__ import annotations

import re

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SYSTEMD_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
# (name, lowest, highest, names that stand for numbers)
FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, WEEKDAYS),
)
TERM = re.compile(r"^(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def _number(text: str, field: tuple) -> int:
    name, low, high, names = field
    if names and text in names:
        return names.index(text) + (1 if name == "month" else 0)
    if not text.isdigit():
        raise BackupError("%r is not a valid %s" % (text, name))
    value = int(text)
    if not low <= value <= high:
        raise BackupError("%s %d is out of range (%d-%d)" % (name, value, low, high))
    return value


def _values(text: str, field: tuple):
    """The sorted values a cron field stands for, or None for `*` (every value)."""
    name, low, high, _names = field
    if text == "*":
        return None
    values = set()
    for term in text.lower().split(","):
        match = TERM.match(term)
        if not match:
            raise BackupError("cannot read %r in the %s field" % (term, name))
        base, step = match.group("base"), match.group("step")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-")
            start, end = _number(first, field), _number(last, field)
            if start > end:
                raise BackupError("range %s in the %s field runs backwards" % (base, name))
        else:
            start = _number(base, field)
            end = high if step else start
        step_value = int(step) if step else 1
        if step_value < 1:
            raise BackupError("step /%s in the %s field must be at least 1" % (step, name))
        values.update(range(start, end + 1, step_value))
    if name == "day of week" and 7 in values:  # cron's 7 is Sunday too
        values.discard(7)
        values.add(0)
    if values == set(range(low, high + 1)) or (name == "day of week" and values == set(range(0, 7))):
        return None
    return sorted(values)


def parse_cron(expression: str) -> list:
    """The five fields of ``expression`` as value lists (None for every value); raises BackupError when the
    expression is not a 5-field cron expression or a macro such as @daily."""
    text = " ".join(str(expression or "").split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise BackupError("cron macro %r is not supported here; use one of %s or five fields"
                              % (text, ", ".join(sorted(MACROS))))
        text = MACROS[text.lower()]
    fields = text.split(" ")
    if len(fields) != 5:
        raise BackupError("schedule %r is not a cron expression: it needs five fields (minute hour day-of-month "
                          "month day-of-week), such as '0 2 * * *'" % expression)
    return [_values(part, field) for part, field in zip(fields, FIELDS)]


def _calendar_part(values, high: int) -> str:
    """One OnCalendar component: '*', 'a/step' for an arithmetic run to the end of the range, else a list."""
    if values is None:
        return "*"
    if len(values) == 1:
        return "%02d" % values[0]
    step = values[1] - values[0]
    arithmetic = all(b - a == step for a, b in zip(values, values[1:]))
    if arithmetic and values[-1] + step > high:
        return "%02d/%d" % (values[0], step)
    return ",".join("%02d" % value for value in values)


def cron_to_oncalendar(expression: str) -> str:
    """The systemd OnCalendar expression that fires exactly when the cron ``expression`` does.

    Raises BackupError for what has no exact translation: both day-of-month and day-of-week restricted (cron
    fires on either, systemd only when both match); give such a job an explicit on_calendar instead."""
    minute, hour, day, month, weekday = parse_cron(expression)
    if day is not None and weekday is not None:
        raise BackupError("schedule %r restricts both day of month and day of week: cron runs it when either "
                          "matches, systemd only when both do; give this job an explicit on_calendar" % expression)
    date = "*-%s-%s" % (_calendar_part(month, 12), _calendar_part(day, 31))
    time = "%s:%s:00" % (_calendar_part(hour, 23), _calendar_part(minute, 59))
    if weekday is None:
        return "%s %s" % (date, time)
    return "%s %s %s" % (",".join(SYSTEMD_WEEKDAYS[value] for value in weekday), date, time)
