"""The runner role as an operator gets it: the collection built into a tarball and installed with
`ansible-galaxy collection install` (MANIFEST.json and FILES.json, no galaxy.yml), then the role applied from there,
first with --check (which must not fail), then for real, then the installed `reddit-backup` run."""

from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest
import yaml

from tests.integration.runner import BIN, REPO, PlayResult, ansible_env, harness_argv
from tests.integration.runnerhost import wheelhouse
from tests.sampleapp import seed_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SOURCE = os.path.join(REPO, "collections", "ansible_collections", "devops", "reddit_backup")


def galaxy(tmp_path, *args) -> None:
    env = ansible_env(tmp_path)
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", *args], check=True, capture_output=True,
                   env=env, cwd=str(tmp_path))


def apply_runner(tmp_path, collections: str, role_vars: dict, check: bool = False) -> PlayResult:
    play = [{"name": "install the runner", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": role_vars, "roles": [{"role": "devops.reddit_backup.runner"}]}]
    playbook = tmp_path / "site.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = ansible_env(tmp_path)
    env["ANSIBLE_COLLECTIONS_PATH"] = collections  # only the installed collection, not the source checkout
    completed = subprocess.run(harness_argv(str(playbook), check=check), capture_output=True, text=True, env=env,
                               cwd=str(tmp_path), timeout=900)
    return PlayResult(completed)


def test_the_runner_role_from_an_installed_tarball_and_in_check_mode(tmp_path):
    galaxy(tmp_path, "build", SOURCE, "--output-path", str(tmp_path / "dist"))
    tarball = glob.glob(str(tmp_path / "dist" / "devops-reddit_backup-*.tar.gz"))[0]
    collections = str(tmp_path / "installed")
    galaxy(tmp_path, "install", "--force", tarball, "-p", collections)  # --force: the source checkout is on the path
    installed = os.path.join(collections, "ansible_collections", "devops", "reddit_backup")
    assert os.path.isfile(os.path.join(installed, "MANIFEST.json"))
    assert not os.path.exists(os.path.join(installed, "galaxy.yml")), "an installed collection has no galaxy.yml"

    app_root, root = str(tmp_path / "app"), str(tmp_path / "root")
    seed_app(app_root)
    role_vars = {"runner_root": root, "runner_app_name": "packed", "runner_app_root": app_root,
                 "runner_user": "root", "runner_group": "root", "runner_scheduler": "systemd",
                 "runner_wheelhouse": wheelhouse()}

    checked = apply_runner(tmp_path, collections, role_vars, check=True)
    assert not checked.failed, checked.stderr + json.dumps(checked.data)[-3000:]
    assert not os.path.exists(os.path.join(root, "opt", "reddit-backup", "venv")), "--check changed nothing"

    applied = apply_runner(tmp_path, collections, role_vars)
    assert not applied.failed, applied.stderr + json.dumps(applied.data)[-3000:]
    packed = [task for play in applied.data["plays"] for task in play["tasks"]
              if task["task"]["name"].endswith("Pack the installed collection this role belongs to")]
    assert packed and not packed[0]["hosts"]["localhost"].get("skipped"), "the installed collection was packed"
    on_host = os.path.join(root, "opt", "reddit-backup", "collections", "ansible_collections", "devops",
                           "reddit_backup")
    with open(os.path.join(on_host, "MANIFEST.json")) as mine, open(os.path.join(installed, "MANIFEST.json")) as theirs:
        assert json.load(mine)["file_manifest_file"] == json.load(theirs)["file_manifest_file"]

    command = os.path.join(root, "usr", "local", "bin", "reddit-backup")
    made = subprocess.run([command, "--app", "packed", "create", "--type", "database"], capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "succeeded" in made.stdout.splitlines()[-1]

    again = apply_runner(tmp_path, collections, role_vars, check=True)
    assert not again.failed, again.stderr + json.dumps(again.data)[-3000:]
    install = [task for play in again.data["plays"] for task in play["tasks"]
               if task["task"]["name"].endswith("Install the collection into the runner's collections path")]
    assert install and install[0]["hosts"]["localhost"].get("skipped"), "the installed collection is current"
