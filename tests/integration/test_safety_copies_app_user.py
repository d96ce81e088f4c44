"""The scheduled `reddit-backup cleanup` runs as the app user (root's call drops to it): it applies the safety
copies' retention rule to what that user may remove, and names the copies a full restore left in the root-owned
folder beside the app root with the command that removes them as root (issue 12 item 10's rule on schedule)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.integration.runner import run_playbook
from tests.integration.runnerhost import Host, role_play, write_play
from tests.notifyservers import WebhookServer
from tests.sampleapp import seed_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OLD = "pre-restore-20200101T000000Z"  # restores stamp their copies: this one is years past the default 7 days


@pytest.fixture
def app_user_host(tmp_path):
    """The runner installed for an app that `nobody` owns, in folders nobody may enter; its parent is root's."""
    base = tempfile.mkdtemp(prefix="safety-", dir="/tmp")
    os.chmod(base, 0o755)
    webhook = WebhookServer()
    host = Host(base, webhook)
    seed_app(host.app_root, rows=50)
    subprocess.run(["chown", "-R", "nobody:nogroup", host.app_root], check=True)
    plays = role_play([{"role": "devops.reddit_backup.runner"}], name="install the runner")
    plays[0]["vars"] = dict({key: value for key, value in host.role_vars().items()
                             if not key.startswith("monitoring_")},
                            runner_user="nobody", runner_group="nogroup", runner_scheduler="none")
    installed = run_playbook(tmp_path, write_play(tmp_path, "install.yml", plays), timeout=900)
    assert not installed.failed, installed.stderr[-3000:]
    yield host
    webhook.close()
    shutil.rmtree(base, ignore_errors=True)


def old_copy(path: str, owner: str) -> str:
    shutil.copytree(path, path + "." + OLD)
    subprocess.run(["chown", "-R", owner, path + "." + OLD], check=True)
    return path + "." + OLD


def test_the_app_users_cleanup_prunes_its_copies_and_names_roots_with_the_command(app_user_host):
    host = app_user_host
    below = old_copy(os.path.join(host.app_root, "data"), "nobody:nogroup")  # a database restore's copy
    beside = old_copy(os.path.join(host.app_root, "config"), "root:root")
    beside = shutil.move(beside, host.app_root + "." + OLD)  # a full restore's copy, in root's folder

    dry = host.run("cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would remove %s (older than 7d)" % below in dry.stdout and os.path.isdir(below)

    cleaned = host.run("cleanup")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not os.path.exists(below), "the app user removes the copies it owns on schedule"
    assert os.path.isdir(beside), "root's folder is not the app user's to change"
    command = "reddit-backup --config-dir %s --app demo safety-copies --prune" % os.path.dirname(host.config)
    assert "1 safety copies the rule removes are in a folder uid 65534 may not change: %s (older than 7d); " \
           "run `%s` as root" % (beside, command) in cleaned.stderr, cleaned.stderr
    summary = cleaned.stdout.strip().splitlines()[-1]
    assert summary.startswith("reddit-backup: cleanup succeeded in ") and \
        summary.endswith(": removed 0 backups; removed 1 safety copies, 1 left for root"), summary
    assert "Traceback" not in cleaned.stdout + cleaned.stderr

    as_root = subprocess.run(["sh", "-c", command.replace("reddit-backup", host.command, 1)], capture_output=True,
                             text=True)
    assert as_root.returncode == 0, as_root.stdout + as_root.stderr
    assert not os.path.exists(beside) and os.path.isdir(os.path.join(host.app_root, "data"))
    assert "safety copies the rule removes" not in host.run("cleanup").stderr
