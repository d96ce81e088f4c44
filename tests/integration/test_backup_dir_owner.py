"""One owner for the backup directory (issue 12 item 2), the operator's way: root runs the `backup` playbook with
the settings in the inventory's group_vars, then the app user's scheduled work (create, list, verify, cleanup) runs
as that user on the same backup directory with no "Permission denied"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.integration.runner import TARGET_PYTHON, run_playbook
from tests.integration.runnerhost import apply, render_only, role_play, write_play
from tests.ansiblerun import failure
from tests.integration.inventory import run
from tests.sampleapp import seed_app

COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "collections")
AS_APP_USER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c"]
SCHEDULED = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
app, backups = sys.argv[2], sys.argv[3]
mine = create_backup(BackupRequest(app, backups, type="full"))["archive"]
listed = _catalog.list_backups(backups)
verdicts = [verify_archive(archive=b["archive"], level="comprehensive")["status"] for b in listed]
pruned = _retention.prune(backups, {"full": {"keep_last": 1}, "manual": {"keep_last": 0}})
print(json.dumps({"mine": mine, "listed": [[b["archive"], b["damaged"], (b["verified"] or {}).get("status")]
                                           for b in listed], "verdicts": verdicts,
                  "deleted": [b["archive"] for b in pruned["deleted"]]}))
"""


@pytest.fixture
def app_home():
    home = tempfile.mkdtemp(prefix="owner-", dir="/tmp")
    os.chmod(home, 0o755)
    app, backups = os.path.join(home, "app"), os.path.join(home, "backups")
    seed_app(app, rows=200)
    os.mkdir(backups, 0o700)
    subprocess.run(["chown", "-R", "nobody:nogroup", app, backups], check=True)
    yield app, backups
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(TARGET_PYTHON != "/usr/bin/python3", reason="the app user runs /usr/bin/python3")
def test_a_backup_root_ran_from_the_controller_leaves_the_app_users_schedule_working(app_home, tmp_path):
    app, backups = app_home
    settings = {"reddit_backup_app_root": app, "reddit_backup_backup_dir": backups}
    result = run(tmp_path, "backup", settings)
    assert not result.failed, result.stderr + failure(result)
    roots = result.result("Take the backup")["archive"]
    for where, folders, files in os.walk(backups):
        for name in folders + files:
            info = os.lstat(os.path.join(where, name))
            assert (info.st_uid, info.st_gid) == (65534, 65534), os.path.join(where, name)
    scheduled = subprocess.run(AS_APP_USER + [SCHEDULED, COLLECTIONS, app, backups], capture_output=True, text=True)
    assert scheduled.returncode == 0, scheduled.stderr
    assert "Permission denied" not in scheduled.stdout + scheduled.stderr
    report = json.loads(scheduled.stdout)
    assert {archive for archive, _damaged, _verified in report["listed"]} >= {roots, report["mine"]}
    assert all(damaged is None for _archive, damaged, _verified in report["listed"])
    assert set(report["verdicts"]) == {"valid"}
    assert roots in report["deleted"] and not os.path.exists(roots)


def test_the_runner_makes_the_backup_directory_for_its_user_and_refuses_one_of_another(tmp_path):
    root = tmp_path / "root"
    variables = render_only(root, "owned", runner_scheduler="cron", runner_user="nobody", runner_group="nogroup",
                            runner_backup_dir="/var/backups/owned")
    apply(tmp_path, "owned.yml", variables)
    made = os.lstat(str(root / "var" / "backups" / "owned"))
    assert (made.st_uid, made.st_mode & 0o7777) == (65534, 0o700)
    os.chown(str(root / "var" / "backups" / "owned"), 0, 0)  # what a root run of an earlier version left
    refused = run_playbook(tmp_path, write_play(tmp_path, "again.yml", role_play([
        {"role": "devops.reddit_backup.runner", "vars": variables}])))
    assert refused.failed
    assert "owned by root" in refused.stderr + json.dumps(refused.data) and \
        "chown -R nobody:nogroup /var/backups/owned" in json.dumps(refused.data)
