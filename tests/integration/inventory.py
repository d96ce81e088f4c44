"""The operator's way in: an inventory with this machine in app_servers and the settings in group_vars/all.yml,
and the site playbooks run against it (the tests of settings written where operators write them)."""

from __future__ import annotations

import os

import yaml

from tests.integration.runner import REPO, TARGET_PYTHON, run_playbook


def operator_inventory(tmp_path, settings: dict) -> str:
    """An inventory as an operator keeps one: this machine in app_servers, the settings in group_vars/all.yml."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True, exist_ok=True)  # an operator edits it between runs
    hosts = {"all": {"children": {"app_servers": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": TARGET_PYTHON}}}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return str(inventory)


def run(tmp_path, playbook: str, settings: dict):
    """The site playbook playbooks/PLAYBOOK.yml with SETTINGS in the operator's inventory."""
    return run_playbook(tmp_path, os.path.join(REPO, "playbooks", playbook + ".yml"),
                        inventory=operator_inventory(tmp_path, settings))


def where(app, tmp_path, **settings) -> dict:
    return {"reddit_backup_app_root": str(app), "reddit_backup_backup_dir": str(tmp_path / "backups"), **settings}
