"""Run the collection's modules and playbooks through a real ansible-playbook on localhost (tests/ansiblerun.py
runs it and reads the result)."""

from __future__ import annotations

import os

import pytest
import yaml

from tests import ansiblerun
from tests.ansiblerun import BIN, REPO, TARGET_PYTHON, PlayResult, harness_argv  # noqa: F401  (the tests import them here)


def ansible_env(tmp_path) -> dict:
    return ansiblerun.harness_env(os.path.join(str(tmp_path), ".ansible-home"))


def run_tasks(tmp_path, tasks: list, check: bool = False, extra_args=(), timeout: float = 600) -> PlayResult:
    """Run ``tasks`` in one play on localhost; each task must have a ``name``."""
    play = [{"name": "test", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
    playbook = tmp_path / ("play-%d.yml" % len(list(tmp_path.glob("play-*.yml"))))
    playbook.write_text(yaml.safe_dump(play))
    return run_playbook(tmp_path, str(playbook), check=check, extra_args=extra_args, timeout=timeout)


def run_playbook(tmp_path, playbook: str, check: bool = False, extra_args=(), timeout: float = 600,
                 inventory: str = "localhost,") -> PlayResult:
    return ansiblerun.run_playbook(os.path.join(str(tmp_path), ".ansible-home"), playbook, check=check,
                                   extra_args=extra_args, timeout=timeout, inventory=inventory)


@pytest.fixture
def play(tmp_path):
    """``play(tasks, check=False)`` runs tasks through ansible-playbook on localhost."""
    return lambda tasks, **kwargs: run_tasks(tmp_path, tasks, **kwargs)
