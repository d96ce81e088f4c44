from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import NOW, read_archive


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_archive_matches_its_manifest(app, tmp_path, compression):
    result = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), compression=compression, now=NOW))
    assert result["archive"].endswith({"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}[compression])
    members = read_archive(result["archive"])
    names = list(members)
    assert names[-1] == "MANIFEST.json"
    manifest = json.loads(members["MANIFEST.json"][1])
    assert manifest["type"] == "full" and manifest["created"] == "2025-05-28T02:00:00Z"
    assert manifest["parent"] is None and manifest["compression"] == compression
    assert [m["path"] for m in manifest["members"]] == names[:-1]
    for record in manifest["members"]:
        info, content = members[record["path"]]
        assert record["mode"] == "%04o" % info.mode
        if record["type"] == "file":
            assert record["size"] == len(content) == info.size
            assert record["sha256"] == hashlib.sha256(content).hexdigest()
        elif record["type"] == "symlink":
            assert info.issym() and record["target"] == info.linkname == "run_pipeline.sh"
    database = manifest["databases"][0]
    assert database["path"] == "data/reddit_sentiment.db" and database["integrity"] == "ok"
    snapshot = members["data/reddit_sentiment.db"][1]
    assert database["sha256"] == hashlib.sha256(snapshot).hexdigest()
    assert database["page_count"] * database["page_size"] == len(snapshot)


def test_snapshot_holds_rows_that_live_only_in_the_wal(app, tmp_path):
    live = sqlite3.connect(str(app / "data" / "reddit_sentiment.db"))
    live.execute("PRAGMA wal_autocheckpoint=0")
    live.execute("INSERT INTO posts (body) VALUES ('only in the wal')")
    live.commit()
    result = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), now=NOW))
    live.close()
    restored = tmp_path / "restored.db"
    restored.write_bytes(read_archive(result["archive"])["data/reddit_sentiment.db"][1])
    conn = sqlite3.connect(str(restored))
    assert conn.execute("SELECT count(*) FROM posts WHERE body = 'only in the wal'").fetchone()[0] == 1
    conn.close()


def test_sidecars_and_modes(app, tmp_path):
    backup_dir = tmp_path / "backups"
    result = create_backup(BackupRequest(str(app), str(backup_dir), now=NOW))
    archive = result["archive"]
    assert archive == str(backup_dir / "daily" / "backup_20250528_020000.tar.zst")
    check = subprocess.run(["sha256sum", "-c", os.path.basename(archive) + ".sha256"], cwd=os.path.dirname(archive),
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert result["sha256"] == hashlib.sha256(open(archive, "rb").read()).hexdigest()
    assert result["size"] == os.path.getsize(archive)
    for path in (archive, archive + ".sha256", archive + ".meta.json"):
        assert os.stat(path).st_mode & 0o777 == 0o600
    for folder in (backup_dir, backup_dir / "daily"):
        assert os.stat(str(folder)).st_mode & 0o777 == 0o700
    meta = json.load(open(archive + ".meta.json"))
    assert "members" not in meta and meta["files"] == result["files"] and meta["sha256"] == result["sha256"]
    assert sorted(os.listdir(str(backup_dir / "daily"))) == sorted(
        os.path.basename(p) for p in (archive, archive + ".sha256", archive + ".meta.json", archive + ".index.json"))
    assert os.stat(archive + ".index.json").st_mode & 0o777 == 0o600


def test_types_go_to_the_guide_folders(app, tmp_path):
    backup_dir = str(tmp_path / "backups")
    config = create_backup(BackupRequest(str(app), backup_dir, type="config", now=NOW))
    database = create_backup(BackupRequest(str(app), backup_dir, type="database", now=NOW))
    named = create_backup(BackupRequest(str(app), backup_dir, name="pre-maintenance-20250528", now=NOW))
    assert config["archive"].endswith("/config/config_20250528_020000.tar.zst")
    assert database["archive"].endswith("/database/database_20250528_020000.tar.zst")
    assert named["archive"].endswith("/manual/pre-maintenance-20250528.tar.zst")
    assert set(read_archive(database["archive"])) == {"data", "data/reddit_sentiment.db", "MANIFEST.json"}
    assert "data/reddit_sentiment.db" not in read_archive(config["archive"])


def test_same_second_backups_get_distinct_names(app, tmp_path):
    first = create_backup(BackupRequest(str(app), str(tmp_path / "b"), now=NOW))
    second = create_backup(BackupRequest(str(app), str(tmp_path / "b"), now=NOW))
    assert first["archive"] != second["archive"] and second["name"] == "backup_20250528_020000-2"


def test_named_backup_is_never_overwritten(app, tmp_path):
    create_backup(BackupRequest(str(app), str(tmp_path / "b"), name="pre-maintenance-20250528", now=NOW))
    with pytest.raises(BackupError, match="already exists"):
        create_backup(BackupRequest(str(app), str(tmp_path / "b"), name="pre-maintenance-20250528", now=NOW))


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "x.tar.zst", "-dash"])
def test_bad_names_refused(app, tmp_path, name):
    with pytest.raises(BackupError, match="not usable"):
        create_backup(BackupRequest(str(app), str(tmp_path / "b"), name=name or " ", now=NOW))


def test_check_mode_writes_nothing(app, tmp_path):
    result = create_backup(BackupRequest(str(app), str(tmp_path / "b"), now=NOW), check_mode=True)
    assert result["changed"] is True and result["archive"].endswith("backup_20250528_020000.tar.zst")
    assert result["files"] > 0 and result["size"] is None
    assert not os.path.exists(str(tmp_path / "b"))


def test_damaged_database_fails_the_backup_and_keeps_nothing(app, tmp_path):
    db = str(app / "data" / "reddit_sentiment.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=delete")
    conn.executemany("INSERT INTO posts (body) VALUES (?)", [("filler " * 50,)] * 3000)
    conn.commit()
    conn.close()
    with open(db, "r+b") as handle:
        handle.seek(4096 * 5)
        handle.write(b"\xff" * 4096)
    with pytest.raises(BackupError, match="failed its integrity check"):
        create_backup(BackupRequest(str(app), str(tmp_path / "b"), integrity="full", now=NOW))
    assert os.listdir(str(tmp_path / "b" / "daily")) == []


def test_missing_compressor_is_a_clear_error(app, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(BackupError, match="zstd is not installed on this host"):
        create_backup(BackupRequest(str(app), str(tmp_path / "b"), now=NOW))


def test_failing_compressor_fails_the_backup_and_removes_the_partial(app, tmp_path, monkeypatch):
    # A zstd that dies half-way (the regression mysql_db's pipefail fix guards against: a compressor error
    # must never yield a "successful" truncated backup). A test double: real zstd cannot be made to fail on cue.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "zstd").write_text("#!/bin/sh\nhead -c 1000 >/dev/null\necho 'zstd: simulated failure' >&2\nexit 3\n")
    os.chmod(str(fake_bin / "zstd"), 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (fake_bin, os.environ["PATH"]))
    with pytest.raises(BackupError, match="compressor failed .*exit 3.*simulated failure"):
        create_backup(BackupRequest(str(app), str(tmp_path / "b"), now=NOW))
    assert os.listdir(str(tmp_path / "b" / "daily")) == []
    assert _catalog.list_backups(str(tmp_path / "b")) == []


def test_progress_reports_every_byte_read_against_the_total(app, tmp_path):
    calls = []
    result = create_backup(BackupRequest(str(app), str(tmp_path / "backups"), now=NOW,
                                         progress=lambda done, total: calls.append((done, total))))
    assert calls, "a callback was given: it is called"
    assert [done for done, _total in calls] == sorted(done for done, _total in calls), "it only grows"
    assert all(done <= total for done, total in calls)
    assert calls[-1][0] >= result["bytes"] * 0.9, "about every byte of file data was reported"
    plain = create_backup(BackupRequest(str(app), str(tmp_path / "plain"), now=NOW))
    assert plain["files"] == result["files"], "without a callback, the same backup"
