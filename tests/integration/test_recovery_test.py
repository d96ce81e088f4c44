"""devops.reddit_backup.recovery_test (the guide's weekly drill) on localhost: it passes on a good backup, fails
loudly on a damaged one, and never leaves its temporary folder behind."""

from __future__ import annotations

import glob
import os

from tests.integration.runner import REPO, run_playbook


def drill(tmp_path, sample_app, backups):
    return run_playbook(tmp_path, os.path.join(REPO, "playbooks", "recovery_test.yml"), extra_args=[
        "-e", "reddit_backup_hosts=localhost", "-e", "reddit_backup_app_root=%s" % sample_app,
        "-e", "reddit_backup_backup_dir=%s" % backups,
        "-e", "reddit_backup_recovery_test_parent=%s" % (tmp_path / "drills")])


def test_recovery_test_passes_then_fails_loudly_on_damage(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    (tmp_path / "drills").mkdir()
    made = play([{"name": "backup", "devops.reddit_backup.backup_create": {"app_root": str(sample_app),
                                                                         "backup_dir": str(backups)}}])
    assert not made.failed, made.stderr
    passed = drill(tmp_path, sample_app, backups)
    assert not passed.failed, passed.stderr
    report = passed.result("Report the drill")["msg"]
    assert report[0] == "recovery test passed: %s" % made.result("backup")["archive"]
    assert report[1].startswith("verification: valid")
    assert os.listdir(str(tmp_path / "drills")) == []

    archive = made.result("backup")["archive"]
    data = bytearray(open(archive, "rb").read())
    data[len(data) // 2] ^= 0x40  # a flipped bit: the sidecar no longer matches
    with open(archive, "wb") as handle:
        handle.write(bytes(data))
    failed = drill(tmp_path, sample_app, backups)
    assert failed.failed
    assert "RECOVERY TEST FAILED" in failed.result("Fail loudly")["msg"]
    assert os.listdir(str(tmp_path / "drills")) == []
    assert not glob.glob(str(tmp_path / "drills" / "*"))
