"""One owner for the backup directory (issue 12 item 2): what root writes there (type folders, archives,
sidecars, verdicts, lock files) goes to the directory's owner, so the app user's scheduled runs keep working;
what that user still cannot read is named by the catalog, never silently left out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils import _lock
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import SyncRequest, sync
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
from tests.unit.plugins.module_utils.builders import make_db, write
from tests.unit.plugins.module_utils.builders import server_folder  # noqa: F401  (fixtures)
from tests.servers import backup_server  # noqa: F401  (a fixture)
from tests.unit.plugins.module_utils.builders import COLLECTIONS

NOBODY = 65534
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c"]
LOGGING_CONF = ("[loggers]\nkeys=root\n[handlers]\nkeys=console\n[formatters]\nkeys=plain\n[logger_root]\n"
                "handlers=console\n[handler_console]\nclass=StreamHandler\nformatter=plain\n[formatter_plain]\n"
                "format=%(message)s\n")
T0 = datetime(2025, 5, 28, 2, 0, tzinfo=timezone.utc)
APP_USER_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
app, backups = sys.argv[2], sys.argv[3]
created = [create_backup(BackupRequest(app, backups, type=kind))["archive"] for kind in ("full", "config")]
created.append(create_backup(BackupRequest(app, backups, type="config", name="app-user-named"))["archive"])
verdict = verify_archive(archive=created[0], level="comprehensive")
listed = [[b["name"], b["damaged"], (b["verified"] or {}).get("status")] for b in _catalog.list_backups(backups)]
pruned = _retention.prune(backups, {kind: {"keep_last": 1} for kind in ("full", "config", "manual")})
print(json.dumps({"listed": listed, "verdict": verdict["status"], "deleted": pruned["deleted"],
                  "left": [b["name"] for b in _catalog.list_backups(backups)]}))
"""


@pytest.fixture
def app_home():
    """An app user's home as in the guide: the app root and the backup directory both belong to ``nobody``."""
    home = tempfile.mkdtemp(prefix="owner-", dir="/tmp")
    os.chmod(home, 0o755)
    app = os.path.join(home, "app")
    make_db(os.path.join(app, "data", "reddit_sentiment.db"), rows=50)
    write(os.path.join(app, "config", "production.env"), "A=1\n")
    write(os.path.join(app, "config", "logging.conf"), LOGGING_CONF)
    write(os.path.join(app, "config", "monitoring.yml"), "interval: 30\n")
    backups = os.path.join(home, "backups")
    os.mkdir(backups, 0o700)
    subprocess.run(["chown", "-R", "nobody:nogroup", app, backups], check=True)
    yield app, backups
    shutil.rmtree(home, ignore_errors=True)


def owners_below(folder: str) -> set:
    found = set()
    for where, dirs, files in os.walk(folder):
        found |= {(os.path.relpath(os.path.join(where, name), folder), os.lstat(os.path.join(where, name)).st_uid)
                  for name in dirs + files}
    return found


def test_what_root_writes_goes_to_the_backup_directorys_owner_and_the_app_user_runs_on(app_home):
    app, backups = app_home
    root_full = create_backup(BackupRequest(app, backups, now=T0))["archive"]
    create_backup(BackupRequest(app, backups, type="config", name="pre-maintenance-1", now=T0 + timedelta(hours=1)))
    verdict = verify_archive(archive=root_full, level="comprehensive")
    assert verdict["status"] == "valid", verdict["errors"]
    with _lock.DirectoryLock(backups, 1):
        pass
    not_given = sorted(path for path, uid in owners_below(backups) if uid != NOBODY)
    assert not_given == []
    assert {os.path.basename(os.path.dirname(root_full)), "manual"} <= set(os.listdir(backups))
    run = subprocess.run(AS_NOBODY + [APP_USER_RUN, COLLECTIONS, app, backups], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Permission denied" not in run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["verdict"] == "valid"
    listed = {name: (damaged, verified) for name, damaged, verified in report["listed"]}
    assert all(damaged is None for damaged, _verified in listed.values())
    assert listed[os.path.basename(root_full).split(".")[0]][1] == "valid", "root's verdict shows for the app user"
    assert "pre-maintenance-1" in listed and "app-user-named" in listed
    deleted = {entry["name"] for entry in report["deleted"]}
    assert deleted == {"pre-maintenance-1", "backup_20250528_020000"}, "root's backups are pruned by the app user"


def test_what_the_app_user_cannot_read_is_named_not_left_out(app_home):
    app, backups = app_home
    archive = create_backup(BackupRequest(app, backups, now=T0))["archive"]
    verify_archive(archive=archive, level="quick")
    # What an earlier version left: root's own folder and verdict, closed to the owner.
    os.mkdir(os.path.join(backups, "manual"), 0o700)
    os.chown(os.path.join(backups, "config"), 0, 0) if os.path.isdir(os.path.join(backups, "config")) else None
    os.chown(archive + ".verify.json", 0, 0)
    script = ("import json, sys; sys.path.insert(0, sys.argv[1]);"
              "from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog;"
              "print(json.dumps(_catalog.list_backups(sys.argv[2])))")
    run = subprocess.run(AS_NOBODY + [script, COLLECTIONS, backups], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    manual = [entry for entry in listed if entry["name"] == "manual/"]
    assert manual and "cannot be read by uid %d" % NOBODY in manual[0]["damaged"]
    assert "chown -R" in manual[0]["damaged"]
    full = [entry for entry in listed if entry["archive"] == archive][0]
    assert full["verified"]["status"] == "unreadable" and "owned by uid 0" in full["verified"]["reason"]
    assert _catalog.healthy(listed) == [full]


def test_a_file_reached_through_a_planted_link_is_never_given_to_that_folders_owner(app_home):
    _app, backups = app_home
    third = os.path.join(os.path.dirname(backups), "third")
    os.mkdir(third, 0o700)
    os.chown(third, 12345, 12345)  # a third user's folder the app user points a type folder at
    subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "ln", "-s", third,
                    os.path.join(backups, "daily")], check=True)
    with _fs.open_private(os.path.join(backups, "daily", ".tmp-x-1")) as handle:
        handle.write(b"secret")
    assert os.lstat(os.path.join(third, ".tmp-x-1")).st_uid == 0, "root's file stays root's"
    with _fs.open_private(os.path.join(backups, ".tmp-y-1")) as handle:
        handle.write(b"ours")
    assert os.lstat(os.path.join(backups, ".tmp-y-1")).st_uid == NOBODY


def test_a_pull_root_runs_gives_the_pulled_backups_to_the_directorys_owner(server_folder, app, tmp_path):  # noqa: F811
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups"), now=T0))
    options = server_folder.options()
    sync(SyncRequest(backup_dir=str(tmp_path / "backups"), **options))
    new_server = tmp_path / "new-server"
    new_server.mkdir(mode=0o700)
    os.chown(str(new_server), NOBODY, NOBODY)
    pulled = sync(SyncRequest(backup_dir=str(new_server), direction="pull", select="latest", **options))
    assert [item["name"] for item in pulled["transferred"]] == [made["name"]]
    assert sorted(path for path, uid in owners_below(str(new_server)) if uid != NOBODY) == []
