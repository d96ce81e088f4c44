"""The backup directory and the remote store as hostile ground (issue 10): the engine against planted links,
FIFOs, damaged sidecars, reused names and broken chains. Attacker steps run as ``nobody`` where they need a user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import chain as _chain
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils import _lock
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, LockTimeout
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive

T0 = datetime(2025, 5, 28, 2, 0, tzinfo=timezone.utc)
ATTACKER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def backup(app, backups, hours: float, **options) -> dict:
    return create_backup(BackupRequest(str(app), str(backups), now=T0 + timedelta(hours=hours), **options))


def as_attacker(*command: str) -> None:
    subprocess.run(ATTACKER + list(command), check=True, capture_output=True)


@pytest.fixture
def ground():
    """A world-traversable folder (tmp_path is root-only), removed afterwards."""
    root = __import__("tempfile").mkdtemp(prefix="hostile-", dir="/tmp")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_fs_open_dir_refuses_a_planted_link_and_follows_one_root_made(ground):
    os.mkdir(os.path.join(ground, "real"))
    os.mkdir(os.path.join(ground, "app"))
    os.chown(os.path.join(ground, "app"), 65534, 65534)
    as_attacker("ln", "-s", os.path.join(ground, "real"), os.path.join(ground, "app", "backups"))
    with pytest.raises(BackupError, match="app/backups is a symbolic link .* did not make"):
        _fs.open_dir(os.path.join(ground, "app", "backups"))
    os.symlink(os.path.join(ground, "real"), os.path.join(ground, "operator-link"))
    os.close(_fs.open_dir(os.path.join(ground, "operator-link")))  # an operator's own link still works


def test_sidecar_reads_never_block_on_a_fifo_and_cap_the_size(tmp_path):
    os.mkfifo(str(tmp_path / "x.meta.json"))
    started = time.monotonic()
    with pytest.raises(BackupError, match="x.meta.json is not a regular file"):
        _fs.read_regular(str(tmp_path / "x.meta.json"), 100)
    assert time.monotonic() - started < 2
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(BackupError, match="101 bytes, more than the 100"):
        _fs.read_regular(str(tmp_path / "big"), 100)
    os.symlink("/dev/zero", str(tmp_path / "zero"))
    with pytest.raises(BackupError, match="symbolic link"):
        _fs.read_regular(str(tmp_path / "zero"), 100)


def test_a_named_backup_may_not_take_an_existing_or_automatic_name(app, tmp_path):
    made = backup(app, tmp_path / "b", 0)
    with pytest.raises(BackupError, match="automatic backups get"):
        backup(app, tmp_path / "b", 1, name=made["name"])
    with pytest.raises(BackupError, match="automatic backups get"):
        backup(app, tmp_path / "b", 1, name="database_20250101_000000-2")
    backup(app, tmp_path / "b", 1, name="pre-maintenance")
    with pytest.raises(BackupError, match="a backup named pre-maintenance already exists"):
        backup(app, tmp_path / "b", 2, name="pre-maintenance", type="config")


@pytest.mark.parametrize("name", ["nightly\n", "a/b", "..", "with space", "x" * 129, "-lead"])
def test_names_outside_the_strict_set_are_refused_not_stripped(app, tmp_path, name):
    with pytest.raises(BackupError, match="letters, digits, '.', '_' and '-'"):
        backup(app, tmp_path / "b", 0, name=name)
    assert not os.path.exists(str(tmp_path / "b" / "manual"))


def test_a_chain_finds_its_parent_by_checksum_not_by_a_reused_name(app, tmp_path, monkeypatch):
    backups = tmp_path / "b"
    full = backup(app, backups, 0)
    (app / "config" / "production.env").write_text("DATABASE_PATH=data/reddit_sentiment.db\nREAL=1\n")
    inc = backup(app, backups, 1, type="incremental")
    assert json.load(open(inc["archive"] + ".meta.json"))["parent_sha256"] == full["sha256"]
    # An older tool let a named backup take the automatic name; it is older, so a by-name lookup found it first.
    (app / "config" / "production.env").write_text("IMPOSTOR=1\n")
    monkeypatch.setattr(_catalog, "check_name", lambda name: name)
    monkeypatch.setattr(_catalog, "_taken", lambda *args: None, raising=False)
    backup(app, backups, -5, name=full["name"])
    monkeypatch.undo()
    listed = _catalog.list_backups(str(backups))
    child = [b for b in listed if b["name"] == inc["name"]][0]
    assert [b["archive"] for b in _chain.resolve(listed, child)] == [full["archive"], inc["archive"]]
    dest = tmp_path / "restored"
    restore(RestoreRequest(dest=str(dest), backup_dir=str(backups), name=inc["name"], verify_first=False))
    assert "REAL=1" in (dest / "config" / "production.env").read_text()


def test_verify_of_an_incremental_without_its_full_backup_is_not_valid(app, tmp_path):
    backups = tmp_path / "b"
    full = backup(app, backups, 0)
    (app / "output" / "new.csv").write_text("x\n")
    inc = backup(app, backups, 1, type="incremental")
    assert verify_archive(inc["archive"])["valid"]
    for suffix in ("", ".sha256", ".meta.json", ".index.json"):
        os.unlink(full["archive"] + suffix)
    for level in ("quick", "comprehensive"):
        result = verify_archive(inc["archive"], level=level)
        assert result["status"] == "invalid" and not result["valid"]
        chain = [check for check in result["checks"] if check["name"] == "chain"][0]
        assert chain["status"] == "missing_dependency" and full["name"] in chain["detail"]
    alone = tmp_path / "alone.tar.zst"
    shutil.copy(inc["archive"], str(alone))
    assert verify_archive(str(alone), record=False)["status"] == "invalid"


@pytest.mark.parametrize("meta", [[], "text", {"type": "weekly"}, {"size": "big"}, {"databases": "none"},
                                  {"created": 12}, {"name": "other"}, {"type": "config"}])
def test_a_damaged_meta_marks_one_backup_and_the_rest_works(app, tmp_path, meta):
    backups = tmp_path / "b"
    first = backup(app, backups, 0)
    second = backup(app, backups, 1)
    path = second["archive"] + ".meta.json"
    good = json.load(open(path))
    shaped = dict(good, **meta) if isinstance(meta, dict) else meta
    with open(path, "w") as handle:
        json.dump(shaped, handle)
    listed = _catalog.list_backups(str(backups))
    damaged = [b for b in listed if b["damaged"]]
    assert [b["archive"] for b in damaged] == [second["archive"]] and path.split("/")[-1][:-10] in damaged[0]["damaged"]
    assert _catalog.summarize(listed)["latest"]["full"]["archive"] == first["archive"]
    assert _catalog.choose(listed)["archive"] == first["archive"]
    result = _retention.prune(str(backups), {"full": {"keep_last": 0}}, now=T0 + timedelta(days=400))
    assert os.path.exists(second["archive"]) and second["archive"] in [k["archive"] for k in result["kept"]]
    assert any("damaged" in reason for k in result["kept"] for reason in k["reasons"])


def test_prune_keeps_what_it_cannot_classify(app, tmp_path):
    backups = tmp_path / "b"
    made = backup(app, backups, 0, type="config")
    path = made["archive"] + ".meta.json"
    meta = json.load(open(path))
    with open(path, "w") as handle:
        json.dump(dict(meta, type="weekly"), handle)
    result = _retention.prune(str(backups), {"config": {}}, now=T0 + timedelta(days=400))
    assert os.path.exists(made["archive"]) and result["deleted"] == []
    assert "weekly" in result["kept"][0]["reasons"][0]


def test_prune_waits_for_a_reader_and_never_deletes_what_it_reads(app, tmp_path):
    backups = tmp_path / "b"
    old = backup(app, backups, 0, type="config")
    backup(app, backups, 24 * 200, type="config")
    with _lock.reading(_catalog.backup_dir_of(old["archive"])):
        with pytest.raises(LockTimeout, match="being read by a restore or verify"):
            _retention.prune(str(backups), now=T0 + timedelta(days=250), lock_timeout=0.5)
        assert os.path.exists(old["archive"])
    # A reader racing the prune either reads the whole backup (its checksum and members whole: a quick verify) or
    # finds it already gone, never half of it.
    outcomes = []

    def read():
        try:
            outcomes.append(verify_archive(old["archive"], level="quick"))
        except BackupError as error:
            outcomes.append(str(error))

    reader = threading.Thread(target=read)
    reader.start()
    result = _retention.prune(str(backups), now=T0 + timedelta(days=250), lock_timeout=30)
    reader.join()
    assert [d["archive"] for d in result["deleted"]] == [old["archive"]]
    assert len(outcomes) == 1
    if isinstance(outcomes[0], str):
        assert "does not exist" in outcomes[0], outcomes[0]
    else:
        assert outcomes[0]["valid"], outcomes[0]["errors"]


def test_a_running_verify_holds_off_a_prune_until_it_has_read_the_backup(app, tmp_path, monkeypatch):
    """The verify itself takes the readers' lock: held mid-read (at a gate), a prune times out and deletes nothing;
    once the verify has finished (valid), the same prune deletes the old backup."""
    from ansible_collections.devops.reddit_backup.plugins.module_utils._verify import verify as _verify
    backups = tmp_path / "b"
    old = backup(app, backups, 0, type="config")
    backup(app, backups, 24 * 200, type="config")
    reading, release, results = threading.Event(), threading.Event(), []
    original = _verify._verify_archive

    def gated(*args, **kwargs):
        reading.set()
        assert release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(_verify, "_verify_archive", gated)
    reader = threading.Thread(target=lambda: results.append(verify_archive(old["archive"], level="quick")))
    reader.start()
    try:
        assert reading.wait(60)
        with pytest.raises(LockTimeout, match="being read by a restore or verify"):
            _retention.prune(str(backups), now=T0 + timedelta(days=250), lock_timeout=0.5)
        assert os.path.exists(old["archive"])
    finally:
        release.set()
        reader.join()
    assert results and results[0]["valid"], results[0]["errors"] if results else results
    result = _retention.prune(str(backups), now=T0 + timedelta(days=250), lock_timeout=30)
    assert [d["archive"] for d in result["deleted"]] == [old["archive"]]


def test_temp_cleanup_takes_only_this_tools_regular_temp_files(app, tmp_path):
    backups = tmp_path / "b"
    backup(app, backups, 0)
    staging = backups / ".tmp-restore-0123456789ab"
    staging.mkdir()
    (staging / "keep").write_text("pre-restore data")
    (backups / "daily" / ".tmp-notes").write_text("someone's")
    (backups / "daily" / "notes.sha256").write_text("not a sidecar of an archive")
    os.mkdir(str(backups / "daily" / ".tmp-dir-abc"))
    os.symlink("/etc/hostname", str(backups / "daily" / ".tmp-link-abc"))
    (backups / "daily" / ".tmp-x.tar.zst-0123456789ab").write_text("a killed run's")
    removed = _catalog.remove_incomplete(str(backups))
    assert [os.path.basename(p) for p in removed] == [".tmp-x.tar.zst-0123456789ab"]
    for kept in (staging / "keep", backups / "daily" / ".tmp-notes", backups / "daily" / "notes.sha256",
                 backups / "daily" / ".tmp-dir-abc"):
        assert os.path.exists(str(kept))
    assert os.path.islink(str(backups / "daily" / ".tmp-link-abc")) and os.path.exists("/etc/hostname")


def test_a_lock_file_not_ours_is_refused_and_never_truncated(ground):
    backups = os.path.join(ground, "backups")
    os.mkdir(backups)
    os.chown(backups, 65534, 65534)
    victim = os.path.join(ground, "victim")
    with open(victim, "w") as handle:
        handle.write("precious\n")
    as_attacker("ln", "-s", victim, os.path.join(backups, ".lock"))
    with pytest.raises(BackupError, match=r"lock file .*\.lock was not made by this tool \(it is a symbolic link"):
        with _lock.DirectoryLock(backups, 1):
            pass
    os.unlink(os.path.join(backups, ".lock"))
    # The directory's owner (the app user, whose scheduled runs lock it too) may own the lock file: root shares it,
    # writing only that file.
    as_attacker("sh", "-c", "echo mine > %s/.lock" % backups)
    with _lock.DirectoryLock(backups, 1):
        pass
    assert os.stat(os.path.join(backups, ".lock")).st_uid == 65534
    # A file of anyone else (neither this run's user nor the directory's owner) is refused.
    os.chown(os.path.join(backups, ".lock"), 12345, 12345)
    with pytest.raises(BackupError, match="belongs to uid 12345"):
        with _lock.DirectoryLock(backups, 1):
            pass
    os.unlink(os.path.join(backups, ".lock"))
    as_attacker("sh", "-c", "echo mine > %s/.lock && ln %s/.lock %s/other" % (backups, backups, backups))
    with pytest.raises(BackupError, match="hard links"):
        with _lock.DirectoryLock(backups, 1):
            pass
    os.unlink(os.path.join(backups, "other"))
    os.unlink(os.path.join(backups, ".lock"))
    as_attacker("mkfifo", os.path.join(backups, ".lock"))
    with pytest.raises(BackupError, match="not a regular file"):
        with _lock.DirectoryLock(backups, 1):
            pass
    assert open(victim).read() == "precious\n"


@pytest.mark.parametrize("where", ["root", "app_root", "above"])
def test_a_backup_dir_that_is_the_root_or_holds_the_app_is_refused_and_nothing_is_tightened(app, where):
    """A backup_dir of "/" (a fuzzed option value did it once) made create tighten "/" to 0700 and write daily/
    there; the app root or a folder above it would close the app (or a home folder) to its owner."""
    backup_dir = {"root": "/", "app_root": str(app), "above": str(app.parent)}[where]
    modes = {path: os.stat(path).st_mode for path in ("/", str(app), str(app.parent))}
    with pytest.raises(BackupError, match="backup_dir .*(filesystem's root|app root)"):
        create_backup(BackupRequest(app_root=str(app), backup_dir=backup_dir, compression="none"))
    assert {path: os.stat(path).st_mode for path in modes} == modes
    assert not os.path.exists(os.path.join(backup_dir, "daily"))


def test_prune_refuses_the_filesystems_root_as_backup_dir():
    with pytest.raises(BackupError, match="backup_dir / is the filesystem's root"):
        _retention.prune("/")
    assert not os.path.exists("/.lock")
