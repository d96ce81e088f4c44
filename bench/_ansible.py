"""Ansible from the bench: a one-task playbook on localhost, and the module's result read back (the command
line, the settings and the reader are tests/ansiblerun.py's, the tests' and the reddit-backup command's own)."""

from __future__ import annotations

import json
import os
import sys

from _paths import REPO, TARGET_PYTHON, venv_bin
from _steps import Step
from tests.ansiblerun import harness_settings, minimal_result, playbook_argv  # noqa: F401  (the families read it here)


def ansible_env(workdir: str, collections: str) -> dict:
    """The ANSIBLE_* settings of a bench run (tests/ansiblerun.py's), the minimal callback's JSON results."""
    return harness_settings(os.path.join(workdir, "ansible-home"), collections, callback="ansible.builtin.minimal")


def write_playbook(path: str, title: str, module: str, params: dict, register: str = "result") -> None:
    """A one-task playbook on localhost (values as JSON, which YAML reads)."""
    lines = ["- name: %s" % title, "  hosts: localhost", "  connection: local", "  gather_facts: false",
             "  tasks:", "    - name: %s" % title, "      devops.reddit_backup.%s:" % module]
    lines += ["        %s: %s" % (key, json.dumps(value)) for key, value in params.items()]
    lines += ["      register: %s" % register, ""]
    with open(path, "w") as handle:
        handle.write("\n".join(lines))


def module_matcher(*names: str):
    """``is_module`` for a Step: the python whose command line names the module (``AnsiballZ_<module>.py``: the
    local connection does not pipeline) or the engine function called directly; failing that, a process
    running the targets' python when the controller runs another."""
    def is_module(argv: list, exe: str) -> bool:
        if not os.path.basename(exe).startswith("python"):
            return False  # not the `/bin/sh -c '/usr/bin/python3 .../AnsiballZ_x.py'` around it
        joined = " ".join(argv)
        if any(name in joined for name in names):
            return True
        target_python = os.path.realpath(TARGET_PYTHON)
        return exe == target_python and target_python != os.path.realpath(sys.executable)
    return is_module


def playbook_step(label: str, workdir: str, collections: str, playbook: str, module: str) -> Step:
    argv = playbook_argv(venv_bin("ansible-playbook"), playbook, {"ansible_python_interpreter": TARGET_PYTHON},
                         inventory="localhost,")
    return Step(label, argv=argv, env=ansible_env(workdir, collections), cwd=REPO,
                is_module=module_matcher("AnsiballZ_%s" % module))


def engine_step(label: str, code: str, collections: str, args: list, function: str) -> Step:
    """The engine called directly in the targets' python: ``code`` gets the collections tree as sys.argv[1]."""
    argv = [TARGET_PYTHON, "-c", code.strip(), collections] + list(args)
    return Step(label, argv=argv, is_module=lambda argv, exe: function in " ".join(argv))


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])
