"""The monitoring role's record entry point (what playbooks run from AWX put in an always section) never fails the
play: where the role has not set the application up it does nothing, a run the metrics cannot take is reported
while the play goes on, and a run they take is written without a report."""

from __future__ import annotations

import os

from tests.integration.runner import play  # noqa: F401  (a fixture)


def record(tmp_path, run: dict) -> list:
    return [{"name": "Record", "ansible.builtin.include_role": {"name": "devops.reddit_backup.monitoring",
                                                                "tasks_from": "record"},
             "vars": {"monitoring_run": run, "monitoring_root": str(tmp_path / "root"),
                      "monitoring_app_name": "record-test", "monitoring_backup_dir": str(tmp_path / "backups")}},
            {"name": "After", "ansible.builtin.debug": {"msg": "the play went on"}}]


def test_where_monitoring_is_not_set_up_record_does_nothing_and_the_play_goes_on(tmp_path, play):  # noqa: F811
    done = play(record(tmp_path, {"operation": "backup", "type": "full", "status": "failed", "error": "boom"}))
    assert not done.failed, done.stderr
    assert done.result("After")["msg"] == "the play went on"
    assert not os.path.exists(str(tmp_path / "root"))


def test_a_run_the_metrics_refuse_is_reported_and_the_play_goes_on(tmp_path, play):  # noqa: F811
    textfiles = tmp_path / "root" / "var" / "lib" / "prometheus" / "node-exporter"
    textfiles.mkdir(parents=True)
    (tmp_path / "backups").mkdir()
    done = play(record(tmp_path, {"operation": "not-an-operation", "status": "success"}))
    assert not done.failed, done.stderr
    assert done.result("After")["msg"] == "the play went on"
    said = [host["msg"] for each in done.data["plays"] for task in each["tasks"]
            if task["task"]["name"].endswith("Say that the metrics could not be written")
            for host in task["hosts"].values() if "msg" in host]
    assert said and "metrics not written" in said[0], done.data
    assert os.listdir(str(textfiles)) == []


def test_a_run_the_metrics_take_is_written_and_nothing_is_reported(tmp_path, play):  # noqa: F811
    textfiles = tmp_path / "root" / "var" / "lib" / "prometheus" / "node-exporter"
    textfiles.mkdir(parents=True)
    (tmp_path / "backups").mkdir()
    done = play(record(tmp_path, {"operation": "backup", "type": "full", "status": "success"}))
    assert not done.failed, done.stderr
    said = [host for each in done.data["plays"] for task in each["tasks"]
            if task["task"]["name"].endswith("Say that the metrics could not be written")
            for host in task["hosts"].values()]
    assert said and all(host.get("skipped") for host in said), said
    assert os.listdir(str(textfiles)) != []
