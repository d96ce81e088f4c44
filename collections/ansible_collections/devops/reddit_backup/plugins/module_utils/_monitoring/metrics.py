# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup metrics as a Prometheus node_exporter textfile: what the catalog holds (newest backup per type, counts,
bytes, verification verdicts), how the backup filesystem fills, and how the last run of each kind ended.

The catalog and the filesystem are read fresh on every write. What only a run knows (its status, duration, the
recovery test's restore time) is kept in a small JSON state file beside the textfile, so a backup run does not
erase the result of last Monday's recovery test. The textfile is replaced atomically: node_exporter reads the old
file or the whole new one, never a part.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._publish import write_public
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import DirectoryLock

PREFIX = "reddit_backup_"
STATE_FORMAT = 1
OPERATIONS = ("backup", "verify", "cleanup", "prune", "restore", "recovery_test", "sync", "dr_simulation",
              "rto_report")
STATUSES = ("success", "failed")
ANY_TYPE = "all"
# Only these become label values: a typo'd type would leave a series nothing ever clears.
RUN_TYPES = _catalog.TYPES + (ANY_TYPE,)
# The drills the quarterly RTO report reads back; kept for a little more than a year, at most HISTORY_LIMIT.
DRILL_OPERATIONS = ("recovery_test", "dr_simulation")
HISTORY_SECONDS = 400 * 86400
HISTORY_LIMIT = 500
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = ("type", "operation", "status")
LOCK_TIMEOUT = 30.0

# name -> (help, unit-less type); every family is a gauge: these are facts at write time, not counters.
FAMILIES = {
    "last_success_timestamp_seconds": "Creation time of the newest complete backup of each type (0: none yet).",
    "backups": "Complete backups in the catalog, by type.",
    "storage_used_bytes": "Bytes the backups of each type take in the backup directory.",
    "last_backup_size_bytes": "Size of the newest complete backup of each type.",
    "verification_success": "Verdict of the most recently verified backup of each type (1 valid, 0 invalid or "
                            "unverifiable); absent while no backup of the type was verified.",
    "verification_timestamp_seconds": "When the most recently verified backup of each type was verified.",
    "verification_backups": "Backups in the catalog by their recorded verification status.",
    "last_run_success": "Whether the last run of each operation and type succeeded (1) or failed (0).",
    "last_run_timestamp_seconds": "When the last run of each operation and type ended.",
    "last_run_duration_seconds": "How long the last run of each operation and type took.",
    "last_run_size_bytes": "Size of the archive the last backup run of each type made.",
    "filesystem_size_bytes": "Size of the filesystem holding the backup directory.",
    "filesystem_avail_bytes": "Bytes still available to the backup writer on that filesystem.",
    "filesystem_utilisation_ratio": "Used share of that filesystem, as df computes Use% (0 to 1).",
    "recovery_test_success": "Whether the last recovery test restored and verified the latest backup (1) or not (0).",
    "recovery_test_timestamp_seconds": "When the last recovery test ended.",
    "recovery_test_restore_seconds": "Restore time the last recovery test measured.",
    "recovery_test_replica_lag_seconds": "How far the Litestream replica the last recovery test restored was behind "
                                         "the live database's newest commit (seconds).",
    "last_run_rto_seconds": "Recovery time the last run of each operation measured (disaster-recovery "
                            "simulation) or reported (worst of the quarter, RTO report).",
    "last_run_rto_target_seconds": "The recovery time objective the last run of each operation was held to.",
    "schedule_max_age_seconds": "How old the last run of each scheduled operation may get before it is stale.",
    "schedule_since_timestamp_seconds": "Since when each operation is scheduled here (a drill that never ran is "
                                        "stale once this is older than its maximum age).",
    "remote_last_success_timestamp_seconds": "Creation time of the newest backup on the remote copy, as the last "
                                             "push found it (0: none there); absent where nothing is pushed.",
    "remote_checked_timestamp_seconds": "When a push last read the remote copy's catalog.",
}
VERIFICATION_STATUSES = ("valid", "invalid", "unverifiable", "unverified")


def default_state_file(textfile: str) -> str:
    """The state file beside ``textfile`` (mode 0644: run results, no secrets); node_exporter reads only
    ``*.prom`` files, so it ignores it."""
    return textfile + ".state.json"


def epoch(moment) -> float:
    """Seconds since the epoch for a catalog time (ISO-8601 string), a datetime or a number; None if unknown."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, (int, float)):
        return float(moment)
    if isinstance(moment, datetime):
        return moment.timestamp()
    try:
        return _catalog.parse_time(moment).timestamp()
    except BackupError:
        return None


def check_labels(labels) -> dict:
    """Extra labels for every series (such as ``app``): valid Prometheus names, none of ours, string values."""
    checked = {}
    for name, value in (labels or {}).items():
        if not LABEL_NAME.match(str(name)) or str(name).startswith("__"):
            raise BackupError("label name %r is not a valid Prometheus label name (letters, digits and _, not "
                              "starting with a digit or __)" % name)
        if name in RESERVED_LABELS:
            raise BackupError("label %r is set by the metrics themselves; choose another name" % name)
        checked[str(name)] = "" if value is None else str(value)
    return checked


def check_run(run) -> dict:
    """A run result as the state keeps it; raises BackupError naming what is wrong."""
    if not run:
        return None
    operation = run.get("operation")
    if operation not in OPERATIONS:
        raise BackupError("run operation %r is not one of %s" % (operation, ", ".join(OPERATIONS)))
    status = run.get("status")
    if status not in STATUSES:
        raise BackupError("run status %r is not one of %s" % (status, ", ".join(STATUSES)))
    backup_type = str(run.get("type") or ANY_TYPE)
    if backup_type not in RUN_TYPES:
        raise BackupError("run type %r is not one of %s" % (backup_type, ", ".join(RUN_TYPES)))
    checked = {
        "operation": operation,
        "type": backup_type,
        "status": status,
        "finished": epoch(run.get("finished")) or time.time(),
        "duration": _number(run.get("duration"), "duration"),
        "size": _number(run.get("size"), "size"),
        "name": run.get("name") or None,
        "error": (str(run["error"])[:500] if run.get("error") else None),
    }
    if operation == "recovery_test":
        checked["restore_seconds"] = _number(run.get("restore_seconds"), "restore_seconds")
        checked["replica_lag_seconds"] = _number(run.get("replica_lag_seconds"), "replica_lag_seconds")
    for field in ("rto_seconds", "rto_target_seconds"):
        if run.get(field) not in (None, ""):
            checked[field] = _number(run.get(field), field)
    return checked


def check_schedule(schedule) -> dict:
    """{operation: max age in seconds} as the state keeps it; raises BackupError naming what is wrong."""
    if schedule is None:
        return None
    if not isinstance(schedule, dict):
        raise BackupError("schedule must be a mapping of operation to maximum age in seconds, not %r" % (schedule,))
    checked = {}
    for operation, max_age in schedule.items():
        if operation not in OPERATIONS:
            raise BackupError("schedule operation %r is not one of %s" % (operation, ", ".join(OPERATIONS)))
        seconds = _number(max_age, "schedule %s maximum age" % operation)
        if not seconds:
            raise BackupError("schedule %s: the maximum age must be more than 0 seconds" % operation)
        checked[operation] = seconds
    return checked


def declare_schedule(state: dict, schedule: dict, now: float) -> None:
    """Replace the declared schedule; an operation declared before keeps the time it was first declared."""
    before = state.get("schedule") or {}
    state["schedule"] = {operation: {"max_age": max_age, "since": (before.get(operation) or {}).get("since", now)}
                         for operation, max_age in sorted(schedule.items())}


def remember_drill(state: dict, run: dict) -> None:
    """Keep the drills (not only the last one) for the RTO report: a year of them, at most HISTORY_LIMIT."""
    if run["operation"] not in DRILL_OPERATIONS:
        return
    history = [drill for drill in state.get("drills") or [] if drill.get("finished", 0) > run["finished"] -
               HISTORY_SECONDS]
    history.append({key: run.get(key) for key in ("operation", "status", "finished", "duration", "name",
                                                  "restore_seconds", "rto_seconds", "rto_target_seconds")
                    if run.get(key) is not None})
    state["drills"] = history[-HISTORY_LIMIT:]


def _number(value, what: str):
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BackupError("run %s %r is not a number" % (what, value)) from None
    if number < 0:
        raise BackupError("run %s %r is negative" % (what, value))
    return number


def check_remote(remote) -> dict:
    """What a push found on the remote copy, as the state keeps it; raises BackupError naming what is wrong."""
    if not remote:
        return None
    newest = remote.get("newest")
    checked = {"newest": epoch(newest) if newest else None, "checked": epoch(remote.get("checked")) or time.time()}
    if newest and checked["newest"] is None:
        raise BackupError("remote newest %r is not a time" % newest)
    return checked


def run_key(run: dict) -> str:
    return "%s/%s" % (run["operation"], run["type"])


class StateLock(DirectoryLock):
    """One writer at a time per state file (an hourly database run may end while a full run ends). The lock is a
    flock on the state file's directory, so no lock file is left behind for another user to trip over."""

    def __init__(self, state_file: str, timeout: float = LOCK_TIMEOUT) -> None:
        super().__init__(os.path.dirname(os.path.abspath(state_file)), timeout, "metrics", name=None)

    def _open(self) -> int:
        return os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def _busy_message(self, holder: str) -> str:
        return "the metrics folder %s stayed locked by another run for %s s" % (self.path, self.timeout)


def load_state(state_file: str) -> tuple:
    """(state, warning): the saved run results, or an empty state with a warning when the file is unreadable
    (a damaged state must not stop metrics; it only forgets earlier run results)."""
    empty = {"format": STATE_FORMAT, "runs": {}, "recovery_test": None, "remote": None}
    try:
        with open(state_file, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return empty, None
    except (OSError, ValueError) as error:
        return empty, "metrics state %s was unreadable (%s); earlier run results are forgotten" % (state_file, error)
    if not isinstance(state, dict) or not isinstance(state.get("runs"), dict):
        return empty, "metrics state %s had an unknown shape; earlier run results are forgotten" % state_file
    state.setdefault("recovery_test", None)
    state.setdefault("remote", None)
    return _forget_unknown_runs(state, state_file)


def _forget_unknown_runs(state: dict, state_file: str) -> tuple:
    """Runs of an operation or type we do not know (an older version recorded a typo such as 'differential')
    are dropped, so their series disappear instead of alerting forever."""
    unknown = sorted(key for key, run in state["runs"].items() if not isinstance(run, dict)
                     or run.get("operation") not in OPERATIONS or run.get("type") not in RUN_TYPES)
    for key in unknown:
        del state["runs"][key]
    if unknown:
        return state, "metrics state %s held runs of unknown operations or types (%s); they are forgotten" % (
            state_file, ", ".join(unknown))
    return state, None


def last_run(state_file: str, operation: str, backup_type: str = ANY_TYPE):
    """The recorded result of the last ``operation`` run of ``backup_type``, or None."""
    state, _warning = load_state(state_file)
    return state["runs"].get("%s/%s" % (operation, backup_type or ANY_TYPE))


def filesystem_usage(path: str) -> dict:
    """Size, available bytes and utilisation (df's Use%) of the filesystem holding ``path`` or, while ``path``
    does not exist yet, its nearest existing parent."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    stats = os.statvfs(probe)
    size = stats.f_blocks * stats.f_frsize
    used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    avail = stats.f_bavail * stats.f_frsize
    ratio = used / (used + avail) if used + avail else 0.0
    return {"path": probe, "size": size, "avail": avail, "used": used, "utilisation": round(ratio, 6)}


def verification_of(entry: dict):
    """(status, valid, at) of a catalog entry's recorded verification; status 'unverified' and valid None when
    there is none (older catalogs have no ``verified`` key) or it was made on other bytes than the archive's."""
    verified = entry.get("verified")
    if verified is None:
        return "unverified", None, None
    if isinstance(verified, bool):
        return ("valid" if verified else "invalid"), verified, None
    if not isinstance(verified, dict) or verified.get("current") is False:
        return "unverified", None, None
    status, valid = verified.get("status"), verified.get("valid")
    if valid is None and status is None:
        return "unverified", None, None
    if valid is None:
        valid = status == "valid"
    if status not in VERIFICATION_STATUSES:
        status = "valid" if valid else "invalid"
    return status, bool(valid), epoch(verified.get("at"))


def build_samples(backups: list, state: dict, usage: dict, labels: dict) -> list:
    """Every sample as (family, labels, value), sorted: the same inputs always give the same text."""
    samples = []

    def add(family, value, **extra):
        if value is not None:
            samples.append((family, tuple(sorted(dict(labels, **extra).items())), value))

    by_type = {backup_type: [b for b in backups if b.get("type") == backup_type] for backup_type in _catalog.TYPES}
    verification_counts = dict.fromkeys(VERIFICATION_STATUSES, 0)
    for backup_type, entries in sorted(by_type.items()):
        newest = entries[-1] if entries else None
        add("last_success_timestamp_seconds", int(epoch(newest["created"]) or 0) if newest else 0, type=backup_type)
        add("backups", len(entries), type=backup_type)
        add("storage_used_bytes", sum(entry.get("size") or 0 for entry in entries), type=backup_type)
        if newest is not None:
            add("last_backup_size_bytes", newest.get("size") or 0, type=backup_type)
        verdicts = []
        for entry in entries:
            status, valid, at = verification_of(entry)
            verification_counts[status] += 1
            if valid is not None:
                verdicts.append((at or epoch(entry.get("created")) or 0, valid))
        if verdicts:
            at, valid = max(verdicts, key=lambda verdict: verdict[0])
            add("verification_success", int(valid), type=backup_type)
            add("verification_timestamp_seconds", int(at), type=backup_type)
    for status, count in verification_counts.items():
        add("verification_backups", count, status=status)

    for _key, run in sorted(state["runs"].items()):
        run_labels = {"operation": run["operation"], "type": run["type"]}
        add("last_run_success", int(run["status"] == "success"), **run_labels)
        add("last_run_timestamp_seconds", int(run["finished"]), **run_labels)
        add("last_run_duration_seconds", _round(run.get("duration")), **run_labels)
        if run["operation"] == "backup":
            add("last_run_size_bytes", _int(run.get("size")), **run_labels)
        add("last_run_rto_seconds", _round(run.get("rto_seconds")), **run_labels)
        add("last_run_rto_target_seconds", _round(run.get("rto_target_seconds")), **run_labels)

    for operation, declared in sorted((state.get("schedule") or {}).items()):
        add("schedule_max_age_seconds", _round(declared.get("max_age")), operation=operation)
        add("schedule_since_timestamp_seconds", _int(declared.get("since")), operation=operation)

    recovery = state.get("recovery_test")
    if recovery:
        add("recovery_test_success", int(recovery["status"] == "success"))
        add("recovery_test_timestamp_seconds", int(recovery["finished"]))
        add("recovery_test_restore_seconds", _round(recovery.get("restore_seconds")))
        add("recovery_test_replica_lag_seconds", _round(recovery.get("replica_lag_seconds")))

    remote = state.get("remote")
    if remote:
        add("remote_last_success_timestamp_seconds", int(remote.get("newest") or 0))
        add("remote_checked_timestamp_seconds", int(remote["checked"]))

    if usage:
        add("filesystem_size_bytes", usage["size"])
        add("filesystem_avail_bytes", usage["avail"])
        add("filesystem_utilisation_ratio", usage["utilisation"])
    return samples


def _round(value):
    return None if value is None else round(float(value), 3)


def _int(value):
    return None if value is None else int(value)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def render(samples: list, families: dict = None, prefix: str = PREFIX) -> str:
    """The Prometheus text exposition format, families in a fixed order, HELP and TYPE before each. ``families``
    ({name: help}) and ``prefix`` default to this file's (the backup server's job passes its own)."""
    lines = []
    for family, help_text in (FAMILIES if families is None else families).items():
        rows = sorted((label_items, value) for name, label_items, value in samples if name == family)
        if not rows:
            continue
        name = prefix + family
        lines.append("# HELP %s %s" % (name, help_text))
        lines.append("# TYPE %s gauge" % name)
        for label_items, value in rows:
            label_text = ",".join('%s="%s"' % (key, escape_label(val)) for key, val in label_items)
            lines.append("%s%s %s" % (name, "{%s}" % label_text if label_text else "", format_value(value)))
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict:
    """{(name, ((label, value), ...)): value} of a textfile we wrote; for tests and for reading results back."""
    series = {}
    pattern = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = pattern.match(line)
        if not match:
            raise BackupError("cannot read metrics line %r" % line)
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        series[(match.group(1), labels)] = float(match.group(3))
    return series


def record(textfile: str, backup_dir: str, run=None, labels=None, state_file=None, filesystem_path=None,
           check_mode: bool = False, remote=None, schedule=None) -> dict:
    """Record ``run`` (if any) and declare ``schedule`` (if given: {operation: max age in seconds}, replacing the
    one declared before) in the state, then rewrite ``textfile`` from the catalog, the filesystem and the
    state. ``remote`` ({"newest": creation time of the newest backup on the remote copy or None}) is what a push
    found there; it is kept until the next push says otherwise. Returns what was written and what the run replaced
    (``previous``: the last result of the same operation and type, so callers can tell a recovery from a
    failure)."""
    if not textfile.endswith(".prom"):
        raise BackupError("textfile %s must end in .prom: node_exporter's textfile collector reads only those"
                          % textfile)
    directory = os.path.dirname(os.path.abspath(textfile))
    if not os.path.isdir(directory):
        raise BackupError("textfile directory %s does not exist; create it (the monitoring role does) or point "
                          "textfile at node_exporter's --collector.textfile.directory" % directory)
    labels = check_labels(labels)
    run = check_run(run)
    remote = check_remote(remote)
    schedule = check_schedule(schedule)
    state_file = state_file or default_state_file(textfile)
    warnings = []
    lock = StateLock(state_file) if (run or schedule is not None) and not check_mode else None
    if lock:
        lock.__enter__()
    try:
        state, warning = load_state(state_file)
        if warning:
            warnings.append(warning)
        previous = None
        state_before = json.dumps(state, sort_keys=True)
        if schedule is not None:
            declare_schedule(state, schedule, time.time())
        if run:
            previous = state["runs"].get(run_key(run))
            state["runs"][run_key(run)] = run
            remember_drill(state, run)
            if run["operation"] == "recovery_test":
                state["recovery_test"] = run
            if remote:
                state["remote"] = remote
        state_changed = bool(run) or json.dumps(state, sort_keys=True) != state_before
        if state_changed and not check_mode:
            # readable by all, like the textfile: a run by hand as root must not lock the job user out
            write_public(state_file, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())
        backups = _catalog.list_backups(backup_dir) if os.path.isdir(backup_dir) else []
        usage = filesystem_usage(filesystem_path or backup_dir)
        text = render(build_samples(backups, state, usage, labels))
        try:
            with open(textfile, encoding="utf-8") as handle:
                changed = handle.read() != text
        except FileNotFoundError:
            changed = True
        except OSError as error:
            raise _fs.as_backup_error(error, textfile) from error
        if changed and not check_mode:
            write_public(textfile, text.encode())
    finally:
        if lock:
            lock.__exit__(None, None, None)
    return {
        "changed": changed or state_changed,
        "state_changed": state_changed,
        "textfile": textfile,
        "state_file": state_file,
        "text": text,
        "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "filesystem": usage,
        "run": run,
        "previous": previous,
        "warnings": warnings,
    }


def _median(values: list):
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def rto_report(state_file: str, days: float, target_seconds: float, now: float = None) -> dict:
    """The recovery-time report of the drills recorded in the last ``days``: each drill, and per kind the count,
    failures and the worst, median and latest measured recovery time against ``target_seconds``. ``passed`` when
    at least one disaster-recovery simulation passed in the period and none measured more than the target."""
    now = time.time() if now is None else now
    state, _warning = load_state(state_file)
    drills = sorted((drill for drill in state.get("drills") or [] if drill.get("finished", 0) > now - days * 86400),
                    key=lambda drill: drill["finished"])
    kinds = {}
    for operation in DRILL_OPERATIONS:
        mine = [drill for drill in drills if drill.get("operation") == operation]
        times = [drill.get("rto_seconds", drill.get("restore_seconds")) for drill in mine
                 if drill.get("status") == "success"]
        times = [seconds for seconds in times if seconds is not None]
        kinds[operation] = {"drills": len(mine), "failed": sum(drill.get("status") != "success" for drill in mine),
                            "worst_seconds": max(times) if times else None, "median_seconds": _median(times),
                            "latest_seconds": times[-1] if times else None}
    simulations = kinds["dr_simulation"]
    worst = simulations["worst_seconds"]
    passed = simulations["drills"] > simulations["failed"] and worst is not None and worst <= target_seconds
    report = {"generated": now, "days": days, "rto_target_seconds": target_seconds, "kinds": kinds,
              "drills": drills, "passed": passed, "rto_seconds": worst}
    report["text"] = render_rto_report(report)
    return report


def render_rto_report(report: dict) -> str:
    """The report as a person reads it."""
    def seconds(value):
        return "-" if value is None else "%.1f s" % value
    lines = ["Recovery time report, %s" % _when(report["generated"]),
             "Period: the last %g days. Recovery time objective: %s." % (report["days"],
                                                                         seconds(report["rto_target_seconds"])),
             "Verdict: %s" % ("RTO MET: the worst disaster-recovery simulation stayed within the objective"
                              if report["passed"] else
                              "RTO NOT PROVEN: no passing disaster-recovery simulation in the period, or one "
                              "exceeded the objective"), ""]
    for operation, kind in report["kinds"].items():
        lines.append("%-14s drills %d, failed %d, worst %s, median %s, latest %s" % (
            operation, kind["drills"], kind["failed"], seconds(kind["worst_seconds"]),
            seconds(kind["median_seconds"]), seconds(kind["latest_seconds"])))
    lines += ["", "Drills:"]
    for drill in report["drills"]:
        lines.append("  %s  %-14s %-8s %s  %s" % (_when(drill["finished"]), drill.get("operation"),
                                                  drill.get("status"),
                                                  seconds(drill.get("rto_seconds", drill.get("restore_seconds"))),
                                                  drill.get("name") or ""))
    if not report["drills"]:
        lines.append("  none recorded")
    return "\n".join(lines) + "\n"


def write_rto_report(path: str, state_file: str, days: float, target_seconds: float, check_mode: bool = False) -> dict:
    """Make the report, write it to ``path`` (readable by all, atomically) and return it with the run to record."""
    if days <= 0 or target_seconds <= 0:
        raise BackupError("the RTO report needs a period of more than 0 days and a target of more than 0 seconds "
                          "(got %s days, %s s)" % (days, target_seconds))
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise BackupError("the folder of the RTO report %s does not exist; create it or choose another path" % path)
    report = rto_report(state_file, days, target_seconds)
    if not check_mode:
        write_public(path, report["text"].encode())
    report["run"] = {"operation": "rto_report", "status": "success" if report["passed"] else "failed",
                     "rto_seconds": report["rto_seconds"], "rto_target_seconds": target_seconds,
                     "error": None if report["passed"] else "recovery time objective not proven (see %s)" % path}
    return report
