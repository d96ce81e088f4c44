"""One way to run ansible-playbook: the reddit-backup command (on the hosts, stdlib only) and the harness
(tests/ansiblerun.py, for the integration tests and the benchmarks) build the command line and the ANSIBLE_*
settings with the same functions of ``_command/playbooks.py``."""

from __future__ import annotations

import json
import os
import types

from ansible_collections.devops.reddit_backup.plugins.module_utils._command import playbooks
from tests import ansiblerun


def test_the_command_runs_its_playbook_by_name_with_json_extra_vars(tmp_path):
    settings = types.SimpleNamespace(venv=str(tmp_path / "venv"), state_dir=str(tmp_path / "state"),
                                     ansible_cfg=str(tmp_path / "ansible.cfg"))
    command = playbooks.playbook_command(settings, "restore_full", {"reddit_backup_restore_name": "n"}, 2, True)
    assert command == [str(tmp_path / "venv" / "bin" / "ansible-playbook"), "devops.reddit_backup.restore_full",
                       "-e", json.dumps({"reddit_backup_restore_name": "n"}), "-vv", "--check"]


def test_a_callers_ansible_settings_never_reach_a_run(tmp_path, monkeypatch):
    """An operator's shell (or a developer's) must not change what a run does: only the run's own ANSIBLE_*."""
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "something.else")
    monkeypatch.setenv("ANSIBLE_BECOME_PASSWORD_FILE", "/elsewhere")
    settings = types.SimpleNamespace(venv=str(tmp_path / "venv"), state_dir=str(tmp_path / "state"),
                                     ansible_cfg=str(tmp_path / "ansible.cfg"))
    command_env = playbooks.ansible_env(settings)
    harness_env = ansiblerun.harness_env(str(tmp_path / "home"))
    for env in (command_env, harness_env):
        assert "ANSIBLE_BECOME_PASSWORD_FILE" not in env
        assert env["ANSIBLE_NOCOLOR"] == "1" and env["ANSIBLE_FORCE_COLOR"] == "0"
        assert env["ANSIBLE_LOCAL_TEMP"] == os.path.join(env["ANSIBLE_HOME"], "tmp")
    assert "ANSIBLE_STDOUT_CALLBACK" not in command_env
    assert harness_env["ANSIBLE_STDOUT_CALLBACK"] == "results_json"
    assert command_env["PATH"].startswith(str(tmp_path / "venv" / "bin") + os.pathsep)


def test_the_harness_runs_localhost_over_the_local_connection():
    argv = ansiblerun.harness_argv("play.yml", check=True, extra_vars={"x": 1})
    assert argv == [os.path.join(ansiblerun.BIN, "ansible-playbook"), "-i", "localhost,", "play.yml", "-c", "local",
                    "-e", '{"x": 1}', "--check"]
    assert "-c" not in ansiblerun.harness_argv("play.yml", inventory="hosts.yml")


def test_the_bench_reads_the_minimal_callbacks_result():
    stdout = 'PLAY [x]\nlocalhost | CHANGED => {"changed": true, "archive": "/b/a.tar.zst"}\nPLAY RECAP\n'
    assert ansiblerun.minimal_result(stdout) == {"changed": True, "archive": "/b/a.tar.zst"}
