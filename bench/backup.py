"""Full backup of the sample app: the guide's manual method, the best hand pipeline, and backup_create through
ansible-playbook (plus the engine called directly, to separate Ansible's own cost from the backup's)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

from _common import (REPO, TARGET_PYTHON, Step, clean_dir, loadavg, markdown_table, mb, run_step,
                     summarize, venv_bin)

NAME = "backup"
# The guide's full-system backup excludes (backup-and-recovery-guide.md, "Full System Backup").
GUIDE_EXCLUDES = ["backups", "logs/*.log.*", "venv", "__pycache__"]
SQLITE_HEADER = b"SQLite format 3\x00"
MEMORY_TARGET_MB = 100
TARGETS = {"speedup_vs_guide": 10.0, "time_vs_zstd_hand": 1.2}


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


def _is_module_process(argv: list, exe: str) -> bool:
    """The python that runs backup_create: AnsiballZ_backup_create.py is in its command line (the local
    connection does not pipeline); failing that, the process running the targets' python (the controller
    runs the venv's)."""
    if not os.path.basename(exe).startswith("python"):
        return False  # not the `/bin/sh -c '/usr/bin/python3 .../AnsiballZ_backup_create.py'` around it
    joined = " ".join(argv)
    if "AnsiballZ" in joined or "backup_create" in joined:
        return True
    target = os.path.realpath(TARGET_PYTHON)
    return exe == target and target != os.path.realpath(sys.executable)


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

    def _write_playbook(self, app_root: str, backup_dir: str) -> None:
        text = "\n".join([
            "- name: Benchmark backup_create",
            "  hosts: localhost",
            "  connection: local",
            "  gather_facts: false",
            "  tasks:",
            "    - name: Full backup",
            "      devops.reddit_backup.backup_create:",
            "        app_root: %s" % json.dumps(app_root),
            "        backup_dir: %s" % json.dumps(backup_dir),
            "      register: backup",
            "",
        ])
        with open(self.playbook, "w") as handle:
            handle.write(text)

    def steps(self, app_root: str, out: str, databases: list) -> list:
        self._write_playbook(app_root, os.path.join(out, "backups"))
        env = {
            "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": self.collections,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOME": os.path.join(self.workdir, "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.workdir, "ansible-tmp"),
        }
        argv = [venv_bin("ansible-playbook"), "-i", "localhost,", "-e",
                "ansible_python_interpreter=%s" % TARGET_PYTHON, self.playbook]
        return [Step("ansible-playbook", argv=argv, env=env, cwd=REPO, is_module=_is_module_process)]

    def result(self, out: str, runs: list) -> dict:
        task = _minimal_result(runs[-1].stdout)
        if task.get("failed"):
            raise RuntimeError("backup_create failed: %s" % task.get("msg"))
        return {"archive": task["archive"], "archive_bytes": task["size"], "module_duration": task["duration"],
                "files": task["files"], "bytes": task["bytes"], "databases": task["databases"]}


def _minimal_result(stdout: str) -> dict:
    """The result dict that the minimal callback printed after ``localhost | STATUS => ``."""
    match = re.search(r"^localhost \| \w+ => ", stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError("ansible-playbook printed no task result:\n%s" % stdout[-3000:])
    return json.JSONDecoder().raw_decode(stdout, match.end())[0]


ENGINE_CALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._create import BackupRequest, create_backup
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
        argv = [TARGET_PYTHON, "-c", ENGINE_CALL.strip(), self.collections, app_root, os.path.join(out, "backups")]
        return [Step("create_backup", argv=argv, is_module=lambda argv, exe: "create_backup" in " ".join(argv))]

    def result(self, out: str, runs: list) -> dict:
        data = json.loads(runs[-1].stdout)
        return {"archive": data["archive"], "archive_bytes": data["size"], "module_duration": data["duration"],
                "files": data["files"], "bytes": data["bytes"]}


def methods(workdir: str, collections: str) -> list:
    return [
        ManualMethod("guide", "guide manual: sqlite3 .backup + tar -czf", ["-czf"], ".tar.gz"),
        ManualMethod("zstd_hand", "hand pipeline: sqlite3 .backup + tar -I 'zstd -T0'", ["-I", "zstd -T0", "-cf"],
                     ".tar.zst"),
        AnsibleMethod(workdir, collections),
        EngineMethod(collections),
    ]


# ---------------------------------------------------------------------------------------------------------------
# Running and reporting


def _warm_page_cache(app_root: str) -> None:
    """Read the app once, untimed, so every method (whichever runs first) reads it from the page cache."""
    for directory, _dirs, files in os.walk(app_root):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    while handle.read(1 << 20):
                        pass


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
    _warm_page_cache(app_root)
    records = {method.key: {"key": method.key, "title": method.title, "runs": [], "commands": []}
               for method in chosen}
    last_out = {}
    for round_number in range(options.repeat):
        for method in chosen:
            out = os.path.join(workdir, "out", method.key)
            clean_dir(out)
            steps = method.steps(app_root, out, databases)
            records[method.key]["commands"] = [{"label": step.label, "command": step.display(), "env": step.env,
                                                "cwd": step.cwd} for step in steps]
            load = loadavg()
            step_runs = []
            for step in steps:
                step_run = run_step(step, os.path.join(workdir, "logs", method.key))
                step_runs.append(step_run)
                if step_run.returncode != 0:
                    raise SystemExit("bench: %s step %s failed (exit %d):\n%s\n%s" % (
                        method.key, step.label, step_run.returncode, step_run.stdout[-3000:],
                        step_run.stderr[-3000:]))
            result = method.result(out, step_runs)
            record = {
                "round": round_number + 1,
                "loadavg_before": load,
                "seconds": round(sum(step_run.seconds for step_run in step_runs), 3),
                "cpu_seconds": round(sum(step_run.cpu_seconds for step_run in step_runs), 3),
                "steps": [{"label": step_run.label, "seconds": round(step_run.seconds, 3),
                           "cpu_seconds": round(step_run.cpu_seconds, 3),
                           "tree_peak_mb": mb(step_run.tree_peak), "tree_pss_peak_mb": mb(step_run.tree_pss_peak),
                           "single_peak_mb": mb(step_run.single_peak),
                           "wait4_maxrss_mb": mb(step_run.maxrss), "samples": step_run.samples,
                           "top_processes": step_run.top} for step_run in step_runs],
                "tree_peak_mb": mb(max(step_run.tree_peak for step_run in step_runs)),
                "tree_pss_peak_mb": mb(max(step_run.tree_pss_peak for step_run in step_runs)),
                "single_peak_mb": mb(max(step_run.single_peak for step_run in step_runs)),
                "wait4_maxrss_mb": mb(max(step_run.maxrss for step_run in step_runs)),
                "module_peak_mb": mb(max(step_run.module_peak for step_run in step_runs)) or None,
                "module_tree_peak_mb": mb(max(step_run.module_tree_peak for step_run in step_runs)) or None,
            }
            record.update((key, value) for key, value in result.items() if key != "databases")
            records[method.key]["runs"].append(record)
            last_out[method.key] = result["archive"]
            print("bench: round %d/%d %-10s %7.2f s  %s MB  tree %s MB" % (
                round_number + 1, options.repeat, method.key, record["seconds"], mb(record["archive_bytes"]),
                record["tree_peak_mb"]), file=sys.stderr)
    for record in records.values():
        record["summary"] = _summary(record["runs"])
    result = {"databases": databases, "methods": list(records.values()), "loadavg_end": loadavg()}
    result["same_members"] = _compare_members(last_out)
    if not getattr(options, "keep_outputs", False):
        shutil.rmtree(os.path.join(workdir, "out"), ignore_errors=True)  # ~3x the database; the app stays cached
    result["ratios"], result["targets"] = _targets(records)
    return result


def _summary(runs: list) -> dict:
    seconds = summarize([run["seconds"] for run in runs])
    return {
        "median_s": round(seconds["median"], 3), "min_s": round(seconds["min"], 3), "max_s": round(seconds["max"], 3),
        "cpu_s": round(summarize([run["cpu_seconds"] for run in runs])["median"], 2),
        "archive_mb": mb(summarize([run["archive_bytes"] for run in runs])["median"]),
        "archive_bytes": summarize([run["archive_bytes"] for run in runs])["median"],
        # Memory: the worst run (the largest peak seen), not a median.
        "tree_peak_mb": max(run["tree_peak_mb"] for run in runs),
        "tree_pss_peak_mb": max(run["tree_pss_peak_mb"] for run in runs),
        "single_peak_mb": max(run["single_peak_mb"] for run in runs),
        "wait4_maxrss_mb": max(run["wait4_maxrss_mb"] for run in runs),
        "module_peak_mb": summarize([run["module_peak_mb"] for run in runs])["max"],
        "module_tree_peak_mb": summarize([run["module_tree_peak_mb"] for run in runs])["max"],
        "module_duration_median_s": summarize([run.get("module_duration") for run in runs])["median"],
        "module_duration_min_s": summarize([run.get("module_duration") for run in runs])["min"],
        "step_median_s": {label: round(summarize([step["seconds"] for run in runs for step in run["steps"]
                                                  if step["label"] == label])["median"], 3)
                          for label in [step["label"] for step in runs[0]["steps"]]},
    }


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
        }
    targets = []
    if "ansible" in summaries:
        summary = summaries["ansible"]
        ratio = ratios["ansible"]
        if ratio["speedup_vs_guide"] is not None:
            targets.append(_target("at least 10x faster than the guide", ratio["speedup_vs_guide"],
                                   ratio["speedup_vs_guide"] >= TARGETS["speedup_vs_guide"], "x"))
        if ratio["time_vs_zstd_hand"] is not None:
            targets.append(_target("no more than 1.2x the zstd hand pipeline", ratio["time_vs_zstd_hand"],
                                   ratio["time_vs_zstd_hand"] <= TARGETS["time_vs_zstd_hand"], "x"))
        if "guide" in summaries:
            targets.append(_target("archive no larger than gzip's %.1f MB" % summaries["guide"]["archive_mb"],
                                   summary["archive_mb"],
                                   summary["archive_bytes"] <= summaries["guide"]["archive_bytes"], " MB"))
        targets.append(_target("backup processes (module python + its zstd) under %d MB" % MEMORY_TARGET_MB,
                               summary["module_tree_peak_mb"], summary["module_tree_peak_mb"] is not None
                               and summary["module_tree_peak_mb"] < MEMORY_TARGET_MB, " MB"))
    if "zstd_hand" in summaries:
        hand = summaries["zstd_hand"]["median_s"]
        for key, text in (("ansible", "module's own duration"), ("engine", "engine called directly")):
            if key in summaries and summaries[key]["module_duration_median_s"]:
                value = round(summaries[key]["module_duration_median_s"] / hand, 2)
                targets.append(dict(_target("(diagnostic) %s: no more than 1.2x the zstd hand pipeline" % text,
                                            value, value <= TARGETS["time_vs_zstd_hand"], "x"), diagnostic=True))
    return ratios, targets


def _target(text: str, value, met: bool, unit: str) -> dict:
    return {"target": text, "value": value, "unit": unit.strip(), "met": bool(met),
            "display": "%s: %s (%s%s)" % ("PASS" if met else "MISS", text, value, unit)}


def _fmt(value, pattern: str) -> str:
    return "—" if value is None else pattern % value


def render(result: dict) -> str:
    headers = ["method", "median s", "min s", "CPU s", "archive MB", "peak tree RSS MB", "peak 1-proc RSS MB",
               "module RSS MB (own / +zstd)", "x faster than guide", "time / zstd hand"]
    rows = []
    for record in result["methods"]:
        summary = record["summary"]
        ratio = result["ratios"][record["key"]]
        module = "—" if summary["module_peak_mb"] is None else \
            "%.1f / %.1f" % (summary["module_peak_mb"], summary["module_tree_peak_mb"])
        rows.append([record["title"], _fmt(summary["median_s"], "%.2f"), _fmt(summary["min_s"], "%.2f"),
                     _fmt(summary["cpu_s"], "%.2f"), _fmt(summary["archive_mb"], "%.1f"),
                     _fmt(summary["tree_peak_mb"], "%.1f"),
                     _fmt(summary["single_peak_mb"], "%.1f"), module,
                     _fmt(ratio["speedup_vs_guide"], "%.2fx"), _fmt(ratio["time_vs_zstd_hand"], "%.2fx")])
    lines = ["## Full backup (%s)" % ", ".join(result["databases"]), "", markdown_table(headers, rows), ""]
    for record in result["methods"]:
        summary = record["summary"]
        parts = ["%s %.2f s" % (label, seconds) for label, seconds in summary["step_median_s"].items()]
        if summary["module_duration_median_s"] is not None:
            parts.append("module duration %.2f s (min %.2f)"
                         % (summary["module_duration_median_s"], summary["module_duration_min_s"]))
            parts.append("outside the engine %.2f s" % (summary["median_s"] - summary["module_duration_median_s"]))
        parts.append("peak tree PSS %.1f MB" % summary["tree_pss_peak_mb"])
        lines.append("- %s: %s" % (record["key"], "; ".join(parts)))
    lines.append("")
    lines += ["- ansible row %s" % target["display"] if not target.get("diagnostic") else "- " + target["display"]
              for target in result["targets"]]
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
    lines.append("- load average at the end: %s" % " ".join(str(value) for value in result["loadavg_end"]))
    lines += ["", "Commands (one run):"]
    for record in result["methods"]:
        lines.append("- %s:" % record["key"])
        for command in record["commands"]:
            env = " ".join("%s=%s" % item for item in sorted((command["env"] or {}).items()))
            lines.append("  - %s: `%s%s`" % (command["label"], env + " " if env else "",
                                             command["command"].replace("\n", "; ")))
    return "\n".join(lines)
