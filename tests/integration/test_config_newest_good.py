"""The configuration-on-change backup and restore_config (issue 12 item 6), the operator's way: settings in the
inventory's group_vars, the top-level playbooks. Deleting required configuration files makes the configuration
backup fail (naming them) instead of recording the damage; restore_config names the newest backup that passes, and
with reddit_backup_restore_newest_good takes it."""

from __future__ import annotations

import os

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.ansiblerun import failure
from tests.integration.inventory import run
from tests.integration.recoveryapp import recovery  # noqa: F401  (a fixture)


def settings(recovery, **extra) -> dict:  # noqa: F811
    return {"reddit_backup_app_root": str(recovery.app), "reddit_backup_backup_dir": str(recovery.backups),
            "reddit_backup_manage_services": False, "reddit_backup_health_url": recovery.url,
            "reddit_backup_systemd_dir": str(recovery.units), "reddit_backup_health_retries": 5,
            "reddit_backup_health_delay": 1, **extra}


def configs(recovery) -> list:  # noqa: F811
    return [b["name"] for b in list_backups(str(recovery.backups)) if b["type"] == "config"]


def test_a_damaged_config_is_not_backed_up_and_restore_config_finds_the_good_one(recovery, tmp_path):  # noqa: F811
    good = run(tmp_path, "backup", settings(recovery, reddit_backup_type="config"))
    assert not good.failed, good.stderr + failure(good)
    good_name = good.result("Take the backup")["name"]
    (recovery.app / "config" / "logging.conf").unlink()
    (recovery.app / "config" / "monitoring.yml").unlink()
    refused = run(tmp_path, "backup", settings(recovery, reddit_backup_type="config"))
    assert refused.failed
    assert "required configuration files are missing" in failure(refused)
    assert "config/logging.conf, config/monitoring.yml" in failure(refused)
    assert configs(recovery) == [good_name]
    damaged = create_backup(BackupRequest(str(recovery.app), str(recovery.backups), type="config", required=[]))
    named = run(tmp_path, "restore_config", settings(recovery))
    assert named.failed and not (recovery.app / "config" / "logging.conf").exists()
    assert "%s: it failed verification" % damaged["archive"] in failure(named)
    assert "The newest backup that passes verification is %s" % good_name in failure(named)
    taken = run(tmp_path, "restore_config", settings(recovery, reddit_backup_restore_newest_good=True))
    assert not taken.failed, taken.stderr + failure(taken)
    restored = taken.result("Restore from the backup, scope config")
    assert os.path.basename(restored["archive"]).startswith(good_name) and restored["passed_over"] == \
        [damaged["archive"]]
    assert (recovery.app / "config" / "logging.conf").exists() and (recovery.app / "config" / "monitoring.yml").exists()
