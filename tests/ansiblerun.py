"""How the tests and the benchmarks run ansible-playbook and read its result: one implementation.

The command line and the ANSIBLE_* settings come from the reddit-backup command's own code
(``_command/playbooks.py``: ``playbook_argv``, ``ansible_settings``, ``clean_environment``), which must stay
stdlib-only as it runs on the hosts; what only a harness needs lives here: this checkout's collections and
ansible.cfg, the targets' python, and the readers of the two callbacks' output (``results_json`` for the tests,
``ansible.builtin.minimal`` with JSON results for the benchmarks, whose figures include the callback's cost).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

from ansible_collections.devops.reddit_backup.plugins.module_utils._command.playbooks import (  # noqa: E402
    ansible_settings, clean_environment, playbook_argv)

BIN = os.path.dirname(sys.executable)
# Modules run with the Debian python the targets have (3.11.2, no tarfile extraction filters) when present.
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
CALLBACK_PLUGINS = os.path.join(REPO, "tests", "integration", "callback_plugins")


def harness_settings(home: str, collections: str = COLLECTIONS, callback: str = "results_json") -> dict:
    """The ANSIBLE_* values of a harness run: the command's, this checkout's collections, a callback whose output
    a reader below understands."""
    settings = ansible_settings(os.path.join(REPO, "ansible.cfg"), home)
    settings.update({"ANSIBLE_COLLECTIONS_PATH": collections, "ANSIBLE_STDOUT_CALLBACK": callback})
    if callback == "results_json":
        settings["ANSIBLE_CALLBACK_PLUGINS"] = CALLBACK_PLUGINS
    else:
        settings["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    return settings


def harness_env(home: str, **kwargs) -> dict:
    """A whole environment: this process's without its ANSIBLE_* settings, harness_settings(), the venv first on
    PATH, modules on the targets' python."""
    env = clean_environment(dict(os.environ), os.path.join(REPO, "ansible.cfg"), home, BIN)
    env.update(harness_settings(home, **kwargs), ANSIBLE_PYTHON_INTERPRETER=TARGET_PYTHON)
    return env


def harness_argv(playbook: str, inventory: str = "localhost,", check: bool = False, extra_args=(),
                 extra_vars: dict = None) -> list:
    """ansible-playbook of the venv; on localhost the local connection (no ssh to ourselves)."""
    local = ["-c", "local"] if inventory == "localhost," else []
    return playbook_argv(os.path.join(BIN, "ansible-playbook"), playbook, extra_vars, check=check,
                         inventory=inventory, extra_args=[*extra_args, *local])


class PlayResult:
    """The results_json callback's output: ``result(name)`` is the result of the task called ``name``."""

    def __init__(self, completed: subprocess.CompletedProcess) -> None:
        self.returncode = completed.returncode
        self.stderr = completed.stderr
        try:
            self.data = json.loads(completed.stdout)
        except ValueError:
            raise AssertionError("ansible-playbook printed no JSON:\n%s\n%s" % (completed.stdout, completed.stderr))

    def result(self, name: str) -> dict:
        for play in self.data["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"] == name and "localhost" in task["hosts"]:
                    return task["hosts"]["localhost"]
        raise KeyError(name)

    @property
    def failed(self) -> bool:
        return self.returncode != 0


def run_playbook(home: str, playbook: str, check: bool = False, extra_args=(), timeout: float = 600,
                 inventory: str = "localhost,", extra_vars: dict = None) -> PlayResult:
    completed = subprocess.run(harness_argv(playbook, inventory, check, extra_args, extra_vars), capture_output=True,
                               text=True, env=harness_env(home), cwd=REPO, timeout=timeout)
    return PlayResult(completed)


def minimal_result(stdout: str) -> dict:
    """The result dict that the minimal callback printed after ``localhost | STATUS => ``."""
    match = re.search(r"^localhost \| [\w!]+ => ", stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError("ansible-playbook printed no task result:\n%s" % stdout[-3000:])
    return json.JSONDecoder().raw_decode(stdout, match.end())[0]


def failure(result: PlayResult) -> str:
    """Every message of the failed tasks of a results_json run, in one string."""
    return json.dumps([host.get("msg") for play in result.data["plays"] for task in play["tasks"]
                       for host in task["hosts"].values() if host.get("failed")])
