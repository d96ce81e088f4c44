"""A compromised backup server or object store (issue 10's second attacker) against backup_sync's pull and
backup_prune's remote retention, on the real remotes of tests/servers.py (an sshd serving rsync, and moto's
server mode, an implementation of the S3 API). Whatever is planted there must never land outside the local
backup directory's type folders, overwrite a local file, hang the run, or be deleted by retention unclassified;
the damaged entries are skipped with a reason naming them, and the good backups still travel. The app user's
side of a pull (its staging folder and type folders inside a backup directory that user owns) is attacked as
``nobody``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote import sync as _remote
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import SyncRequest, prune_remote, sync
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.s3 import S3Store
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.ssh import SshStore
from tests.servers import backup_server, s3_server  # noqa: F401  (fixtures)

T0 = datetime(2025, 5, 26, 2, 0, 0, tzinfo=timezone.utc)
ATTACKER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
BOUND_SECONDS = 120  # no pull or prune here may take longer: a hang fails the test instead of the suite
BIG_META = 50 << 20


@contextlib.contextmanager
def bounded(seconds: int = BOUND_SECONDS):
    def expire(_signum, _frame):
        raise AssertionError("the run did not end within %d s: it hangs on something planted" % seconds)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def listing(folder) -> dict:
    """{relative path: (size, sha256)} of every file and link under ``folder`` (hidden ones included)."""
    found = {}
    for dirpath, dirs, files in os.walk(str(folder)):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                found[os.path.relpath(path, str(folder))] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                found[os.path.relpath(path, str(folder))] = (os.path.getsize(path), digest)
            else:
                found[os.path.relpath(path, str(folder))] = ("special", None)
    return found


def only_backups(backup_dir, names: list) -> None:
    """The backup directory holds the lock files and these backups' archives and sidecars, nothing else."""
    allowed = {".lock", ".readers"}
    for path in listing(backup_dir):
        if path in allowed:
            continue
        folder, _sep, base = path.partition("/")
        assert folder in _catalog.SUBDIRS and any(base.startswith(name + ".tar") for name in names), path


@pytest.fixture
def made(app, tmp_path):
    """Two daily full backups a day apart and a configuration backup after them."""
    backup_dir = tmp_path / "backups"
    return backup_dir, [
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), now=T0)),
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), now=T0 + timedelta(days=1))),
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), type="config",
                                    now=T0 + timedelta(days=1, hours=3)))]


@pytest.fixture
def ground():
    """A world-traversable folder (tmp_path is root-only) with an outside tree nobody may see changed."""
    root = tempfile.mkdtemp(prefix="hostile-remote-", dir="/tmp")
    os.chmod(root, 0o755)
    outside = os.path.join(root, "outside")
    os.mkdir(outside)
    with open(os.path.join(outside, "precious"), "w") as handle:
        handle.write("root's file\n")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def good_copy(made_backup: dict, name: str, folder: str = "daily", **meta_changes) -> dict:
    """{relative path: bytes} of a copy of ``made_backup`` under ``name`` with its sidecars rewritten to match,
    and the .meta.json changed by ``meta_changes`` (a value of None: the whole document)."""
    with open(made_backup["archive"], "rb") as handle:
        archive = handle.read()
    with open(made_backup["archive"] + ".meta.json") as handle:
        meta = json.load(handle)
    meta.update(name=name, **{k: v for k, v in meta_changes.items() if k != "document"})
    document = meta_changes.get("document", meta)
    relative = "%s/%s.tar.zst" % (folder, name)
    return {relative: archive,
            relative + ".sha256": ("%s  %s.tar.zst\n" % (hashlib.sha256(archive).hexdigest(), name)).encode(),
            relative + ".meta.json": json.dumps(document).encode()}


# What the compromised store plants, and the words the pull's skip reason gives for it. Each name starts with
# "planted", so nothing of theirs may ever be found in the local backup directory.
DAMAGED = {
    "daily/planted-shape.tar.zst": "damaged on the remote",
    "daily/planted-type.tar.zst": "damaged on the remote",
    "daily/planted-name.tar.zst": "damaged on the remote",
    "daily/planted-bigmeta.tar.zst": "larger than any sidecar",
    "daily/planted-bigsha.tar.zst": "larger than any sidecar",
    "daily/planted space.tar.zst": "not a backup this tool makes",
    "daily/sub/planted.tar.zst": "not a backup this tool makes",
    "weekly/planted.tar.zst": "not a backup this tool makes",
}


def plant_common(put, made_backup: dict, big_meta: int, newline: bool = True) -> None:
    """Plant, through ``put(relative, bytes)``, the entries every store can hold (moto's server cannot hold a
    key with a newline; a real S3 can, and ``_is_archive`` is asserted on such a name directly)."""
    for relative, data in good_copy(made_backup, "planted-shape", document=[1, 2]).items():
        put(relative, data)
    for relative, data in good_copy(made_backup, "planted-type", type="config").items():
        put(relative, data)
    for relative, data in good_copy(made_backup, "planted-name").items():
        put(relative, data.replace(b'"planted-name"', b'"backup_20250526_020000"')
            if relative.endswith(".meta.json") else data)
    for relative, data in good_copy(made_backup, "planted-bigmeta").items():
        put(relative, data + b" " * big_meta if relative.endswith(".meta.json") else data)
    for relative, data in good_copy(made_backup, "planted-bigsha").items():
        put(relative, data + b" " * (1 << 20) if relative.endswith(".sha256") else data)
    foreign = [("planted space", "daily"), ("planted", "daily/sub"), ("planted", "weekly"), ("..planted", "daily"),
               (".planted", "daily")] + ([("planted\nnewline", "daily")] if newline else [])
    for name, folder in foreign:
        for relative, data in good_copy(made_backup, name, folder).items():
            put(relative, data)


def assert_pulled_only_good(result: dict, backup_dir, good: list, expected_skips: dict, newline: bool = True) -> None:
    assert [item["name"] for item in result["transferred"]] == [backup["name"] for backup in good]
    only_backups(backup_dir, [backup["name"] for backup in good])
    for relative, words in expected_skips.items():
        reasons = [item["reason"] for item in result["skipped"] if item["archive"] == relative]
        assert reasons and words in reasons[0], (relative, result["skipped"])
        assert relative in reasons[0] or words.startswith("incomplete") or words.startswith("damaged"), reasons
    newline_skip = [item for item in result["skipped"] if "planted" in item["archive"] and "newline" in item["archive"]]
    assert newline_skip and "not a backup this tool makes" in newline_skip[0]["reason"] or not newline
    assert not [item for item in result["skipped"] if ".planted" in item["archive"]]  # hidden: a temp, not listed


@pytest.fixture
def hostile_ssh(backup_server, made, ground):  # noqa: F811
    """The backup server after a push of ``made``, with everything a compromised server can plant there."""
    backup_dir, backups = made
    subprocess.run(["rm", "-rf", backup_server.folder], check=True)
    os.makedirs(backup_server.folder, 0o700)
    sync(SyncRequest(backup_dir=str(backup_dir), **backup_server.options()))
    root = backup_server.folder

    def put(relative: str, data: bytes) -> None:
        path = os.path.join(root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    plant_common(put, backups[0], 0)
    with open(os.path.join(root, "daily/planted-bigmeta.tar.zst.meta.json"), "r+b") as handle:
        handle.truncate(BIG_META)  # sparse: 50 MB listed, nothing written
    for relative, data in good_copy(backups[0], "planted-fifo").items():
        if relative.endswith(".meta.json"):
            os.mkfifo(os.path.join(root, relative))
        else:
            put(relative, data)
    for relative, data in good_copy(backups[0], "planted-link").items():  # the archive: a link out of the folder
        if relative.endswith(".tar.zst"):
            os.symlink("/etc/passwd", os.path.join(root, relative))
        else:
            put(relative, data)
    outside_meta = os.path.join(ground, "outside", "meta.json")
    for relative, data in good_copy(backups[0], "planted-slink").items():  # a sidecar: a link out of the folder
        if relative.endswith(".meta.json"):
            with open(outside_meta, "wb") as handle:
                handle.write(data)
            os.symlink(outside_meta, os.path.join(root, relative))
        else:
            put(relative, data)
    linked = os.path.join(ground, "outside", "linked")  # a whole type folder: a link to a folder of backups
    for relative, data in good_copy(backups[0], "planted-folder", "linked").items():
        os.makedirs(os.path.dirname(os.path.join(ground, "outside", relative)), exist_ok=True)
        with open(os.path.join(ground, "outside", relative), "wb") as handle:
            handle.write(data)
    os.symlink(linked, os.path.join(root, "incremental"))
    return backup_server, backups


SSH_SKIPS = dict(DAMAGED, **{"daily/planted-fifo.tar.zst": "incomplete on the remote",
                             "daily/planted-link.tar.zst": "incomplete on the remote",
                             "daily/planted-slink.tar.zst": "incomplete on the remote"})


def test_a_pull_over_ssh_takes_only_the_good_backups_and_names_the_rest(hostile_ssh, ground, tmp_path):
    server, backups = hostile_ssh
    before_outside = listing(os.path.join(ground, "outside"))
    with bounded():
        result = sync(SyncRequest(backup_dir=str(tmp_path / "all"), direction="pull", **server.options()))
    assert_pulled_only_good(result, tmp_path / "all", backups, SSH_SKIPS)
    assert listing(os.path.join(ground, "outside")) == before_outside
    assert [b["name"] for b in _catalog.list_backups(str(tmp_path / "all"))] == [b["name"] for b in backups]


@pytest.mark.parametrize("select, before, expected", [("latest", None, [1, 2]), ("before", "2025-05-26T12:00:00Z", [0]),
                                                      ("name", None, [0])])
def test_latest_before_and_name_pulls_skip_what_was_planted(hostile_ssh, tmp_path, select, before, expected):
    server, backups = hostile_ssh
    chosen = backups[0]["name"] if select == "name" else select
    with bounded():
        result = sync(SyncRequest(backup_dir=str(tmp_path / select), direction="pull", select=chosen, before=before,
                                  **server.options()))
    good = [backups[index] for index in expected]
    assert [item["name"] for item in result["transferred"]] == [b["name"] for b in good]
    only_backups(tmp_path / select, [b["name"] for b in good])


def test_a_pull_of_a_damaged_remote_backup_by_name_says_why(hostile_ssh, tmp_path):
    server, _backups = hostile_ssh
    with bounded(), pytest.raises(BackupError, match=r"daily/planted-shape.tar.zst.*damaged on the remote"):
        sync(SyncRequest(backup_dir=str(tmp_path / "named"), direction="pull", select="planted-shape",
                         **server.options()))
    only_backups(tmp_path / "named", [])


def test_remote_prune_over_ssh_never_deletes_what_it_cannot_classify(hostile_ssh):
    server, backups = hostile_ssh
    before = listing(server.folder)
    with bounded():
        result = prune_remote(SyncRequest(backup_dir=os.path.dirname(os.path.dirname(backups[0]["archive"])),
                                          **server.options()), {"full": {"keep_last": 1}},
                              now="2025-05-27T12:00:00Z")
    assert [item["name"] for item in result["deleted"]] == [backups[0]["name"]]
    gone = {path for path in before if path.startswith("daily/%s.tar.zst" % backups[0]["name"])}
    assert len(gone) == 4 and set(before) - set(listing(server.folder)) == gone  # archive, .sha256, .meta, .index
    kept = {item["archive"]: " ".join(item["reasons"]) for item in result["kept"]}
    for relative in ("daily/planted-shape.tar.zst", "daily/planted-bigmeta.tar.zst", "daily/planted-fifo.tar.zst"):
        assert "retention cannot classify it" in kept[relative], kept


def test_a_stalled_server_ends_the_pull_within_its_timeout(backup_server, tmp_path):  # noqa: F811
    """A server that accepts the connection and then sends nothing (here: a forced command that sleeps)."""
    with open(backup_server.authorized_keys) as handle:
        key = handle.read()
    with open(backup_server.authorized_keys, "w") as handle:
        handle.write('command="sleep 30" ' + key)
    try:
        with bounded(25), pytest.raises(BackupError, match="rsync to .* failed"):
            sync(SyncRequest(backup_dir=str(tmp_path / "stalled"), direction="pull", timeout=3,
                             **backup_server.options()))
    finally:
        with open(backup_server.authorized_keys, "w") as handle:
            handle.write(key)


# The app user's side: the local backup directory is theirs (nobody's here), the pull runs as root.

@pytest.fixture
def clean_ssh(backup_server, made):  # noqa: F811
    """The backup server after a push of ``made``, nothing planted there."""
    backup_dir, backups = made
    subprocess.run(["rm", "-rf", backup_server.folder], check=True)
    os.makedirs(backup_server.folder, 0o700)
    sync(SyncRequest(backup_dir=str(backup_dir), **backup_server.options()))
    return backup_server, backups


def nobody_backup_dir(ground) -> str:
    backup_dir = os.path.join(ground, "backups")
    os.mkdir(backup_dir, 0o700)
    os.chown(backup_dir, 65534, 65534)
    return backup_dir


def as_attacker(*command: str) -> None:
    subprocess.run(ATTACKER + list(command), check=True, capture_output=True)


def test_a_staging_folder_swapped_for_a_link_leads_the_pull_nowhere_outside(clean_ssh, ground, monkeypatch):
    server, backups = clean_ssh
    backup_dir = nobody_backup_dir(ground)
    outside = os.path.join(ground, "outside")
    before_outside = listing(outside)
    real_download = SshStore.download
    swapped = []

    def swap_then_download(store, *args, **kwargs):
        for name in os.listdir(backup_dir):
            if name.startswith(".tmp-pull-"):
                as_attacker("mv", os.path.join(backup_dir, name), os.path.join(backup_dir, "moved"))
                as_attacker("ln", "-s", outside, os.path.join(backup_dir, name))
                swapped.append(name)
        return real_download(store, *args, **kwargs)
    monkeypatch.setattr(SshStore, "download", swap_then_download)
    with bounded():
        try:
            result = sync(SyncRequest(backup_dir=backup_dir, direction="pull", **server.options()))
        except BackupError as error:
            assert backup_dir in str(error)
        else:
            assert [item["name"] for item in result["transferred"]] == [b["name"] for b in backups]
    print(listing(ground))
    assert swapped and listing(outside) == before_outside


def test_an_s3_pull_staging_folder_swapped_for_a_link_leads_nowhere_outside(
        s3_server, made, ground, monkeypatch):  # noqa: F811
    backup_dir, backups = made
    options = s3_server.options(s3_server.make_bucket("swapped-staging"))
    sync(SyncRequest(backup_dir=str(backup_dir), **options))
    local = nobody_backup_dir(ground)
    outside = os.path.join(ground, "outside")
    before_outside = listing(outside)
    real_download = S3Store.download
    swapped = []

    def swap_then_download(store, *args, **kwargs):
        for name in os.listdir(local):
            if name.startswith(".tmp-pull-"):
                as_attacker("mv", os.path.join(local, name), os.path.join(local, "moved"))
                as_attacker("ln", "-s", outside, os.path.join(local, name))
                swapped.append(name)
        return real_download(store, *args, **kwargs)
    monkeypatch.setattr(S3Store, "download", swap_then_download)
    with bounded():
        try:
            result = sync(SyncRequest(backup_dir=local, direction="pull", **options))
        except BackupError as error:
            assert local in str(error)
        else:
            assert [item["name"] for item in result["transferred"]] == [b["name"] for b in backups]
    assert swapped and listing(outside) == before_outside


def test_a_type_folder_planted_as_a_link_is_refused_by_a_pull(clean_ssh, ground):
    server, _backups = clean_ssh
    backup_dir = nobody_backup_dir(ground)
    outside = os.path.join(ground, "outside")
    as_attacker("ln", "-s", outside, os.path.join(backup_dir, "daily"))
    before_outside = listing(outside)
    with bounded(), pytest.raises(BackupError, match=os.path.join(backup_dir, "daily")):
        sync(SyncRequest(backup_dir=backup_dir, direction="pull", **server.options()))
    assert listing(outside) == before_outside


def test_a_pull_never_overwrites_a_local_file_in_its_way(clean_ssh, ground):
    """The app user put a file under a backup's name (no sidecars: no backup to the catalog) and a sidecar that
    is a link to a file outside; the pull keeps the first, never writes through the second, and says so."""
    server, backups = clean_ssh
    backup_dir = nobody_backup_dir(ground)
    outside = os.path.join(ground, "outside")
    as_attacker("/usr/bin/python3", "-c", "import os, sys; os.mkdir(sys.argv[1])", os.path.join(backup_dir, "daily"))
    squatted = os.path.join(backup_dir, "daily", os.path.basename(backups[0]["archive"]))
    as_attacker("sh", "-c", "echo mine > '%s'; echo '{}' > '%s.meta.json'" % (squatted, squatted))
    as_attacker("ln", "-s", os.path.join(outside, "precious"),
                os.path.join(backup_dir, "daily", os.path.basename(backups[1]["archive"]) + ".meta.json"))
    before_outside = listing(outside)
    with bounded():
        try:
            result = sync(SyncRequest(backup_dir=backup_dir, direction="pull", **server.options()))
        except BackupError as error:
            message = str(error)
        else:
            message = " ".join(item["reason"] for item in result["skipped"])
    assert squatted in message
    with open(squatted) as handle:
        assert handle.read() == "mine\n"
    with open(squatted + ".meta.json") as handle:
        assert handle.read() == "{}\n"
    assert listing(outside) == before_outside


# The object store: keys may hold anything, '..' and '/' included.

def test_s3_pull_and_prune_take_only_the_good_backups(s3_server, made, ground, tmp_path):  # noqa: F811
    backup_dir, backups = made
    bucket = s3_server.make_bucket("hostile-store")
    options = s3_server.options(bucket)
    sync(SyncRequest(backup_dir=str(backup_dir), **options))
    client = s3_server.client()

    def put(relative: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key="app1/" + relative, Body=data)
    plant_common(put, backups[0], 5 << 20, newline=False)
    assert not _remote._is_archive("daily/planted\n.tar.zst") and not _remote._is_archive("daily/x.tar.zst\n")
    escapes = {"daily/../../planted-up.tar.zst", "daily/./planted-dot.tar.zst", "daily//planted-double.tar.zst",
               "/daily/planted-abs.tar.zst", "daily/planted-dir.tar.zst/x"}
    for relative in escapes:
        for suffix, data in good_copy(backups[0], "x").items():
            put(relative + suffix[len("daily/x.tar.zst"):], data)
    put("../planted-outside-prefix.tar.zst", b"not ours")
    before = s3_server.keys(bucket)
    with bounded():
        result = sync(SyncRequest(backup_dir=str(tmp_path / "pulled"), direction="pull", **options))
    assert_pulled_only_good(result, tmp_path / "pulled", backups, DAMAGED, newline=False)
    for relative in ("daily//planted-double.tar.zst", "/daily/planted-abs.tar.zst"):  # '.' and '..' are hidden
        assert [item for item in result["skipped"] if item["archive"] == relative], relative
    assert not [path for path in os.listdir(str(tmp_path)) if "planted" in path]
    assert listing(os.path.join(ground, "outside")) == {"precious": listing(os.path.join(ground, "outside"))[
        "precious"]}
    with bounded():
        pruned = prune_remote(SyncRequest(backup_dir=str(backup_dir), **options), {"full": {"keep_last": 1}},
                              now="2025-05-27T12:00:00Z")
    assert [item["name"] for item in pruned["deleted"]] == [backups[0]["name"]]
    first = "app1/daily/%s.tar.zst" % backups[0]["name"]
    assert set(before) - set(s3_server.keys(bucket)) == {key for key in before if key.startswith(first)}



def test_a_listing_is_no_failure_when_files_vanished_meanwhile(clean_ssh, tmp_path):
    """Litestream writes its replica to <remote>/.litestream with temp files that come and go while rsync walks the
    remote for a listing: rsync then lists the rest and exits 24 ("some files vanished"), which failed a push in the
    molecule replication scenario. The race cannot be timed in a test, so rsync here is the real one whose exit
    status after a complete listing is made 24; the server is the real sshd."""
    backup_server, backups = clean_ssh
    rsync = tmp_path / "rsync"
    rsync.write_text('#!/bin/sh\n%s "$@" && exit 24\n' % shutil.which("rsync"))
    rsync.chmod(0o755)
    user, port, folder = re.match(r"^ssh://([^@]+)@127\.0\.0\.1:([0-9]+)(/.*)$", backup_server.remote).groups()
    store = SshStore(user, "127.0.0.1", int(port), folder, backup_server.ssh_key, backup_server.known_hosts)
    store.rsync = str(rsync)
    listed = store.list()
    assert sorted(os.path.basename(name) for name in listed if name.endswith(".tar.zst")) == sorted(
        os.path.basename(backup["archive"]) for backup in backups)
    with pytest.raises(BackupError, match="exit 24"):
        store.fetch([next(iter(listed))], str(tmp_path / "fetched"), 1 << 20)
