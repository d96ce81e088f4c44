"""Promises that a deliberately broken engine once kept passing (issue 13): each test observes the property
itself. A page delta that rebuilds the wrong bytes, a rebuilt database that is corrupt, a setuid directory, the
old item put back right after a kill between the two renames, databases out of scope checked in every link of a
chain, a database snapshot replacing its destination atomically, and a backup killed between its sidecars and
its commit."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import pages as _pages
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import restore as _restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import sqlite as _sqlite
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import swap as _swap
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.verdict import read_verdict
from tests.unit.plugins.module_utils.builders import make_db
from tests.unit.plugins.module_utils.builders import entry, resign, tar_bytes, write_archive
from tests.unit.plugins.module_utils.builders import DB, REPO, _run_driver, damage, rows, tree

DELTA_MEMBER = DB + ".pagedelta"


def _database_chain(app, tmp_path) -> tuple:
    """A database chain, uncompressed so a test can rewrite it: a base snapshot (500 rows), then a page delta
    (200 rows)."""
    from datetime import datetime, timedelta, timezone
    backups, start = str(tmp_path / "backups"), datetime.now(timezone.utc) - timedelta(hours=1)
    base = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, type="database", compression="none",
                                       now=start))
    conn = sqlite3.connect(str(app / DB))
    conn.execute("DELETE FROM posts WHERE id > 200")
    conn.commit()
    conn.close()
    delta = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, type="database", compression="none",
                                        now=start + timedelta(minutes=10)))
    assert delta["parent"] == base["name"] and [d.get("delta") for d in delta["databases"]] == [True]
    return backups, base, delta


def _members(archive: str) -> list:
    """(TarInfo, bytes) of every member of an uncompressed archive, in order."""
    with tarfile.open(archive) as tar:
        return [(info, tar.extractfile(info).read() if info.isfile() else b"") for info in tar.getmembers()]


def _rewrite(archive: str, path: str, data: bytes, database_update: dict) -> None:
    """Rewrite one member of an uncompressed archive as a person who can write the backup store would: the
    member's manifest record (sha256, size), its database record, the archive's .sha256 and .meta.json all
    recomputed to match, so only the checks that look at what the bytes ARE can tell."""
    members = _members(archive)
    manifest = json.loads(members[-1][1])
    for record in manifest["members"]:
        if record["path"] == path:
            record.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    for database in manifest["databases"]:
        if database["path"] == DB:
            database.update(database_update)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            if info.name == path:
                content = data
            elif info.name == _manifest.MANIFEST_NAME:
                content = _manifest.encode(manifest)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if info.isfile() else None)
    with open(archive, "wb") as handle:
        handle.write(buffer.getvalue())
    resign(archive)
    meta_path = archive + _catalog.META_SUFFIX
    with open(meta_path) as handle:
        meta = json.load(handle)
    meta.update(_manifest.catalog_entry(manifest, len(buffer.getvalue()), _catalog.read_checksum(archive)))
    with open(meta_path, "wb") as handle:
        handle.write(_manifest.encode(meta))


def _forged_delta(tmp_path, base_archive: str, rebuilt: str, recorded_sha256: str) -> tuple:
    """A page delta from the base link's snapshot to the database file ``rebuilt`` whose header claims it
    rebuilds ``recorded_sha256``: (delta bytes, its header)."""
    base = dict((info.name, data) for info, data in _members(base_archive))[DB]
    base_digests = _pages.page_digests(base, 4096)
    digests, _ = _pages.page_hashes(rebuilt, 4096)
    out = str(tmp_path / "forged.pagedelta")
    header = _pages.write_delta(rebuilt, digests, base_digests, 4096, out, recorded_sha256,
                                hashlib.sha256(base).hexdigest())
    with open(out, "rb") as handle:
        return handle.read(), header


def _copy_of_live_db(app, tmp_path, name: str) -> str:
    copy = str(tmp_path / name)
    _sqlite.snapshot(str(app / DB), copy)
    return copy


def test_a_page_delta_that_rebuilds_other_bytes_than_recorded_is_refused(app, tmp_path):
    """A delta whose pages give a valid database, but not the snapshot the manifest records, is refused by the
    final sha256 comparison (the rebuilt database passes PRAGMA integrity_check, so nothing else can tell)."""
    backups, base, delta = _database_chain(app, tmp_path)
    other = _copy_of_live_db(app, tmp_path, "other.db")
    conn = sqlite3.connect(other)
    conn.execute("UPDATE posts SET body = 'not what was backed up' WHERE id = 7")
    conn.commit()
    conn.close()
    assert _sqlite.check_integrity(other, "full") == "ok"
    recorded = delta["databases"][0]["sha256"]
    data, header = _forged_delta(tmp_path, base["archive"], other, recorded)
    _rewrite(delta["archive"], DELTA_MEMBER, data, {"changed_pages": header["changed_pages"],
                                                    "page_count": header["page_count"]})
    dest = tmp_path / "dest"
    with pytest.raises(BackupError, match="sha256 differs from the recorded snapshot"):
        restore(RestoreRequest(dest=str(dest), archive=delta["archive"], scope="database"))
    assert not dest.exists()
    with pytest.raises(BackupError, match="sha256 differs from the recorded snapshot"):
        restore(RestoreRequest(dest=str(dest), archive=delta["archive"], scope="database", verify_first=False))
    assert not dest.exists()


def test_a_rebuilt_database_that_is_corrupt_is_refused_by_its_integrity_check(app, tmp_path):
    """The delta rebuilds exactly the bytes its records name (sha256 matches), but those bytes are a damaged
    database: only PRAGMA integrity_check on the rebuilt file can refuse it, before anything is swapped in."""
    backups, base, delta = _database_chain(app, tmp_path)
    corrupt = _copy_of_live_db(app, tmp_path, "corrupt.db")
    with open(corrupt, "r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(b"\xff" * 4096)
    assert _sqlite.check_integrity(corrupt, "full") != "ok"
    digest = hashlib.sha256(open(corrupt, "rb").read()).hexdigest()
    data, header = _forged_delta(tmp_path, base["archive"], corrupt, digest)
    _rewrite(delta["archive"], DELTA_MEMBER, data, {"sha256": digest, "size": os.path.getsize(corrupt),
                                                    "changed_pages": header["changed_pages"],
                                                    "page_count": header["page_count"]})
    damage(app)
    before = tree(app)
    with pytest.raises(BackupError, match="rebuilt from the chain .* fails its integrity check"):
        restore(RestoreRequest(dest=str(app), archive=delta["archive"], scope="database"))
    assert tree(app) == before


def test_a_setuid_directory_comes_out_without_its_bits_and_the_result_says_so(tmp_path):
    members = [entry("bin", "dir", mode=0o6755), entry("bin/tool", data=b"#!/bin/sh\n", mode=0o755),
               entry("share", "dir", mode=0o2775), entry("plain", "dir", mode=0o1777)]
    archive = write_archive(tmp_path / "b", "suid-dir", tar_bytes(members), meta={"type": "full"})
    dest = tmp_path / "app"
    result = restore(RestoreRequest(dest=str(dest), archive=archive, verify_first=False))
    assert os.stat(str(dest / "bin")).st_mode & 0o7777 == 0o755
    assert os.stat(str(dest / "share")).st_mode & 0o7777 == 0o775
    assert os.stat(str(dest / "plain")).st_mode & 0o7777 == 0o1777  # the sticky bit is not setuid/setgid
    dropped = sorted(w for w in result["warnings"] if "setuid/setgid" in w)
    assert dropped == ["setuid/setgid bits dropped from bin", "setuid/setgid bits dropped from share"]


@pytest.fixture
def backup(app, tmp_path):
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups")))


@pytest.mark.parametrize("scope, kill_at, item", [("database", "moved-0", "data"), ("full", "moved-2", "data")])
def test_without_rename_exchange_the_old_item_is_put_back_right_after_a_kill(
        app, backup, tmp_path, scope, kill_at, item):
    """Killed between the two renames of the fallback swap, the item is missing; the recovery the next run starts
    with puts the old item back where it was, observed before any restore runs again."""
    damage(app)
    old = tree(app / item)
    assert _run_driver(backup["archive"], app, kill_at, scope, no_exchange=True) == -signal.SIGKILL
    assert tree(app / item) == {}, "the kill did not land between the two renames"
    stagings = [os.path.join(str(tmp_path), n) for n in os.listdir(str(tmp_path)) if n.startswith(".reddit-restore-")]
    assert len(stagings) == 1
    done = _swap.recover(stagings[0], str(app))
    assert tree(app / item) == old
    assert any("put back as it was" in line and line.startswith(str(app / item)) for line in done)
    assert not os.path.exists(stagings[0])


def test_a_narrow_scope_from_a_chain_verifies_the_databases_out_of_scope_in_every_link(app, tmp_path, monkeypatch):
    """A config restore from full -> incremental: the database out of scope is checked in each link. Stored whole
    (the full link), its bytes are the recorded snapshot (sha256) that passed PRAGMA integrity_check at backup time,
    and PRAGMA quick_check now (the record is not signed: see test_restore_integrity); stored as a page delta (the
    incremental), its header is checked against the record and the result says, truthfully, that its integrity
    check was skipped (it would need the database rebuilt from the chain, which a config restore does not do)."""
    from tests.unit.plugins.module_utils.builders import _chain
    backups, made = _chain(app, tmp_path)
    per_link = {}
    real = _restore._RestoreJob._verification

    def verification(job, archive, verifier, reader, *rest):
        per_link[archive] = real(job, archive, verifier, reader, *rest)
        return per_link[archive]

    monkeypatch.setattr(_restore._RestoreJob, "_verification", verification)
    result = restore(RestoreRequest(dest=str(app), backup_dir=backups, scope="config",
                                    name=made["incremental"]["name"]))
    assert result["chain"] == [made["full"]["archive"], made["incremental"]["archive"]]
    assert list(per_link) == result["chain"]
    full_checks = {c["name"]: c for c in per_link[made["full"]["archive"]]["checks"]}
    assert full_checks["database:" + DB]["ok"] and full_checks["database:" + DB]["status"] == "passed"
    assert full_checks["database:" + DB]["detail"].startswith(
        "PRAGMA quick_check: ok; PRAGMA integrity_check passed at backup time on the recorded snapshot (sha256")
    assert read_verdict(made["full"]["archive"])["valid"]
    last = {c["name"]: c for c in result["verification"]["checks"]}
    assert last["database:" + DB]["status"] == "skipped" and "page delta" in last["database:" + DB]["detail"]
    assert not any(name.startswith("rebuilt:") for name in last)


def test_a_narrow_scope_refuses_a_chain_whose_out_of_scope_database_is_damaged(app, tmp_path):
    """The database of the full link is damaged (its bytes still match the hashes the full backup records): a config
    restore is refused, although it would not restore that database. Restored from the incremental, the chain
    already refuses the rewritten full backup as a broken link (a child pins its parent by archive sha256); restored
    from the full backup itself, only the out-of-scope database check can refuse it."""
    from datetime import datetime, timedelta, timezone
    backups, start = str(tmp_path / "backups"), datetime.now(timezone.utc) - timedelta(hours=1)
    full = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, compression="none", now=start))
    (app / "config" / "production.env").write_text("DATABASE_PATH=data/reddit_sentiment.db\nLOG_LEVEL=DEBUG\n")
    inc = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, type="incremental",
                                      compression="none", now=start + timedelta(minutes=10)))
    corrupt = dict((info.name, data) for info, data in _members(full["archive"]))[DB]
    corrupt = corrupt[:8192] + b"\xff" * 4096 + corrupt[12288:]
    _rewrite(full["archive"], DB, corrupt, {"sha256": hashlib.sha256(corrupt).hexdigest()})
    (app / "config" / "production.env").write_text("APP_ENV=broken\n")
    with pytest.raises(BackupError, match="missing link in their chain"):
        restore(RestoreRequest(dest=str(app), backup_dir=backups, scope="config", name=inc["name"]))
    with pytest.raises(BackupError, match="failed verification .*database:%s" % DB):
        restore(RestoreRequest(dest=str(app), backup_dir=backups, scope="config", name=full["name"]))
    assert (app / "config" / "production.env").read_text() == "APP_ENV=broken\n"


POLLER = """
import hashlib, os, sys
dest, stop = sys.argv[1], sys.argv[2]
observed = set()
while not os.path.exists(stop):
    try:
        with open(dest, "rb") as handle:
            observed.add(hashlib.sha256(handle.read()).hexdigest())
    except FileNotFoundError:
        observed.add("missing")
print(" ".join(sorted(observed)))
"""


def test_a_snapshot_replaces_its_destination_atomically(tmp_path, monkeypatch):
    """While the snapshot is taken and checked, the destination still holds the previous file, whole; a reader
    polling it meanwhile sees the previous file or the new one, never a part of either."""
    live = str(tmp_path / "live.db")
    make_db(live, rows=20000)
    (tmp_path / "out").mkdir()
    dest = tmp_path / "out" / "snap.db"
    dest.write_bytes(b"the previous snapshot")
    seen_during: list = []
    real_snapshot, real_check = _sqlite.snapshot, _sqlite.check_integrity

    def snapshot(src, target, *args):
        facts = real_snapshot(src, target, *args)
        seen_during.append(("snapshot written", dest.read_bytes()))
        return facts

    def check_integrity(path, level="quick"):
        seen_during.append(("checked", dest.read_bytes()))
        return real_check(path, level)

    monkeypatch.setattr(_sqlite, "snapshot", snapshot)
    monkeypatch.setattr(_sqlite, "check_integrity", check_integrity)
    # The reader polls from its own process: in this one, its open of the destination would be among the files the
    # snapshot sees SQLite holding (a swap, for the check that the selected database is what SQLite opened).
    stop_file = tmp_path / "stop"
    poller = subprocess.Popen([sys.executable, "-c", POLLER, str(dest), str(stop_file)], stdout=subprocess.PIPE,
                              text=True)
    try:
        result = _sqlite.snapshot_file(live, str(dest), "full")
    finally:
        stop_file.write_text("")
        output, _ = poller.communicate(timeout=60)
    observed = set(output.split())
    assert seen_during == [("snapshot written", b"the previous snapshot"), ("checked", b"the previous snapshot")]
    assert result["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert observed <= {hashlib.sha256(b"the previous snapshot").hexdigest(), result["sha256"]}, \
        "a reader saw a partial or missing snapshot"


CREATE_DRIVER = """
import os, signal, sys
sys.path[:0] = [sys.argv[4]]
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import chain as _chain
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import create as _create
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
kill_at, written = sys.argv[3], []
def killing(name, real):
    def step(*args, **kwargs):
        if kill_at == "before-" + name:
            os.kill(os.getpid(), signal.SIGKILL)
        outcome = real(*args, **kwargs)
        written.append(name)
        if kill_at == "after-%s-%d" % (name, written.count(name)):
            os.kill(os.getpid(), signal.SIGKILL)
        return outcome
    return step
_fs.atomic_write_bytes = killing("sidecar", _fs.atomic_write_bytes)
_chain.write_index = killing("index", _chain.write_index)
_fs.commit_no_clobber = killing("commit", _fs.commit_no_clobber)
create_backup(BackupRequest(app_root=sys.argv[1], backup_dir=sys.argv[2], type=sys.argv[5]))
"""


@pytest.mark.parametrize("backup_type, kill_at", [
    ("full", "after-index-1"), ("full", "after-sidecar-1"), ("full", "after-sidecar-2"), ("full", "before-commit"),
    ("incremental", "after-sidecar-2"), ("database", "before-commit"),
])
def test_a_backup_killed_between_its_sidecars_and_its_commit_is_never_listed(app, tmp_path, backup_type, kill_at):
    """SIGKILL after each sidecar is written and just before the archive is committed: nothing is listed (no
    backup whose archive never arrived), the sidecars left are removed by the next run, which works."""
    backups = tmp_path / "backups"
    first = create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups)))
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    killed = subprocess.run([python, "-c", CREATE_DRIVER, str(app), str(backups), kill_at,
                             os.path.join(REPO, "collections"), backup_type], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    listed = _catalog.list_backups(str(backups))
    assert [b["archive"] for b in listed] == [first["archive"]]
    orphans = [os.path.join(folder, name) for folder, _, files in os.walk(str(backups)) for name in files
               if name.endswith(_catalog.SIDECAR_SUFFIXES) and not any(
                   os.path.exists(os.path.join(folder, name[:-len(suffix)]))
                   for suffix in _catalog.SIDECAR_SUFFIXES if name.endswith(suffix))]
    assert orphans, "the kill did not land between the sidecars and the commit"
    again = create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups), type=backup_type))
    archives = {b["archive"] for b in _catalog.list_backups(str(backups))}
    assert archives == {first["archive"], again["archive"]}
    for folder, _, files in os.walk(str(backups)):
        for name in files:
            path = os.path.join(folder, name)
            if name.startswith("."):
                assert name in (".lock", ".readers"), "a temp file was left: %s" % path
                continue
            owner = next((a for a in archives if path == a or path.startswith(a + ".")), None)
            assert owner is not None, "%s belongs to no listed backup" % path
    assert rows(str(app / DB)) == 500


def test_a_deletion_through_a_symlink_inside_dest_removes_nothing(app, tmp_path):
    """A rewritten incremental's deletion list names current/dir, where current -> shared is a symlink that stays
    inside dest (so the composed chain is sound): the deletion must not follow it, and shared/dir, which the
    composed state still holds, is restored."""
    from tests.unit.plugins.module_utils.builders import rewrite
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    (app / "shared" / "dir").mkdir(parents=True)
    (app / "shared" / "dir" / "precious.txt").write_text("kept\n")
    os.symlink("shared", str(app / "current"))
    backups = str(tmp_path / "backups")
    create_backup(BackupRequest(app_root=str(app), backup_dir=backups, compression="none"))
    (app / "config" / "production.env").write_text("DATABASE_PATH=data/reddit_sentiment.db\nLOG_LEVEL=DEBUG\n")
    incremental = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, type="incremental",
                                              compression="none"))
    rewrite(incremental["archive"], deleted=["current/dir"])
    dest = tmp_path / "restored"
    restore(RestoreRequest(dest=str(dest), archive=incremental["archive"]))
    assert os.readlink(str(dest / "current")) == "shared"
    assert (dest / "shared" / "dir" / "precious.txt").read_text() == "kept\n"


@pytest.mark.needs_root
def test_a_planted_staging_folder_is_refused_for_its_owner_first(tmp_path):
    """The first reason a folder the app user planted is refused is its owner, and the message says so (the
    marker and journal checks behind it are a second line, not the only one)."""
    from tests.unit.plugins.module_utils.builders import PLANT_STAGING, as_nobody, hostile_backup as backup, \
        hostile_world
    world_maker = hostile_world()
    world = next(world_maker)
    try:
        app, outside = world / "home" / "app", world / "outside"
        made = backup(app, world / "backups")
        planted = app.parent / ".reddit-restore-app-0000"
        as_nobody(PLANT_STAGING, planted, outside, app)
        with pytest.raises(BackupError, match=r"refusing to recover %s .*it is owned by uid %d, not by uid 0"
                                              % (planted, os.stat(str(planted)).st_uid)):
            restore(RestoreRequest(dest=str(app), archive=made["archive"]))
    finally:
        next(world_maker, None)
