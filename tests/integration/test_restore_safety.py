"""Restores that hold up when an operator gets an input wrong or a step fails, run as an operator runs them: the
settings in an inventory's group_vars/all.yml, the top-level playbooks. No systemd here
(reddit_backup_manage_services: false; the molecule `recovery` scenario checks the units themselves)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.metrics import parse
from tests.integration.runnerhost import make_wheel
from tests.ansiblerun import failure
from tests.integration.inventory import run
from tests.sampleapp import posts

pytestmark = [pytest.mark.integration]
RESTORES = ["restore_full", "restore_database", "restore_config", "restore_systemd", "restore_point_in_time",
            "disaster_recovery"]


def settings(app, tmp_path, **more) -> dict:
    values = {"reddit_backup_app_root": str(app), "reddit_backup_backup_dir": str(tmp_path / "backups"),
              "reddit_backup_manage_services": False, "reddit_backup_health_check": False,
              "reddit_backup_systemd_dir": str(tmp_path / "systemd-system")}
    values.update(more)
    return values


def said(result, name: str):
    return result.result(name)["msg"]


@pytest.fixture
def backed_up(sample_app, tmp_path):
    (tmp_path / "systemd-system").mkdir()
    return create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(tmp_path / "backups")))


def test_a_restore_into_a_mistyped_app_root_is_refused(sample_app, backed_up, tmp_path):
    typo = str(sample_app)[:-1]  # /srv/pipelin for /srv/pipeline
    result = run(tmp_path, "restore_full", settings(typo, tmp_path))
    assert result.failed
    message = failure(result)
    assert "refusing to restore into %s" % typo in message and "made of %s" % sample_app in message, message
    assert "reddit_backup_restore_to_other_root: true" in message and "Nothing in %s was changed" % typo in message
    assert not os.path.exists(typo)
    moved = run(tmp_path, "restore_full", settings(typo, tmp_path, reddit_backup_restore_to_other_root=True))
    assert not moved.failed, failure(moved)
    assert posts(type(sample_app)(typo)) == posts(sample_app)


@pytest.mark.parametrize("playbook", RESTORES)
def test_a_misspelt_setting_fails_every_restore(sample_app, backed_up, tmp_path, playbook):
    result = run(tmp_path, playbook, settings(sample_app, tmp_path, reddit_backup_restore_nmae="daily"))
    assert result.failed and "Unknown setting reddit_backup_restore_nmae" in failure(result), failure(result)
    assert not [name for name in os.listdir(str(tmp_path)) + os.listdir(str(sample_app)) if ".pre-restore-" in name]


def test_a_failed_restore_says_nothing_changed_and_every_restore_is_recorded(sample_app, backed_up, tmp_path):
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    monitoring = {"monitoring_textfile_dir": str(textfile_dir), "monitoring_app_name": "demo",
                  "monitoring_config_dir": str(tmp_path / "etc")}
    key = ("reddit_backup_last_run_success", (("app", "demo"), ("operation", "restore"), ("type", "all")))
    missing = run(tmp_path, "restore_database", settings(sample_app, tmp_path, reddit_backup_restore_name="no-such",
                                                         **monitoring))
    assert missing.failed
    message = said(missing, "Fail, saying what was changed and which units were put back")
    assert message.startswith("database corruption failed: ") and "no-such" in message
    assert "Nothing in %s was changed by the restore." % sample_app in message
    assert "Services: not managed" in message
    textfile = textfile_dir / "reddit_backup_demo.prom"
    assert parse(textfile.read_text())[key] == 0
    restored = run(tmp_path, "restore_database", settings(sample_app, tmp_path, **monitoring))
    assert not restored.failed, failure(restored)
    assert parse(textfile.read_text())[key] == 1
    state = json.loads((textfile_dir / "reddit_backup_demo.prom.state.json").read_text())
    assert backed_up["name"] in json.dumps(state)
    too_early = run(tmp_path, "restore_point_in_time", settings(
        sample_app, tmp_path, reddit_backup_restore_before="2001-01-01T00:00:00Z", **monitoring))
    assert too_early.failed and "Nothing was stopped or changed" in failure(too_early)
    assert parse(textfile.read_text())[key] == 0


def test_restore_full_rebuilds_a_missing_venv_and_says_what_it_did_not_restore(sample_app, tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    make_wheel(wheelhouse)
    (sample_app / "apps" / "collector" / "requirements.txt").write_text("demo-dependency==1.0\n")
    (tmp_path / "systemd-system").mkdir()
    create_backup(BackupRequest(app_root=str(sample_app), backup_dir=str(tmp_path / "backups"),
                                wheelhouse=str(wheelhouse)))
    shutil.rmtree(str(sample_app))  # the application is gone, its venv with it (never in a backup)
    result = run(tmp_path, "restore_full", settings(sample_app, tmp_path))
    assert not result.failed, failure(result)
    summary = said(result, "Say what was restored")
    assert summary[-1].startswith("not restored:  ") and "venv/: never in a backup" in summary[-1], summary
    assert said(result, "Say what happened to the venv (never in a backup)") == \
        "venv: rebuilt offline from the backup's wheelhouse"
    check = subprocess.run([str(sample_app / "venv" / "bin" / "python"), "-c",
                            "import demo_dependency; print(demo_dependency.VALUE)"], capture_output=True, text=True)
    assert check.stdout.strip() == "42", check.stderr
    again = run(tmp_path, "restore_full", settings(sample_app, tmp_path))
    assert said(again, "Say what happened to the venv (never in a backup)").startswith("venv: present, left")
