# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files that schedule an application's backup jobs: a systemd service and timer per job (and a .path unit
that takes a configuration backup on every change), or a cron file per job. Each file is written only when its
content differs; the application's files that are no longer wanted (a removed job, the other scheduler, the
application removed) are removed. Files of other applications are never touched."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass, field

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._publish import write_public
from ansible_collections.devops.reddit_backup.plugins.module_utils._runner.schedule import (
    cron_to_oncalendar, parse_cron,
)

SCHEDULERS = ("systemd", "cron", "none")
APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # cron.d file names allow no '.'
JOB_NAME = re.compile(r"^[a-z0-9_]+$")  # no '-': app "foo" never owns the files of app "foo-bar"
ARGUMENT = re.compile(r"^[A-Za-z0-9_.:/=@+-]+$")  # nothing systemd or cron would interpret ('%', quotes, spaces)
CONFIG_JOB = "config"
HEADER = "# Managed by Ansible (devops.reddit_backup.runner): change the role's variables, not this file."
CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MACHINE_ID = "/etc/machine-id"
MINUTES_PER_DAY = 24 * 60


@dataclass
class Job:
    name: str
    command: list
    description: str = ""
    schedule: str = None
    on_calendar: str = None
    timeout: str = None
    randomized_delay: str = None
    settle_seconds: int = 0


@dataclass
class Schedule:
    app: str
    scheduler: str
    command: str
    user: str
    group: str
    systemd_dir: str
    cron_dir: str
    jobs: list = field(default_factory=list)
    config_watch: list = field(default_factory=list)
    config_settle_seconds: int = 5
    cron_mailto: str = ""
    present: bool = True
    spread_minutes: int = 0


def job_from(data: dict) -> Job:
    """A Job from the role's dict; raises BackupError naming the job and what is wrong."""
    name = str(data.get("name", ""))
    if not JOB_NAME.match(name) or name == CONFIG_JOB:
        raise BackupError("job name %r: use lowercase letters, digits and '_' ('%s' is the configuration backup "
                          "on change)" % (name, CONFIG_JOB))
    command = data.get("command")
    if isinstance(command, str) or not command or not all(ARGUMENT.match(str(word)) for word in command):
        raise BackupError("job %s: command must be a list of reddit-backup arguments made of letters, digits and "
                          "_.:/=@+- (no spaces, quotes or '%%'), such as [create, --type, full]" % name)
    return Job(name=name, command=[str(word) for word in command], description=str(data.get("description") or
               "%s job" % name), schedule=data.get("schedule") or None, on_calendar=data.get("on_calendar") or None,
               timeout=data.get("timeout") or None, randomized_delay=data.get("randomized_delay") or None)


def check(schedule: Schedule) -> None:
    if not APP_NAME.match(schedule.app or ""):
        raise BackupError("application name %r: use letters, digits, '_' and '-' (at most 64)" % schedule.app)
    if schedule.scheduler not in SCHEDULERS:
        raise BackupError("scheduler %r is not one of %s" % (schedule.scheduler, ", ".join(SCHEDULERS)))
    for job in schedule.jobs:
        if schedule.scheduler == "cron":
            if not job.schedule:
                raise BackupError("job %s has no cron schedule; cron needs one" % job.name)
            parse_cron(job.schedule)
        if schedule.scheduler == "systemd" and not (job.on_calendar or job.schedule):
            raise BackupError("job %s has neither a schedule nor an on_calendar" % job.name)
        for text in (job.description, job.on_calendar or "", job.timeout or "", job.randomized_delay or ""):
            if "\n" in str(text) or "%" in str(text):
                raise BackupError("job %s: no newline or '%%' in description, on_calendar, timeout or "
                                  "randomized_delay" % job.name)
    check_spread(schedule)
    names = [job.name for job in schedule.jobs]
    if len(names) != len(set(names)):
        raise BackupError("job names must be unique: %s" % ", ".join(names))


def shortest_period_minutes(expression: str) -> int:
    """The shortest gap, in minutes, between two runs of a cron ``expression`` within a day (a day for daily and
    rarer schedules): what a job's start may slide by before it meets its next run."""
    minute, hour = parse_cron(expression)[:2]
    minutes = minute if minute is not None else list(range(60))
    hours = hour if hour is not None else list(range(24))
    starts = [60 * h + m for h in hours for m in minutes]
    if len(starts) == 1:
        return MINUTES_PER_DAY
    return min(later - earlier for earlier, later in zip(starts, starts[1:] + [starts[0] + MINUTES_PER_DAY]))


def check_spread(schedule: Schedule) -> None:
    """The spread must be shorter than the period of every job it delays, or a run would slide onto the next."""
    spread = schedule.spread_minutes
    if not isinstance(spread, int) or isinstance(spread, bool) or spread < 0:
        raise BackupError("schedule spread %r: give a whole number of minutes, 0 or more (0 turns the spread off)"
                          % (spread,))
    for job in schedule.jobs:
        if spread and job.schedule and spread_applies(schedule, job):
            period = shortest_period_minutes(job.schedule)
            if spread >= period:
                raise BackupError("schedule spread of %d minutes is not shorter than job %s's period (%d minutes, "
                                  "%r): its runs would slide onto the next ones; give less than %d"
                                  % (spread, job.name, period, job.schedule, period))


def spread_applies(schedule: Schedule, job: Job) -> bool:
    """Cron delays every job by the spread; a timer with its own delay or its own calendar is the operator's."""
    return schedule.scheduler == "cron" or not (job.randomized_delay or job.on_calendar)


def spread_of(schedule: Schedule, job: Job):
    """The job's RandomizedDelaySec=: its own randomized_delay, else the schedule's spread, else None."""
    if job.randomized_delay:
        return job.randomized_delay
    return "%dmin" % schedule.spread_minutes if schedule.spread_minutes else None


def machine_identity() -> str:
    """What systemd derives FixedRandomDelay from (the machine id), the host name when there is none."""
    try:
        with open(MACHINE_ID, encoding="ascii") as handle:
            return handle.read().strip() or socket.gethostname()
    except (OSError, UnicodeDecodeError):
        return socket.gethostname()


def cron_delay_seconds(identity: str, name: str, spread_minutes: int) -> int:
    """A stable per-host, per-job offset in [0, spread): sha256 of the machine identity and the cron file's name."""
    if not spread_minutes:
        return 0
    digest = hashlib.sha256(("%s:%s" % (identity, name)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % (spread_minutes * 60)


def prefix(app: str) -> str:
    return "reddit-backup-%s-" % app


def own_file(app: str, filename: str) -> bool:
    return re.match(r"^%s[a-z0-9_]+(\.service|\.timer|\.path)?$" % re.escape(prefix(app)), filename) is not None


def run_line(schedule: Schedule, job: Job) -> str:
    return "%s --app %s --quiet %s" % (schedule.command, schedule.app, " ".join(job.command))


def render_service(schedule: Schedule, job: Job) -> str:
    lines = [HEADER, "# The %s of %s: reddit-backup %s" % (job.description, schedule.app, " ".join(job.command)),
             "[Unit]", "Description=reddit-backup %s: %s" % (schedule.app, job.description),
             "Wants=network-online.target", "After=network-online.target", "",
             "[Service]", "Type=oneshot", "User=%s" % schedule.user, "Group=%s" % schedule.group]
    if job.settle_seconds:
        lines += ["# Let a burst of edits settle before the snapshot.", "ExecStartPre=/bin/sleep %d" % job.settle_seconds]
    lines.append("ExecStart=%s" % run_line(schedule, job))
    if job.timeout:
        lines.append("TimeoutStartSec=%s" % job.timeout)
    lines += ["SyslogIdentifier=%s%s" % (prefix(schedule.app), job.name), "Nice=10", "IOSchedulingClass=best-effort",
              "IOSchedulingPriority=7", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=full"]
    return "\n".join(lines) + "\n"


def render_timer(schedule: Schedule, job: Job) -> str:
    calendar = job.on_calendar or cron_to_oncalendar(job.schedule)
    description = "reddit-backup %s: %s (%s)" % (schedule.app, job.description, job.schedule or calendar)
    lines = [HEADER, "[Unit]", "Description=%s" % description, "",
             "[Timer]", "OnCalendar=%s" % calendar,
             "# A run missed while the host was down starts as soon as it is back.", "Persistent=true"]
    delay = spread_of(schedule, job)
    if delay:
        lines += ["# Each host starts at its own fixed offset in this window (from its machine id): no stampede.",
                  "RandomizedDelaySec=%s" % delay, "FixedRandomDelay=true"]
    lines += ["Unit=%s%s.service" % (prefix(schedule.app), job.name), "", "[Install]", "WantedBy=timers.target"]
    return "\n".join(lines) + "\n"


def render_path(schedule: Schedule) -> str:
    lines = [HEADER, "# A configuration backup of %s on every change (the guide's \"on change\" row)." % schedule.app,
             "[Unit]", "Description=reddit-backup %s: configuration backup on every change" % schedule.app, "",
             "[Path]"]
    lines += ["PathChanged=%s" % path for path in schedule.config_watch]
    lines += ["Unit=%s%s.service" % (prefix(schedule.app), CONFIG_JOB), "", "[Install]", "WantedBy=paths.target"]
    return "\n".join(lines) + "\n"


def render_cron(schedule: Schedule, job: Job) -> str:
    lines = [HEADER, "# The %s of %s." % (job.description, schedule.app), "SHELL=/bin/sh", "PATH=%s" % CRON_PATH]
    if schedule.cron_mailto:
        lines.append("MAILTO=%s" % schedule.cron_mailto)
    delay = cron_delay_seconds(machine_identity(), prefix(schedule.app) + job.name, schedule.spread_minutes)
    wait = "sleep %d && " % delay if delay else ""
    lines.append("%s %s %s%s" % (" ".join(job.schedule.split()), schedule.user, wait, run_line(schedule, job)))
    return "\n".join(lines) + "\n"


def config_job(schedule: Schedule) -> Job:
    return Job(name=CONFIG_JOB, command=["create", "--type", "config"], description="configuration backup on change",
               settle_seconds=int(schedule.config_settle_seconds or 0))


def wanted(schedule: Schedule) -> dict:
    """{path: content} of every file the schedule needs (empty when absent or scheduler none)."""
    files = {}
    if not schedule.present:
        return files
    if schedule.scheduler == "systemd":
        for job in schedule.jobs:
            stem = os.path.join(schedule.systemd_dir, prefix(schedule.app) + job.name)
            files[stem + ".service"] = render_service(schedule, job)
            files[stem + ".timer"] = render_timer(schedule, job)
        if schedule.config_watch:
            stem = os.path.join(schedule.systemd_dir, prefix(schedule.app) + CONFIG_JOB)
            files[stem + ".service"] = render_service(schedule, config_job(schedule))
            files[stem + ".path"] = render_path(schedule)
    elif schedule.scheduler == "cron":
        for job in schedule.jobs:
            files[os.path.join(schedule.cron_dir, prefix(schedule.app) + job.name)] = render_cron(schedule, job)
    return files


def existing(schedule: Schedule) -> list:
    """The application's files now in the units and cron folders."""
    found = set()
    for folder in sorted({schedule.systemd_dir, schedule.cron_dir}):
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise _fs.as_backup_error(error, folder) from error
        found.update(os.path.join(folder, name) for name in names
                     if own_file(schedule.app, name) and os.path.isfile(os.path.join(folder, name)))
    return sorted(found)


def _read(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return ""  # unreadable or not text: it is rewritten


def plan(schedule: Schedule) -> dict:
    """What apply() would do: files to write (with their old and new content), files to remove, and the units
    to enable (timers, the path unit) and to stop before their files go."""
    check(schedule)
    files = wanted(schedule)
    write, unchanged = [], []
    for path, content in sorted(files.items()):
        before = _read(path)
        mode_ok = before is not None and (os.stat(path).st_mode & 0o7777) == 0o644
        if before == content and mode_ok:
            unchanged.append(path)
        else:
            write.append({"path": path, "before": before, "after": content})
    remove = [path for path in existing(schedule) if path not in files]

    def units(paths) -> list:
        return [os.path.basename(path) for path in paths if path.startswith(schedule.systemd_dir + os.sep)
                and path.endswith((".service", ".timer", ".path"))]

    return {
        "write": write,
        "remove": remove,
        "unchanged": unchanged,
        "enable": [name for name in units(files) if name.endswith((".timer", ".path"))],
        "stop": units(remove),
    }


def apply(planned: dict) -> None:
    """Carry out a plan: each file written atomically (0644, as systemd and cron want), then the unwanted ones
    removed."""
    for item in planned["write"]:
        folder = os.path.dirname(item["path"])
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o755, exist_ok=True)
        write_public(item["path"], item["after"].encode())
    for path in planned["remove"]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise _fs.as_backup_error(error, path) from error
    for folder in {os.path.dirname(path) for path in planned["remove"]}:
        _fs.fsync_dir(folder)
