"""backup_metrics, backup_notify and backup_schedule through ansible-playbook: check mode, real runs, no_log, and a
notification that cannot be delivered leaving the play green."""

from __future__ import annotations

import os

import pytest

from tests.notifyservers import closed_port, webhook  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def test_metrics_notify_and_schedule_modules(play, sample_app, tmp_path, webhook):  # noqa: F811
    textfile = str(tmp_path / "textfile" / "reddit_backup_demo.prom")
    os.makedirs(os.path.dirname(textfile))
    url_file = tmp_path / "webhook_url"
    url_file.write_text(webhook.url("/hooks/T0K3N") + "\n")
    metrics = {"backup_dir": str(tmp_path / "backups"), "textfile": textfile, "labels": {"app": "demo"}}
    schedule = {"app": "demo", "user": "root", "group": "root", "systemd_dir": str(tmp_path / "systemd"),
                "cron_dir": str(tmp_path / "cron.d"), "command": "/bin/echo",
                "jobs": [{"name": "full", "schedule": "0 2 * * *", "command": ["create", "--type", "full"]}]}
    result = play([
        {"name": "metrics in check mode", "devops.reddit_backup.backup_metrics": metrics, "check_mode": True},
        {"name": "metrics", "devops.reddit_backup.backup_metrics": dict(metrics, run={
            "operation": "backup", "type": "full", "status": "failed", "error": "disk full", "duration": 1.5})},
        {"name": "metrics again", "devops.reddit_backup.backup_metrics": dict(metrics, run={
            "operation": "backup", "type": "full", "status": "success"})},
        {"name": "notify by URL", "devops.reddit_backup.backup_notify": {
            "app": "demo", "operation": "backup", "type": "full", "summary": "disk full",
            "webhook_url": webhook.url("/hooks/S3CR3T"), "webhook_headers": {"Authorization": "Bearer H3ADER"}}},
        {"name": "notify by URL file", "devops.reddit_backup.backup_notify": {
            "operation": "cleanup", "status": "recovered", "webhook_url_file": str(url_file)}},
        {"name": "notify nowhere", "devops.reddit_backup.backup_notify": {
            "operation": "backup", "webhook_url": "http://127.0.0.1:%d/x" % closed_port(), "timeout": 2}},
        {"name": "notify with a missing URL file", "devops.reddit_backup.backup_notify": {
            "operation": "backup", "webhook_url_file": str(tmp_path / "nope")}},
        {"name": "notify in check mode", "devops.reddit_backup.backup_notify": {
            "operation": "backup", "webhook_url": webhook.url()}, "check_mode": True},
        {"name": "schedule in check mode", "devops.reddit_backup.backup_schedule": schedule, "check_mode": True,
         "diff": True},
        {"name": "schedule", "devops.reddit_backup.backup_schedule": schedule},
        {"name": "schedule again", "devops.reddit_backup.backup_schedule": schedule},
    ])
    assert not result.failed, result.stderr

    assert result.result("metrics in check mode")["changed"]
    first = result.result("metrics")
    assert first["changed"] and first["previous"] is None, "check mode recorded nothing"
    assert 'reddit_backup_last_run_success{app="demo",operation="backup",type="full"} 0' in first["metrics"]
    again = result.result("metrics again")
    assert again["previous"]["status"] == "failed" and again["previous"]["error"] == "disk full"

    by_url = result.result("notify by URL")
    assert by_url["delivered"] and by_url["changed"] and by_url["event"]["message"] == "disk full"
    assert result.result("notify by URL file")["delivered"]
    paths = [path for path, _headers, _body in webhook.requests]
    assert paths == ["/hooks/S3CR3T", "/hooks/T0K3N"], "check mode sent nothing"
    assert webhook.requests[0][1]["Authorization"] == "Bearer H3ADER"
    nowhere = result.result("notify nowhere")
    assert not nowhere.get("failed") and nowhere["delivered"] is False and "cannot reach" in nowhere["reason"]
    missing = result.result("notify with a missing URL file")
    assert missing["delivered"] is False and "cannot read webhook_url_file" in missing["reason"]
    assert result.result("notify in check mode")["reason"] == "check mode: nothing sent"
    output = str(result.data) + result.stderr
    assert "S3CR3T" not in output and "H3ADER" not in output, "webhook URL and headers are no_log"

    planned = result.result("schedule in check mode")
    assert planned["changed"] and planned["written"] == result.result("schedule")["written"]
    assert planned["diff"][0]["after_header"].endswith("reddit-backup-demo-full.service")
    assert result.result("schedule")["enable"] == ["reddit-backup-demo-full.timer"]
    assert result.result("schedule")["changed"] and not result.result("schedule again")["changed"]


def test_notify_decides_from_the_run(play, webhook):  # noqa: F811
    """run_status: the engine's decision (notify_on) picks whether and as what a run notifies."""
    def notify(name, **options):
        return {"name": name, "devops.reddit_backup.backup_notify": dict(
            {"operation": "backup", "type": "full", "webhook_url": webhook.url("/hooks/run")}, **options)}
    result = play([
        notify("failed", run_status="failed"),
        notify("recovered", run_status="success", previous_status="failed"),
        notify("quiet success", run_status="success", previous_status="success"),
        notify("asked success", run_status="success", notify_on=["success"]),
        {**notify("both", run_status="failed", status="failed"), "ignore_errors": True},
    ])
    assert not result.failed, result.stderr
    assert [body["status"] for _path, _headers, body in webhook.wait_for(3)] == ["failed", "recovered", "succeeded"]
    quiet = result.result("quiet success")
    assert quiet["notified"] is False and not quiet["delivered"] and "does not notify" in quiet["reason"]
    assert "mutually exclusive" in result.result("both")["msg"]
