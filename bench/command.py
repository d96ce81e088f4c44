"""The scheduled database backup's fixed cost: `reddit-backup create --type database` as the hourly timer runs it,
before (the command ran the backup playbook through ansible-playbook) and after (it calls the engine directly),
beside the engine's own time, with the peak memory of each.

    python bench/command.py [--db-size-mb 20] [--repeat 5] [--workdir /tmp/reddit-backup-bench-command]
                            [--before-rev d1157b1] [--output bench/results/command.json]

Installs the runner role (venv, collection, command, settings) into WORKDIR/root with the sample app, exactly as
the integration tests do; "before" is the command file of --before-rev (the last commit where it ran playbooks),
run with the same venv, settings, inventory and installed collection. Runs are round-robin; medians are quoted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _files  # noqa: E402
import _machine  # noqa: E402
import _paths  # noqa: E402
import _report  # noqa: E402
import _stats  # noqa: E402
import _steps  # noqa: E402
from tests import ansiblerun  # noqa: E402
from tests.integration.runnerhost import wheelhouse  # noqa: E402  (the offline wheels the runner installs from)

APP = "bench"
OLD_CLI = "collections/ansible_collections/devops/reddit_backup/roles/runner/files/reddit_backup_cli.py"
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "command.json")
# The engine alone, in the runner venv's python, on the same settings: the time inside create_backup.
ENGINE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
started = time.monotonic()
made = create_backup(BackupRequest(app_root=sys.argv[2], backup_dir=sys.argv[3], type="database"))
print(json.dumps({"engine_seconds": made["duration"], "call_seconds": round(time.monotonic() - started, 3)}))
"""


def install(workdir: str, app_root: str) -> str:
    """The runner role applied into WORKDIR/root; returns that root."""
    root = os.path.join(workdir, "root")
    play = [{"name": "install the runner for the bench", "hosts": "localhost", "connection": "local",
             "gather_facts": False, "roles": [{"role": "devops.reddit_backup.runner"}],
             "vars": {"runner_root": root, "runner_app_name": APP, "runner_app_root": app_root,
                      "runner_user": "root", "runner_group": "root", "runner_scheduler": "none",
                      "runner_wheelhouse": wheelhouse(),
                      "runner_playbook_vars": {"reddit_backup_manage_services": False}}}]
    playbook = os.path.join(workdir, "install.json")
    with open(playbook, "w") as handle:
        json.dump(play, handle)
    installed = ansiblerun.run_playbook(os.path.join(workdir, ".ansible"), playbook)
    if installed.failed:
        raise SystemExit("bench: installing the runner failed:\n%s" % installed.stderr[-3000:])
    return root


def old_command(workdir: str, rev: str) -> str:
    path = os.path.join(workdir, "reddit_backup_cli_%s.py" % rev)
    source = subprocess.run(["git", "-C", _paths.REPO, "show", "%s:%s" % (rev, OLD_CLI)], check=True,
                            capture_output=True).stdout
    with open(path, "wb") as handle:
        handle.write(source)
    return path


def steps(root: str, old_cli: str, app_root: str) -> dict:
    venv_python = os.path.join(root, "opt", "reddit-backup", "venv", "bin", "python")
    config = os.path.join(root, "etc", "reddit-backup")
    command = ["--config-dir", config, "--app", APP, "--quiet", "create", "--type", "database"]
    collections = os.path.join(root, "opt", "reddit-backup", "collections")
    return {
        "before": _steps.Step("before: ansible-playbook", argv=[venv_python, "-I", old_cli] + command),
        "after": _steps.Step("after: engine directly",
                             argv=[os.path.join(root, "usr", "local", "bin", "reddit-backup")] + command[2:]),
        "engine": _steps.Step("the engine alone", argv=[venv_python, "-I", "-c", ENGINE, collections, app_root,
                                                        os.path.join(app_root, "backups")]),
    }


def measure(methods: dict, repeat: int, log_dir: str) -> dict:
    runs = {key: [] for key in methods}
    for _round in range(repeat + 1):  # the first round warms the page cache and Python's bytecode caches
        for key, step in methods.items():
            run = _steps.run_step(step, os.path.join(log_dir, key))
            if run.returncode != 0:
                raise SystemExit("bench: %s failed (%d):\n%s%s" % (step.label, run.returncode, run.stdout, run.stderr))
            if _round:
                runs[key].append(run)
    return runs


def figures(runs: dict) -> dict:
    result = {}
    for key, done in runs.items():
        engine = [json.loads(run.stdout)["engine_seconds"] for run in done] if key == "engine" else []
        result[key] = {"wall_seconds": _stats.summarize([run.seconds for run in done]),
                       "cpu_seconds": _stats.summarize([run.cpu_seconds for run in done]),
                       "tree_peak_mb": _stats.summarize([_stats.mb(run.tree_peak) for run in done]),
                       "largest_process_mb": _stats.summarize([_stats.mb(run.maxrss) for run in done]),
                       "engine_seconds": _stats.summarize(engine), "top": done[-1].top}
    return result


def render(result: dict, methods: dict) -> str:
    rows = []
    for key, figure in result.items():
        wall = figure["wall_seconds"]
        rows.append([methods[key].label, wall["median"], "%.2f–%.2f" % (wall["min"], wall["max"]),
                     figure["cpu_seconds"]["median"], figure["tree_peak_mb"]["median"],
                     figure["largest_process_mb"]["median"], figure["engine_seconds"]["median"]])
    return _report.markdown_table(["method", "wall s (median)", "min–max", "cpu s", "peak RSS of the tree MB",
                                   "largest process MB", "engine's own s"], rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/command.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--db-size-mb", type=float, default=20, help="sample app database size (default 20)")
    parser.add_argument("--repeat", type=int, default=5, help="counted runs of each method (default 5)")
    parser.add_argument("--workdir", default="/tmp/reddit-backup-bench-command")
    parser.add_argument("--before-rev", default="d1157b1",
                        help="a commit whose command ran the playbooks (default d1157b1)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    options = parser.parse_args(argv)
    workdir = os.path.abspath(options.workdir)
    machine = _machine.machine_info()
    machine["code"] = _machine.code_state(_paths.COLLECTIONS)
    print("\n".join(_machine.machine_lines(machine)))
    _files.ensure_sample_app(workdir, options.db_size_mb)
    app_root = os.path.join(workdir, "app")
    _files.clean_dir(os.path.join(app_root, "backups"))
    root = install(workdir, app_root)
    methods = steps(root, old_command(workdir, options.before_rev), app_root)
    result = figures(measure(methods, options.repeat, os.path.join(workdir, "logs")))
    print("\nscheduled database backup, %d runs each after a warm-up round (database %.0f MB)\n"
          % (options.repeat, options.db_size_mb))
    print(render(result, methods))
    print("\nload average at the end: %s" % _machine.loadavg())
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    _report.write_json(options.output, {"date": date, "machine": machine, "options": vars(options), "results": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
