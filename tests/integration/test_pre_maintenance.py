"""The pre-maintenance playbook on localhost: named full backup, comprehensive verification, metrics and a
notification when it fails. No systemd here: reddit_backup_manage_services is false (stopping the units and
waiting for them is exercised in the molecule scenarios)."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.metrics import parse
from tests.integration.runner import REPO, run_playbook
from tests.notifyservers import webhook  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PLAYBOOK = os.path.join(REPO, "playbooks", "pre_maintenance.yml")


def extra(sample_app, tmp_path, **more) -> list:
    variables = {"reddit_backup_hosts": "localhost", "reddit_backup_app_root": str(sample_app),
                 "reddit_backup_backup_dir": str(tmp_path / "backups"), "reddit_backup_manage_services": False}
    variables.update(more)
    return ["-e", __import__("json").dumps(variables)]


def test_named_backup_verified_twice_a_day(sample_app, tmp_path):
    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    first = run_playbook(tmp_path, PLAYBOOK, extra_args=extra(sample_app, tmp_path))
    assert not first.failed, first.stderr
    backup = first.result("Take the named full backup")
    assert backup["name"] == "pre-maintenance-%s" % today
    assert backup["archive"] == str(tmp_path / "backups" / "manual" / ("pre-maintenance-%s.tar.zst" % today))
    verified = first.result("Verify it comprehensively")
    assert verified["status"] == "valid" and verified["level"] == "comprehensive"
    summary = first.result("Summarise")["msg"]
    assert summary[0] == "pre-maintenance backup pre-maintenance-%s" % today
    assert summary[3].startswith("services:  not managed")
    # the catalog shows it verified
    entry = [b for b in list_backups(str(tmp_path / "backups")) if b["named"]][0]
    assert entry["verified"]["valid"] is True

    second = run_playbook(tmp_path, PLAYBOOK, extra_args=extra(sample_app, tmp_path))
    assert not second.failed, second.stderr
    assert re.match(r"^pre-maintenance-%s-\d{6}$" % today, second.result("Take the named full backup")["name"])


def test_check_mode_writes_nothing(sample_app, tmp_path):
    result = run_playbook(tmp_path, PLAYBOOK, check=True, extra_args=extra(sample_app, tmp_path))
    assert not result.failed, result.stderr
    assert not (tmp_path / "backups").exists()


def test_failure_is_recorded_notified_and_stops_the_play(sample_app, tmp_path, webhook):  # noqa: F811
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    broken = {"monitoring_textfile_dir": str(textfile_dir), "monitoring_app_name": "demo",
              "monitoring_notify": True, "monitoring_webhook_url": webhook.url("/hook"),
              "monitoring_config_dir": str(tmp_path / "etc"),
              "reddit_backup_app_root": str(tmp_path / "no-such-app")}
    result = run_playbook(tmp_path, PLAYBOOK, extra_args=extra(sample_app, tmp_path, **broken))
    assert result.failed
    message = result.result("Stop here, with the services still stopped")["msg"]
    assert "Do not start the maintenance" in message
    event = webhook.wait_for(1)[0][2]
    assert (event["operation"], event["status"], event["type"]) == ("backup", "failed", "full")
    assert event["details"]["name"].startswith("pre-maintenance-")
    textfile = textfile_dir / "reddit_backup_demo.prom"
    metrics = parse(textfile.read_text())
    assert metrics[("reddit_backup_last_run_success", (("app", "demo"), ("operation", "backup"),
                                                       ("type", "full")))] == 0
