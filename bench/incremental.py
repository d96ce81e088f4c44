"""An incremental backup after about 1% of the database's pages changed: backup_create type incremental against
a full backup of the same state, through ansible-playbook and with the engine called directly, and the guide's
manual full backup of that state for reference (the guide has no manual incremental: without the tool, an
operator takes the full backup again)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time

import _fixtures
import _peers
import _profile
from _ansible import engine_step, minimal_result, playbook_step, write_playbook
from _files import warm_page_cache
from _machine import loadavg
from _report import command_lines, fmt, markdown_table, measured_cells, measured_headers, step_lines
from _stats import MB, mb, ratio, target
from _steps import run_methods
from backup import ManualMethod, find_databases
from restore import SIDE_SUFFIXES

NAME = "incremental"
STATE = "incremental-state"
TARGETS = {"size_vs_full": 0.03, "time_vs_full": 0.5, "size_vs_smallest_peer": 0.05,
           "engine_time_vs_full": 0.35}  # issue 16's for the engine alone
# The engine's floor whatever changed: the snapshot of the whole database, then its page hashes (to find what
# changed) beside the quick_check a delta gets.
PROFILE_STAGES = [["snapshot"], ["page hashes + sha256", "quick_check"]]
CHURN_PAGE_FRACTION = 0.01
CHANGED_TABLE = "posts"


def copy_app(app_root: str, dest: str, databases: list) -> None:
    """A real copy of the app (databases without their -wal/-shm/-journal files)."""
    skip = {os.path.join(app_root, db) + suffix for db in databases for suffix in SIDE_SUFFIXES}
    shutil.copytree(app_root, dest, symlinks=True,
                    ignore=lambda directory, names: [n for n in names if os.path.join(directory, n) in skip])


def churn(database: str, fraction: float = CHURN_PAGE_FRACTION) -> dict:
    """Re-score the sentiment of every Nth post by id, N chosen so that about ``fraction`` of the database's
    pages hold an updated row (each row sits on its own table page when N is larger than the rows per page),
    in one transaction, then checkpoint the WAL into the database file."""
    started = time.monotonic()
    conn = sqlite3.connect(database)
    try:
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        rows, low, high = conn.execute("SELECT count(*), min(id), max(id) FROM %s" % CHANGED_TABLE).fetchone()
        step = max(1, int(round(rows / (page_count * fraction))))
        with conn:
            updated = conn.execute("UPDATE %s SET sentiment_score = round(-sentiment_score + 0.0625, 4) "
                                   "WHERE id %% ? = 0" % CHANGED_TABLE, (step,)).rowcount
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    return {"table": CHANGED_TABLE, "rows": rows, "every_nth_id": step, "rows_updated": updated,
            "rows_updated_fraction": round(updated / rows, 5), "page_count": page_count,
            "sql": "UPDATE %s SET sentiment_score = round(-sentiment_score + 0.0625, 4) WHERE id %% %d = 0"
                   % (CHANGED_TABLE, step), "seconds": round(time.monotonic() - started, 2)}


def _link_or_copy(source: str, target_path: str) -> None:
    try:
        os.link(source, target_path)
    except OSError:
        shutil.copy2(source, target_path)


def _backup_result(data: dict, wanted_type: str, what: str) -> dict:
    if data.get("type") != wanted_type:
        raise RuntimeError("%s: asked for a %s backup, got %s (%s)" % (what, wanted_type, data.get("type"),
                                                                       data.get("warnings")))
    found = {"archive": data["archive"], "archive_bytes": data["size"], "module_duration": data["duration"],
             "stored_files": data.get("stored_files"), "stored_bytes": data.get("bytes"), "parent": data["parent"]}
    deltas = [db for db in data["databases"] if db.get("delta")]
    if deltas:
        found["changed_pages"] = sum(db["changed_pages"] for db in deltas)
        found["page_count"] = sum(db["page_count"] for db in deltas)
    return found


class _BackupMethod:
    """backup_create of one type on the churned app, into an empty backup directory; for an incremental, one that
    holds only the parent full backup (its archive and sidecars hard-linked in, untimed)."""

    def __init__(self, key: str, backup_type: str, state: dict) -> None:
        self.key = key
        self.type = backup_type
        self.state = state

    def prepare(self, out: str):
        if self.type != "incremental":
            return None
        parent = self.state["parent"]["archive"]
        folder = os.path.join(out, "backups", os.path.basename(os.path.dirname(parent)))
        os.makedirs(folder, 0o700)
        os.chmod(os.path.join(out, "backups"), 0o700)
        for name in os.listdir(os.path.dirname(parent)):
            if name.startswith(os.path.basename(parent)):
                _link_or_copy(os.path.join(os.path.dirname(parent), name), os.path.join(folder, name))
        return {"parent": os.path.basename(parent)}


class AnsibleMethod(_BackupMethod):
    def __init__(self, key: str, backup_type: str, state: dict, workdir: str, collections: str) -> None:
        super().__init__(key, backup_type, state)
        self.title = "backup_create type=%s via ansible-playbook" % backup_type
        self.workdir = workdir
        self.collections = collections
        self.playbook = os.path.join(workdir, "backup-%s.yml" % backup_type)

    def steps(self, out: str) -> list:
        write_playbook(self.playbook, "%s backup" % self.type.capitalize(), "backup_create",
                       {"app_root": self.state["app_root"], "backup_dir": os.path.join(out, "backups"),
                        "type": self.type}, register="backup")
        return [playbook_step("ansible-playbook", self.workdir, self.collections, self.playbook, "backup_create")]

    def result(self, out: str, runs: list) -> dict:
        return _backup_result(minimal_result(runs[-1].stdout), self.type, self.key)


class EngineMethod(_BackupMethod):
    def __init__(self, key: str, backup_type: str, state: dict, collections: str) -> None:
        super().__init__(key, backup_type, state)
        self.title = "engine create_backup(type=%s) direct (diagnostic)" % backup_type
        self.collections = collections

    def steps(self, out: str) -> list:
        return [engine_step("create_backup", _fixtures.MODULE_BACKUP, self.collections,
                            [self.state["app_root"], os.path.join(out, "backups"), self.type], "create_backup")]

    def result(self, out: str, runs: list) -> dict:
        return _backup_result(json.loads(runs[-1].stdout.strip().splitlines()[-1]), self.type, self.key)


class PeerMethod:
    """restic or borg (bench/_peers.py) after the churn: a snapshot, then a backup into a copy of the repository
    that holds its backup of the state before the churn (copied untimed); the size is what the repository grew."""

    def __init__(self, tool: str, state: dict) -> None:
        self.key = tool + "_incr"
        self.title = "%s after the churn: sqlite3 .backup + %s" % (
            tool, "restic backup" if tool == "restic" else "borg create")
        self.parent = state["peers"][tool]
        self.state = state
        self.repository = None

    def prepare(self, out: str) -> None:
        self.repository = self.parent["repository"].copy_to(os.path.join(out, self.parent["repository"].tool))

    def steps(self, out: str) -> list:
        return _peers.backup_steps(self.repository, self.state["app_root"], self.parent["stage"],
                                   self.state["databases"], "incr")

    def result(self, out: str, runs: list) -> dict:
        return {"archive": None, "repository": self.repository.repo,
                "archive_bytes": self.repository.bytes() - self.parent["bytes"]}


class GuideMethod(ManualMethod):
    """The guide's manual full backup of the churned state (backup family's ``guide`` row)."""

    def __init__(self, state: dict) -> None:
        super().__init__("guide", "guide manual full: sqlite3 .backup + tar -czf (no manual incremental)", ["-czf"],
                         ".tar.gz")
        self.state = state

    def steps(self, out: str) -> list:  # the backup family's steps, on the churned copy
        return super().steps(self.state["app_root"], out, self.state["databases"])


def _selected(key: str, only_methods) -> bool:
    """``--methods ansible`` picks ansible_full and ansible_incr here too."""
    return not only_methods or key in only_methods or key.split("_")[0] in only_methods


def prepare_state(workdir: str, app_root: str, collections: str, databases: list, peers: tuple = ()) -> dict:
    """Untimed: a copy of the app, its parent full backup (engine; and one in each of the ``peers``' repositories),
    then the churn; the copy is read once more so every method reads it from the page cache."""
    root = os.path.join(workdir, STATE)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    started = time.monotonic()
    print("bench: preparing the incremental state: app copy, parent full backup, churn (untimed) ...",
          file=sys.stderr)
    app = os.path.join(root, "app")
    copy_app(app_root, app, databases)
    parent = _fixtures.engine_backup(collections, app, os.path.join(root, "parent-backups"), "full")
    peer_parents = {}
    for tool in peers:
        # The same staging folder for the parent and each run: restic picks its parent snapshot by its paths.
        seeded = _peers.seed_repository(tool, os.path.join(root, tool + "-parent"), app,
                                        os.path.join(root, tool + "-stage"), databases, "full")
        peer_parents[tool] = dict(seeded, bytes=seeded["repository"].bytes())
    churned = {db: churn(os.path.join(app, db)) for db in databases}
    warm_page_cache(app)
    return {"root": root, "app_root": app, "databases": databases, "churn": churned,
            "parent": {"archive": parent["archive"], "size": parent["size"], "duration": parent["duration"]},
            "peers": peer_parents,
            "seconds": round(time.monotonic() - started, 1)}


def run(options, workdir: str, app_root: str, only_methods=None) -> dict:
    keys = ("guide", "ansible_full", "ansible_incr", "engine_full", "engine_incr") + tuple(
        tool + "_incr" for tool in _peers.TOOLS)
    wanted = [key for key in keys if _selected(key, only_methods)]
    if not wanted:
        return {"skipped": "no method of this family in --methods"}
    databases = find_databases(app_root)
    peers = tuple(tool for tool in _peers.TOOLS if tool + "_incr" in wanted)
    state = prepare_state(workdir, app_root, options.collections, databases, peers)
    factories = {
        "guide": lambda: GuideMethod(state),
        "ansible_full": lambda: AnsibleMethod("ansible_full", "full", state, workdir, options.collections),
        "ansible_incr": lambda: AnsibleMethod("ansible_incr", "incremental", state, workdir, options.collections),
        "engine_full": lambda: EngineMethod("engine_full", "full", state, options.collections),
        "engine_incr": lambda: EngineMethod("engine_incr", "incremental", state, options.collections),
    }
    factories.update((tool + "_incr", lambda tool=tool: PeerMethod(tool, state)) for tool in peers)
    chosen = [factories[key]() for key in wanted]
    records, _last = run_methods(NAME, chosen, options.repeat, workdir, artifact_key="archive_bytes")
    profile = _profile.measure(NAME, [state["app_root"], databases[0]], workdir, options)
    profile["lines"] = profile_lines(profile, {key: record["summary"] for key, record in records.items()})
    if not getattr(options, "keep_outputs", False):
        shutil.rmtree(os.path.join(workdir, "out", NAME), ignore_errors=True)
        shutil.rmtree(state["root"], ignore_errors=True)
    result = {"databases": databases, "methods": list(records.values()), "loadavg_end": loadavg(), "state": state}
    result["ratios"], result["targets"] = _targets(records)
    result["measured"] = {"profile": profile}
    return result


def profile_lines(profile: dict, summaries: dict) -> list:
    """The profile against issue 16's targets: each incremental row against the full row of its kind."""
    def full(kind: str):
        return (summaries.get(kind + "_full") or {}).get("median_s")

    return _profile.family_lines(profile, summaries, PROFILE_STAGES,
                                 ("ansible_incr", TARGETS["time_vs_full"], full("ansible"), "its full backup"),
                                 ("engine_incr", TARGETS["engine_time_vs_full"], full("engine"), "its full backup"))


PAIRS = {"ansible_full": "ansible_full", "ansible_incr": "ansible_full", "engine_full": "engine_full",
         "engine_incr": "engine_full"}


def _targets(records: dict) -> tuple:
    summaries = {key: record["summary"] for key, record in records.items()}
    guide = summaries.get("guide", {}).get("median_s")
    ratios = {}
    for key, summary in summaries.items():
        full = summaries.get(PAIRS.get(key))
        ratios[key] = {"time_vs_full": ratio(summary["median_s"], full["median_s"]) if full else None,
                       "cpu_vs_full": ratio(summary["cpu_s"], full["cpu_s"]) if full else None,
                       "size_vs_full": round(summary["archive_bytes"] / full["archive_bytes"], 4) if full else None,
                       "speedup_vs_guide": ratio(guide, summary["median_s"]),
                       "time_vs_fastest_peer": _peers.versus_fastest(summaries, summary["median_s"], "_incr"),
                       "size_vs_smallest_peer": _peers.versus_fastest(summaries, summary["archive_bytes"], "_incr",
                                                                      "archive_bytes")}
    targets = []
    for key, diagnostic in (("ansible_incr", False), ("engine_incr", True)):
        if key not in summaries or ratios[key]["time_vs_full"] is None:
            continue
        prefix = "(diagnostic) " if diagnostic else ""
        size = ratios[key]["size_vs_full"]
        targets.append(target("%s%s archive no larger than %d%% of the full archive" % (
            prefix, key, TARGETS["size_vs_full"] * 100), "%.2f%%" % (size * 100), size <= TARGETS["size_vs_full"],
            "", diagnostic))
        value = ratios[key]["time_vs_full"]
        targets.append(target("%s%s made in at most %.1fx the time of a full backup" % (
            prefix, key, TARGETS["time_vs_full"]), value, value <= TARGETS["time_vs_full"], "x", diagnostic))
    value = ratios.get("engine_incr", {}).get("time_vs_full")
    if value is not None:
        limit = TARGETS["engine_time_vs_full"]
        targets.append(target("engine_incr made in at most %.2fx the time of its own full backup (issue 16)" % limit,
                              value, value <= limit, "x", True))
    size = ratios.get("ansible_incr", {}).get("size_vs_smallest_peer")
    if size is not None:
        targets.append(target("ansible_incr archive at least %dx smaller than restic's and borg's growth" % round(
            1 / TARGETS["size_vs_smallest_peer"]), "%.2f%%" % (size * 100), size <= TARGETS["size_vs_smallest_peer"],
            ""))
    if "ansible_incr" in summaries and "ansible_full" in summaries:
        value = ratio(summaries["ansible_incr"]["module_duration_median_s"],
                      summaries["ansible_full"]["module_duration_median_s"])
        targets.append(target("(diagnostic) module's own duration, incremental / full: at most %.1fx"
                              % TARGETS["time_vs_full"], value, value <= TARGETS["time_vs_full"], "x", True))
    return ratios, targets


def render(result: dict) -> str:
    if result.get("skipped"):
        return "## Incremental backup: skipped (%s)" % result["skipped"]
    headers = measured_headers("archive MB", "pages changed (of all)") + [
        "time / full", "CPU / full", "size / full", "x faster than guide", "time / fastest peer",
        "size / smallest peer"]
    rows = []
    for record in result["methods"]:
        summary = record["summary"]
        ratios = result["ratios"][record["key"]]
        last = record["runs"][-1]
        pages = "%d / %d (%.2f%%)" % (last["changed_pages"], last["page_count"],
                                      100.0 * last["changed_pages"] / last["page_count"]) \
            if "changed_pages" in last else "—"
        rows.append(measured_cells(record, fmt(summary["archive_bytes"] / MB, "%.2f"), pages)
                    + [fmt(ratios["time_vs_full"], "%.2fx"), fmt(ratios.get("cpu_vs_full"), "%.2fx"),
                       fmt(None if ratios["size_vs_full"] is None else ratios["size_vs_full"] * 100, "%.2f%%"),
                       fmt(ratios["speedup_vs_guide"], "%.2fx"), fmt(ratios.get("time_vs_fastest_peer"), "%.2fx"),
                       fmt(ratios.get("size_vs_smallest_peer"), "%.4fx")])
    state = result["state"]
    lines = ["## Incremental backup after ~%d%% of the pages changed (%s)" % (CHURN_PAGE_FRACTION * 100,
                                                                              ", ".join(result["databases"])), "",
             markdown_table(headers, rows), ""]
    for db, churned in sorted(state["churn"].items()):
        lines.append("- churn of %s (untimed, after the parent full backup): `%s`: %d of %d rows (%.2f%%), one "
                     "in every %d ids, in %.1f s" % (db, churned["sql"], churned["rows_updated"], churned["rows"],
                                                     100.0 * churned["rows_updated_fraction"],
                                                     churned["every_nth_id"], churned["seconds"]))
    lines.append("- parent: a full backup of the copy before the churn, %.1f MB (engine, untimed; the whole "
                 "preparation took %.0f s)" % (mb(state["parent"]["size"]), state["seconds"]))
    lines += step_lines(result["methods"])
    lines.append("")
    lines += ["- " + found["display"] for found in result["targets"]]
    lines += _profile.rendered(result)
    lines.append("- load average at the end: %s" % " ".join(str(value) for value in result["loadavg_end"]))
    lines += [""] + command_lines(result["methods"])
    return "\n".join(lines)
