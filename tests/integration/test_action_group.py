"""meta/runtime.yml's action group: a play sets the shared options once with module_defaults."""

from __future__ import annotations

import yaml

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.integration.runner import run_playbook


def test_module_defaults_for_the_group(sample_app, tmp_path):
    backups = tmp_path / "backups"
    made = create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(backups)))
    play = [{"name": "module_defaults", "hosts": "localhost", "gather_facts": False,
             "module_defaults": {"group/devops.reddit_backup.reddit_backup": {"backup_dir": str(backups)}},
             "tasks": [{"name": "info", "devops.reddit_backup.backup_info": {}},
                       {"name": "verify", "devops.reddit_backup.backup_verify": {"level": "quick"}}]}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    result = run_playbook(tmp_path, str(playbook))
    assert not result.failed, result.stderr
    assert [backup["name"] for backup in result.result("info")["backups"]] == [made["name"]]
    assert result.result("verify")["valid"] and result.result("verify")["archive"] == made["archive"]
