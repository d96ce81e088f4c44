"""Full backup of the sample app: the guide's manual method, the best hand pipeline, and backup_create through
ansible-playbook (plus the engine called directly, to separate Ansible's own cost from the backup's)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess

import _peers
import _profile
from _ansible import engine_step, minimal_result, playbook_step, write_playbook
from _files import warm_page_cache
from _machine import loadavg
from _report import command_lines, fmt, markdown_table, measured_cells, measured_headers, step_lines
from _stats import target
from _steps import Step, run_methods

NAME = "backup"
# The guide's full-system backup excludes (backup-and-recovery-guide.md, "Full System Backup").
GUIDE_EXCLUDES = ["backups", "logs/*.log.*", "venv", "__pycache__"]
SQLITE_HEADER = b"SQLite format 3\x00"
MEMORY_TARGET_MB = 100
TARGETS = {"speedup_vs_guide": 10.0, "time_vs_zstd_hand": 1.2,
           # issue 16's: the ansible row and the engine row against the hand `tar | zstd -T0` pipeline
           "ansible_vs_zstd_hand": 1.5, "engine_vs_zstd_hand": 1.15}
# The engine's floor: the snapshot first, then its compression, integrity check and page hashes side by side.
PROFILE_STAGES = [["snapshot"], ["zstd -3 -T0 of the snapshot", "integrity_check", "page hashes + sha256"]]


def find_databases(app_root: str) -> list:
    """SQLite files under data/ (by their header), relative to the app root: what gets snapshotted."""
    found = []
    data = os.path.join(app_root, "data")
    for directory, _dirs, files in os.walk(data):
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as handle:
                    if handle.read(16) == SQLITE_HEADER:
                        found.append(os.path.relpath(path, app_root))
            except OSError:
                continue
    return sorted(found)


# ---------------------------------------------------------------------------------------------------------------
# The methods. Each gives the steps of one run into an empty ``out`` folder, and the archive that run made.


class ManualMethod:
    """The guide's two commands, as an operator who wants the snapshot (not the live file) in the archive runs
    them: snapshot each database with `sqlite3 .backup` into a staging folder, then tar the app with the guide's
    excludes, leaving out the live database and its -wal/-shm/-journal, and add the snapshot from the staging
    folder under the same member name."""

    def __init__(self, key: str, title: str, tar_compress: list, suffix: str) -> None:
        self.key = key
        self.title = title
        self.tar_compress = tar_compress
        self.suffix = suffix

    def steps(self, app_root: str, out: str, databases: list) -> list:
        stage = os.path.join(out, "stage")
        archive = self.archive(out)
        folders = sorted({shlex.quote(os.path.dirname(os.path.join(stage, db))) for db in databases})
        snapshot_lines = ["mkdir -p %s" % " ".join(folders)]
        snapshot_lines += ["sqlite3 %s %s" % (shlex.quote(os.path.join(app_root, db)),
                                              shlex.quote(".backup %s" % os.path.join(stage, db)))
                           for db in databases]
        tar = ["tar"] + self.tar_compress + [archive, "-C", app_root]
        tar += ["--exclude=%s" % pattern for pattern in GUIDE_EXCLUDES]
        for db in databases:
            # Anchored by the ./ prefix: excludes the live file under `.`, not the snapshot added below.
            tar += ["--exclude=./%s" % db, "--exclude=./%s-*" % db]
        tar += [".", "-C", stage] + databases
        return [Step("snapshot", shell="\n".join(snapshot_lines)),
                Step("tar", shell=" ".join(shlex.quote(part) for part in tar))]

    def archive(self, out: str) -> str:
        return os.path.join(out, "full_backup" + self.suffix)

    def result(self, out: str, runs: list) -> dict:
        return {"archive": self.archive(out), "archive_bytes": os.path.getsize(self.archive(out))}


class AnsibleMethod:
    """A one-task playbook: devops.reddit_backup.backup_create on localhost, registered. ansible-core 2.19 has
    no json stdout callback without ansible.posix, so the builtin ``minimal`` callback prints the task's result
    as JSON (``localhost | CHANGED => {...}``), with no extra task; the module's own ``duration`` comes from
    there."""

    key = "ansible"
    title = "backup_create via ansible-playbook"

    def __init__(self, workdir: str, collections: str) -> None:
        self.workdir = workdir
        self.collections = collections
        self.playbook = os.path.join(workdir, "backup.yml")

    def steps(self, app_root: str, out: str, databases: list) -> list:
        write_playbook(self.playbook, "Full backup", "backup_create",
                       {"app_root": app_root, "backup_dir": os.path.join(out, "backups")}, register="backup")
        return [playbook_step("ansible-playbook", self.workdir, self.collections, self.playbook, "backup_create")]

    def result(self, out: str, runs: list) -> dict:
        task = minimal_result(runs[-1].stdout)
        if task.get("failed"):
            raise RuntimeError("backup_create failed: %s" % task.get("msg"))
        return {"archive": task["archive"], "archive_bytes": task["size"], "module_duration": task["duration"],
                "files": task["files"], "bytes": task["bytes"], "databases": task["databases"]}


ENGINE_CALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
print(json.dumps(create_backup(BackupRequest(app_root=sys.argv[2], backup_dir=sys.argv[3]))))
"""


class EngineMethod:
    """The engine alone: ``create_backup(BackupRequest(app_root, backup_dir))`` in the targets' python, no
    Ansible. Not one of the issue's rows: it shows how much of the ansible row is Ansible."""

    key = "engine"
    title = "engine create_backup() direct (diagnostic)"

    def __init__(self, collections: str) -> None:
        self.collections = collections

    def steps(self, app_root: str, out: str, databases: list) -> list:
        return [engine_step("create_backup", ENGINE_CALL, self.collections, [app_root, os.path.join(out, "backups")],
                            "create_backup")]

    def result(self, out: str, runs: list) -> dict:
        data = json.loads(runs[-1].stdout)
        return {"archive": data["archive"], "archive_bytes": data["size"], "module_duration": data["duration"],
                "files": data["files"], "bytes": data["bytes"]}


class PeerMethod:
    """restic or borg (bench/_peers.py): a snapshot of each database, then a first backup into a new, empty
    repository (made untimed, as its users make it once)."""

    def __init__(self, tool: str) -> None:
        self.key = tool
        self.title = "%s: sqlite3 .backup + %s" % (tool, "restic backup" if tool == "restic" else "borg create")
        self.repository = None

    def prepare(self, out: str) -> None:
        self.repository = _peers.Repository(self.key, os.path.join(out, self.key))
        self.repository.init()

    def steps(self, app_root: str, out: str, databases: list) -> list:
        return _peers.backup_steps(self.repository, app_root, os.path.join(out, "stage"), databases, "full")

    def result(self, out: str, runs: list) -> dict:
        return {"archive": None, "repository": self.repository.repo, "archive_bytes": self.repository.bytes()}


def methods(workdir: str, collections: str) -> list:
    return [
        ManualMethod("guide", "guide manual: sqlite3 .backup + tar -czf", ["-czf"], ".tar.gz"),
        ManualMethod("zstd_hand", "hand pipeline: sqlite3 .backup + tar -I 'zstd -T0'", ["-I", "zstd -T0", "-cf"],
                     ".tar.zst"),
        AnsibleMethod(workdir, collections),
        EngineMethod(collections),
    ] + [PeerMethod(tool) for tool in _peers.TOOLS]


# ---------------------------------------------------------------------------------------------------------------
# Running and reporting


def _member_names(archive: str) -> list:
    """Member names of an archive (./ prefix and trailing / dropped), directories left out, for comparison."""
    listing = subprocess.run(["tar", "-tf", archive] if not archive.endswith(".zst") else
                             ["tar", "-I", "zstd", "-tf", archive], capture_output=True, text=True, check=True)
    names = set()
    for line in listing.stdout.splitlines():
        if line.endswith("/"):
            continue
        name = line[2:] if line.startswith("./") else line
        names.add(name)
    names.discard("MANIFEST.json")
    return sorted(names)


def run(options, workdir: str, app_root: str, only_methods=None) -> dict:
    """Every method ``options.repeat`` times, round-robin (one of each per round, so a burst of load from
    elsewhere hits all methods alike rather than one), each run into a freshly emptied output folder."""
    databases = find_databases(app_root)
    if not databases:
        raise SystemExit("bench: no SQLite database under %s/data" % app_root)
    chosen = [method for method in methods(workdir, options.collections)
              if not only_methods or method.key in only_methods]
    if not chosen:
        return {"skipped": "no method of this family in --methods"}
    warm_page_cache(app_root)
    records, last = run_methods(NAME, chosen, options.repeat, workdir, artifact_key="archive_bytes",
                                steps_for=lambda method, out: method.steps(app_root, out, databases))
    result = {"databases": databases, "methods": list(records.values()), "loadavg_end": loadavg()}
    result["same_members"] = _compare_members({key: value["archive"] for key, value in last.items()})
    if not getattr(options, "keep_outputs", False):
        shutil.rmtree(os.path.join(workdir, "out", NAME), ignore_errors=True)  # ~3x the database
    result["ratios"], result["targets"] = _targets(records)
    profile = _profile.measure(NAME, [app_root, databases[0]], workdir, options)
    profile["lines"] = profile_lines(profile, {key: record["summary"] for key, record in records.items()})
    result["measured"] = {"profile": profile}
    return result


def profile_lines(profile: dict, summaries: dict) -> list:
    """The profile against issue 16's two targets of this family (both read against the hand pipeline)."""
    hand = (summaries.get("zstd_hand") or {}).get("median_s")
    return _profile.family_lines(profile, summaries, PROFILE_STAGES,
                                 ("ansible", TARGETS["ansible_vs_zstd_hand"], hand, "the hand pipeline"),
                                 ("engine", TARGETS["engine_vs_zstd_hand"], hand, "the hand pipeline"))


def _compare_members(archives: dict) -> dict:
    """Whether every method archived the same files (compared once, on the last round's archives, untimed)."""
    names = {key: _member_names(path) for key, path in archives.items() if path and os.path.exists(path)}
    if not names:
        return {}
    reference_key = "guide" if "guide" in names else sorted(names)[0]
    reference = set(names[reference_key])
    report = {"reference": reference_key, "files": len(reference)}
    for key, listed in names.items():
        listed = set(listed)
        report[key] = {"same": listed == reference, "only_here": sorted(listed - reference)[:10],
                       "missing_here": sorted(reference - listed)[:10]}
    return report


def _targets(records: dict) -> tuple:
    summaries = {key: record["summary"] for key, record in records.items()}
    ratios = {}
    for key, summary in summaries.items():
        ratios[key] = {
            "speedup_vs_guide": round(summaries["guide"]["median_s"] / summary["median_s"], 2)
            if "guide" in summaries else None,
            "time_vs_zstd_hand": round(summary["median_s"] / summaries["zstd_hand"]["median_s"], 2)
            if "zstd_hand" in summaries else None,
            "time_vs_fastest_peer": _peers.versus_fastest(summaries, summary["median_s"]),
        }
    targets = []
    if "ansible" in summaries:
        summary = summaries["ansible"]
        ratio = ratios["ansible"]
        if ratio["speedup_vs_guide"] is not None:
            targets.append(target("at least 10x faster than the guide", ratio["speedup_vs_guide"],
                                  ratio["speedup_vs_guide"] >= TARGETS["speedup_vs_guide"], "x"))
        if ratio["time_vs_zstd_hand"] is not None:
            targets.append(target("no more than 1.2x the zstd hand pipeline", ratio["time_vs_zstd_hand"],
                                  ratio["time_vs_zstd_hand"] <= TARGETS["time_vs_zstd_hand"], "x"))
            limit = TARGETS["ansible_vs_zstd_hand"]
            targets.append(target("ansible row at most %.1fx the hand `tar | zstd -T0` pipeline (issue 16)" % limit,
                                  ratio["time_vs_zstd_hand"], ratio["time_vs_zstd_hand"] <= limit, "x"))
        if "guide" in summaries:
            targets.append(target("archive no larger than gzip's %.1f MB" % summaries["guide"]["archive_mb"],
                                  summary["archive_mb"],
                                  summary["archive_bytes"] <= summaries["guide"]["archive_bytes"], " MB"))
        targets.append(target("backup processes (module python + its zstd) under %d MB" % MEMORY_TARGET_MB,
                              summary["module_tree_peak_mb"], summary["module_tree_peak_mb"] is not None
                              and summary["module_tree_peak_mb"] < MEMORY_TARGET_MB, " MB"))
    if "zstd_hand" in summaries and "engine" in summaries:
        value, limit = ratios["engine"]["time_vs_zstd_hand"], TARGETS["engine_vs_zstd_hand"]
        targets.append(target("engine row at most %.2fx the hand `tar | zstd -T0` pipeline (issue 16)" % limit,
                              value, value <= limit, "x", diagnostic=True))
    if "zstd_hand" in summaries:
        hand = summaries["zstd_hand"]["median_s"]
        for key, text in (("ansible", "module's own duration"), ("engine", "engine called directly")):
            if key in summaries and summaries[key]["module_duration_median_s"]:
                value = round(summaries[key]["module_duration_median_s"] / hand, 2)
                targets.append(target("(diagnostic) %s: no more than 1.2x the zstd hand pipeline" % text,
                                      value, value <= TARGETS["time_vs_zstd_hand"], "x", diagnostic=True))
    return ratios, targets


def render(result: dict) -> str:
    if result.get("skipped"):
        return "## Full backup: skipped (%s)" % result["skipped"]
    headers = measured_headers("archive MB") + ["x faster than guide", "time / zstd hand", "time / fastest peer"]
    rows = []
    for record in result["methods"]:
        summary = record["summary"]
        ratio = result["ratios"][record["key"]]
        rows.append(measured_cells(record, fmt(summary["archive_mb"], "%.1f"))
                    + [fmt(ratio["speedup_vs_guide"], "%.2fx"), fmt(ratio["time_vs_zstd_hand"], "%.2fx"),
                       fmt(ratio.get("time_vs_fastest_peer"), "%.2fx")])
    lines = ["## Full backup (%s)" % ", ".join(result["databases"]), "", markdown_table(headers, rows), ""]
    lines += step_lines(result["methods"])
    lines.append("")
    lines += ["- " + target["display"] for target in result["targets"]]
    ansible = next((record["summary"] for record in result["methods"] if record["key"] == "ansible"), None)
    if ansible:
        lines.append("- memory of the ansible row: whole tree %.1f MB RSS (%.1f MB PSS), of which the backup "
                     "processes %.1f MB; the rest is ansible-playbook's controller and its forked worker"
                     % (ansible["tree_peak_mb"], ansible["tree_pss_peak_mb"], ansible["module_tree_peak_mb"]))
    same = result.get("same_members") or {}
    if same:
        differing = [key for key, value in same.items() if isinstance(value, dict) and not value["same"]]
        lines.append("- archives hold the same %d files: %s" % (
            same["files"], "yes" if not differing else "NO (%s differ; see latest.json)" % ", ".join(differing)))
    lines += _profile.rendered(result)
    lines.append("- load average at the end: %s" % " ".join(str(value) for value in result["loadavg_end"]))
    lines += [""] + command_lines(result["methods"])
    return "\n".join(lines)
