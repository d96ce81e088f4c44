"""Run the collection's modules and playbooks through a real ansible-playbook on localhost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# Modules run with the Debian python the targets have (3.11.2, no tarfile extraction filters) when present.
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def ansible_env(tmp_path) -> dict:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, "collections"),
        "ANSIBLE_HOME": str(tmp_path / ".ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-tmp"),
        "ANSIBLE_STDOUT_CALLBACK": "results_json",
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(REPO, "tests", "integration", "callback_plugins"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": TARGET_PYTHON,
        "PATH": BIN + os.pathsep + env.get("PATH", ""),
    })
    return env


class PlayResult:
    """The JSON callback's output: ``result(name)`` is the result of the task called ``name``."""

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


def run_tasks(tmp_path, tasks: list, check: bool = False, extra_args=(), timeout: float = 600) -> PlayResult:
    """Run ``tasks`` in one play on localhost; each task must have a ``name``."""
    play = [{"name": "test", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    playbook = tmp_path / ("play-%d.yml" % len(list(tmp_path.glob("play-*.yml"))))
    playbook.write_text(yaml.safe_dump(play))
    return run_playbook(tmp_path, str(playbook), check=check, extra_args=extra_args, timeout=timeout)


def run_playbook(tmp_path, playbook: str, check: bool = False, extra_args=(), timeout: float = 600,
                 inventory: str = "localhost,") -> PlayResult:
    command = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, playbook, *extra_args]
    if inventory == "localhost,":
        command += ["-c", "local"]
    if check:
        command.append("--check")
    completed = subprocess.run(command, capture_output=True, text=True, env=ansible_env(tmp_path), cwd=REPO,
                               timeout=timeout)
    return PlayResult(completed)


@pytest.fixture
def play(tmp_path):
    """``play(tasks, check=False)`` runs tasks through ansible-playbook on localhost."""
    return lambda tasks, **kwargs: run_tasks(tmp_path, tasks, **kwargs)
