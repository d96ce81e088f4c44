"""Remote copies against real remotes on 127.0.0.1: an sshd with its own host key as the backup server (rsync over
ssh), and moto's server mode, an implementation of the S3 API (no S3 server can be installed here), as the object
store. Push, pull latest and before a time, a push killed half-way followed by a pull, damaged remote copies,
host keys, mirrors and retention on the remote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import (
    SyncRequest, parse_remote, prune_remote, select_backups, sync)
from tests.servers import backup_server, s3_server  # noqa: F401  (fixtures)
from tests.unit.plugins.module_utils.builders import T0, listing, server_folder, three_backups  # noqa: F401  (fixtures)
from tests.unit.plugins.module_utils.builders import REPO


def names(backup_dir) -> list:
    return [b["name"] for b in _catalog.list_backups(str(backup_dir))]


def test_remote_urls():
    assert parse_remote("ssh://backup@127.0.0.1:2222/srv/backups/app1") == {
        "kind": "ssh", "user": "backup", "host": "127.0.0.1", "port": 2222, "path": "/srv/backups/app1"}
    assert parse_remote("s3://reddit-backups/app1/") == {"kind": "s3", "bucket": "reddit-backups", "prefix": "app1"}
    for bad in ("rsync://host/path", "ssh://host", "ssh://host/../etc", "s3://UPPER/x", "/srv/backups"):
        with pytest.raises(BackupError, match="not usable|may not contain"):
            parse_remote(bad)


def _entry(name, kind, created, parent=None):
    return {"archive": "%s/%s.tar.zst" % (_catalog.TYPE_DIRS[kind], name), "name": name, "type": kind,
            "created": created, "parent": parent, "restorable": True, "sha256": name}


def test_select_takes_chains_and_the_newest_of_each_type():
    backups = [_entry("backup_1", "full", "2025-05-26T02:00:00Z"),
               _entry("incremental_1", "incremental", "2025-05-26T08:00:00Z", "backup_1"),
               _entry("config_1", "config", "2025-05-26T09:00:00Z"),
               _entry("backup_2", "full", "2025-05-27T02:00:00Z")]
    assert [b["name"] for b in select_backups(backups, "latest")] == ["config_1", "backup_2"]
    assert [b["name"] for b in select_backups(backups, "before", "2025-05-26T10:00:00Z", "incremental")] == [
        "backup_1", "incremental_1"]
    assert [b["name"] for b in select_backups(backups, "incremental_1")] == ["backup_1", "incremental_1"]
    assert select_backups(backups, "before", "2025-05-25T00:00:00Z") == []
    with pytest.raises(BackupError, match="needs the before option"):
        select_backups(backups, "before")


def test_push_then_pull_latest_and_before_over_ssh(server_folder, three_backups, tmp_path):
    backup_dir, made = three_backups
    options = server_folder.options()
    pushed = sync(SyncRequest(backup_dir=str(backup_dir), **options))
    assert [item["name"] for item in pushed["transferred"]] == [m["name"] for m in made]
    for item in pushed["transferred"]:
        assert item["size"] > 0 and item["seconds"] >= 0 and item["files"][-1] == item["archive"]
    on_server = listing(server_folder.folder)
    for backup in made:
        relative = os.path.relpath(backup["archive"], str(backup_dir))
        assert on_server[relative] == backup["size"]
        assert relative + ".sha256" in on_server and relative + ".meta.json" in on_server
    assert not any(path.endswith(".verify.json") for path in on_server)
    again = sync(SyncRequest(backup_dir=str(backup_dir), **options))
    assert not again["changed"] and {item["reason"] for item in again["skipped"]} == {"already on the remote "
                                                                                    "(same sha256)"}
    # A new server pulls the newest backup of each type ...
    latest = sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", select="latest", **options))
    assert [item["name"] for item in latest["transferred"]] == [made[1]["name"], made[2]["name"]]
    assert names(tmp_path / "new-server") == [made[1]["name"], made[2]["name"]]
    # ... or the newest full backup made before a moment.
    before = sync(SyncRequest(backup_dir=str(tmp_path / "before"), direction="pull", select="before",
                              before="2025-05-26T12:00:00Z", type="full", **options))
    assert [item["name"] for item in before["transferred"]] == [made[0]["name"]]
    assert names(tmp_path / "before") == [made[0]["name"]]
    pulled = _catalog.list_backups(str(tmp_path / "before"))[0]
    assert pulled["sha256"] == made[0]["sha256"] and os.stat(pulled["archive"]).st_mode & 0o777 == 0o600


def test_check_mode_copies_nothing(server_folder, three_backups):
    backup_dir, made = three_backups
    preview = sync(SyncRequest(backup_dir=str(backup_dir), **server_folder.options()), check_mode=True)
    assert len(preview["transferred"]) == 3 and preview["changed"]
    assert listing(server_folder.folder) == {}


CHILD = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote import sync as _remote
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote import ssh as _remote_ssh
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote import s3 as _remote_s3
request = json.loads(sys.argv[3])
if request["remote"].startswith("ssh://"):
    _remote_ssh.SshStore.multiplex = False  # no shared ssh master outliving the kill
    real_run = _remote_ssh.SshStore._run
    def slow_run(self, arguments, what, **kwargs):
        if what.startswith("copying") and not what.endswith((".json", ".sha256")):
            arguments = ["--bwlimit=1024"] + arguments  # the archive crawls: the kill lands half-way
        return real_run(self, arguments, what, **kwargs)
    _remote_ssh.SshStore._run = slow_run
else:
    _remote_s3.PART_SIZE = 5 << 20
    real_init = _remote_s3.S3Store.__init__
    def slow_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.client.meta.events.register("before-call.s3.UploadPart", lambda **kw: time.sleep(1.0))
    _remote_s3.S3Store.__init__ = slow_init
print(json.dumps(_remote.sync(_remote.SyncRequest(**request))))
"""


def _push_and_kill(request: dict, started) -> None:
    """Run a push in a child process and SIGKILL it (and its rsync and ssh) once ``started()`` says the archive
    is on its way."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, os.path.join(REPO, "collections"), REPO,
                              json.dumps(request)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not started():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the push never started sending its archive"
            time.sleep(0.02)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()


def _big_backup(app, backup_dir) -> dict:
    with open(str(app / "output" / "big.bin"), "wb") as handle:
        handle.write(os.urandom(12 << 20))
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), compression="none", now=T0))


def test_a_push_killed_half_way_leaves_nothing_a_pull_takes(server_folder, app, tmp_path):
    backup_dir = tmp_path / "backups"
    made = _big_backup(app, backup_dir)
    relative = os.path.relpath(made["archive"], str(backup_dir))
    options = server_folder.options()
    server_daily = os.path.join(server_folder.folder, "daily")

    def archive_on_its_way() -> bool:
        return os.path.isdir(server_daily) and any(
            name.startswith(".") and os.path.basename(relative) in name for name in os.listdir(server_daily))
    _push_and_kill(dict(options, backup_dir=str(backup_dir)), archive_on_its_way)
    on_server = listing(server_folder.folder)
    assert relative + ".sha256" in on_server and relative + ".meta.json" in on_server
    assert relative not in on_server  # never under its own name while incomplete
    pulled = sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", **options))
    assert pulled["transferred"] == [] and names(tmp_path / "new-server") == []
    assert [(item["name"], "interrupted" in item["reason"]) for item in pulled["skipped"]] == [(made["name"], True)]
    # The next push completes it, and then the pull takes it.
    assert [item["name"] for item in sync(SyncRequest(backup_dir=str(backup_dir), **options))["transferred"]] == [
        made["name"]]
    pulled = sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", **options))
    assert names(tmp_path / "new-server") == [made["name"]]
    assert pulled["transferred"][0]["size"] >= made["size"]


def test_a_damaged_remote_copy_is_never_listed_here(server_folder, three_backups, tmp_path):
    backup_dir, made = three_backups
    options = server_folder.options()
    sync(SyncRequest(backup_dir=str(backup_dir), **options))
    remote_archive = os.path.join(server_folder.folder, os.path.relpath(made[1]["archive"], str(backup_dir)))
    data = bytearray(open(remote_archive, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(remote_archive, "wb").write(bytes(data))
    with pytest.raises(BackupError, match="does not match its .sha256 sidecar"):
        sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", select=made[1]["name"],
                         **options))
    assert names(tmp_path / "new-server") == []
    assert [p for p in listing(tmp_path / "new-server") if not p.endswith(".lock")] == []


def test_an_unknown_host_key_is_refused_and_accept_new_records_it(server_folder, three_backups, tmp_path):
    backup_dir, _made = three_backups
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    options = dict(server_folder.options(), known_hosts=str(empty))
    with pytest.raises(BackupError, match="host key is unknown or changed"):
        sync(SyncRequest(backup_dir=str(backup_dir), **options))
    sync(SyncRequest(backup_dir=str(backup_dir), ssh_host_key_checking="accept-new", **options))
    assert "ssh-ed25519" in empty.read_text()


def test_retention_and_mirrors_on_the_remote(server_folder, three_backups, tmp_path):
    backup_dir, made = three_backups
    options = server_folder.options()
    sync(SyncRequest(backup_dir=str(backup_dir), **options))
    preview = prune_remote(SyncRequest(backup_dir=str(backup_dir), **options), {"full": {"keep_last": 1}},
                           now="2025-05-27T12:00:00Z", check_mode=True)
    assert [item["name"] for item in preview["deleted"]] == [made[0]["name"]]
    assert len(listing(server_folder.folder)) == 11  # 3 archives, 3 x 2 sidecars, the 2 full backups' index
    pruned = prune_remote(SyncRequest(backup_dir=str(backup_dir), **options), {"full": {"keep_last": 1}},
                          now="2025-05-27T12:00:00Z")
    assert [item["name"] for item in pruned["deleted"]] == [made[0]["name"]] and pruned["freed_bytes"] > 0
    assert not any(made[0]["name"] in path for path in listing(server_folder.folder))
    assert {item["name"] for item in pruned["kept"]} == {made[1]["name"], made[2]["name"]}
    # A mirror the other way: the local copy of the pruned backup goes too.
    mirrored = sync(SyncRequest(backup_dir=str(backup_dir), direction="pull", delete=True, **options))
    assert [item["name"] for item in mirrored["deleted"]] == [made[0]["name"]]
    assert names(backup_dir) == [made[1]["name"], made[2]["name"]]
    with pytest.raises(BackupError, match="needs select: all"):
        sync(SyncRequest(backup_dir=str(backup_dir), select="latest", delete=True, **options))


def test_s3_push_pull_and_retention(s3_server, three_backups, tmp_path):  # noqa: F811
    backup_dir, made = three_backups
    options = s3_server.options(s3_server.make_bucket("backups-roundtrip"))
    pushed = sync(SyncRequest(backup_dir=str(backup_dir), **options))
    assert [item["name"] for item in pushed["transferred"]] == [m["name"] for m in made]
    keys = s3_server.keys("backups-roundtrip")
    relative = os.path.relpath(made[0]["archive"], str(backup_dir))
    assert keys["app1/" + relative] == made[0]["size"] and "app1/%s.meta.json" % relative in keys
    assert not sync(SyncRequest(backup_dir=str(backup_dir), **options))["changed"]
    pulled = sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", select="before",
                              before="2025-05-26T12:00:00Z", **options))
    assert names(tmp_path / "new-server") == [made[0]["name"]] and pulled["transferred"][0]["seconds"] >= 0
    pruned = prune_remote(SyncRequest(backup_dir=str(backup_dir), **options), {"full": {"keep_last": 1}},
                          now="2025-05-27T12:00:00Z")
    assert [item["name"] for item in pruned["deleted"]] == [made[0]["name"]]
    assert not any(made[0]["name"] in key for key in s3_server.keys("backups-roundtrip"))


def test_s3_push_killed_half_way_leaves_nothing_a_pull_takes(s3_server, app, tmp_path):  # noqa: F811
    backup_dir = tmp_path / "backups"
    made = _big_backup(app, backup_dir)
    bucket = s3_server.make_bucket("backups-killed")
    options = s3_server.options(bucket)
    client = s3_server.client()

    def multipart_started() -> bool:
        return bool(client.list_multipart_uploads(Bucket=bucket).get("Uploads"))
    _push_and_kill(dict(options, backup_dir=str(backup_dir)), multipart_started)
    relative = "app1/" + os.path.relpath(made["archive"], str(backup_dir))
    keys = s3_server.keys(bucket)
    assert relative + ".sha256" in keys and relative not in keys
    pulled = sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", **options))
    assert pulled["transferred"] == [] and names(tmp_path / "new-server") == []
    assert "interrupted" in pulled["skipped"][0]["reason"]
    sync(SyncRequest(backup_dir=str(backup_dir), **options))  # completes it, aborting the unfinished upload
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", **options))
    assert names(tmp_path / "new-server") == [made["name"]]
