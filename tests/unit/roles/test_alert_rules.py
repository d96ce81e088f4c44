"""The monitoring role's Prometheus rules: promtool accepts them, and their promtool unit tests pass."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RULES = os.path.join(REPO, "collections", "ansible_collections", "devops", "reddit_backup", "roles", "monitoring",
                     "files", "reddit_backup.rules.yml")
TESTS = os.path.join(REPO, "tests", "promtool")
GUIDE_ALERTS = {"BackupMissing", "BackupFailed", "BackupVerificationFailed", "BackupStorageNearlyFull"}


@pytest.fixture(scope="module")
def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is missing: run tools/setup.sh (Debian package prometheus)"
    return path


def test_promtool_check_rules(promtool):
    checked = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_promtool_test_rules(promtool):
    files = sorted(os.path.basename(path) for path in glob.glob(os.path.join(TESTS, "*_test.yml")))
    assert files, "no promtool test files in tests/promtool"
    tested = subprocess.run([promtool, "test", "rules", *files], cwd=TESTS, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(files)


def test_every_alert_has_a_test_that_fires_and_one_that_stays_quiet():
    with open(RULES) as handle:
        alerts = {rule["alert"] for group in yaml.safe_load(handle)["groups"] for rule in group["rules"]}
    assert GUIDE_ALERTS <= alerts
    fired, quiet = set(), set()
    for path in glob.glob(os.path.join(TESTS, "*_test.yml")):
        with open(path) as handle:
            for test in yaml.safe_load(handle)["tests"]:
                for case in test.get("alert_rule_test", []):
                    (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts - fired == set(), "alerts no test proves to fire"
    assert alerts - quiet == set(), "alerts no test proves to stay quiet"
