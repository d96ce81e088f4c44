from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import fake_backup

NOW = datetime(2025, 5, 28, 20, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    ("2025-05-28T14:00:00Z", datetime(2025, 5, 28, 14, tzinfo=timezone.utc)),
    ("2025-05-28 14:00:00", datetime(2025, 5, 28, 14, tzinfo=timezone.utc)),
    ("2025-05-28T16:00:00+02:00", datetime(2025, 5, 28, 14, tzinfo=timezone.utc)),
    ("20250528_140000", datetime(2025, 5, 28, 14, tzinfo=timezone.utc)),
    ("6 hours ago", NOW - timedelta(hours=6)),
    ("1 day ago", NOW - timedelta(days=1)),
    ("now", NOW),
    ("1748440800", datetime(2025, 5, 28, 14, tzinfo=timezone.utc)),
])
def test_parse_time(text, expected):
    assert _catalog.parse_time(text, NOW) == expected


def test_parse_time_says_what_it_accepts():
    with pytest.raises(BackupError, match="ISO-8601 .* '6 hours ago'"):
        _catalog.parse_time("yesterday-ish", NOW)


def test_list_only_complete_backups_oldest_first(tmp_path):
    newer = fake_backup(tmp_path, "full", NOW - timedelta(hours=1))
    older = fake_backup(tmp_path, "full", NOW - timedelta(hours=30))
    fake_backup(tmp_path, "full", NOW, complete=False)
    (tmp_path / "daily" / ".tmp-backup_x.tar.zst-abc").write_text("partial")
    assert [b["archive"] for b in _catalog.list_backups(str(tmp_path))] == [older, newer]


def test_choose_newest_at_or_before(tmp_path):
    for hours in (30, 12, 6, 1):
        fake_backup(tmp_path, "full", NOW - timedelta(hours=hours))
    fake_backup(tmp_path, "config", NOW - timedelta(hours=2))
    backups = _catalog.list_backups(str(tmp_path))
    assert _catalog.choose(backups, before="6 hours ago", now=NOW)["created"] == "2025-05-28T14:00:00Z"
    assert _catalog.choose(backups, before="2025-05-28T19:00:00Z", backup_type="full")["created"] == \
        "2025-05-28T19:00:00Z"
    assert _catalog.choose(backups, before="2025-05-28T18:59:59Z", backup_type="full")["created"] == \
        "2025-05-28T14:00:00Z"
    assert _catalog.choose(backups, before="2020-01-01T00:00:00Z") is None
    assert _catalog.choose(backups)["type"] == "full"


def test_choose_by_name_and_file_name(tmp_path):
    fake_backup(tmp_path, "full", NOW, name="pre-maintenance-20250528")
    backups = _catalog.list_backups(str(tmp_path))
    assert _catalog.choose(backups, name="pre-maintenance-20250528")["named"] is True
    assert _catalog.choose(backups, name="pre-maintenance-20250528.tar.zst") is not None
    assert _catalog.choose(backups, name="nope") is None


def test_remove_incomplete_takes_temps_and_orphan_sidecars_only(tmp_path):
    kept = fake_backup(tmp_path, "full", NOW)
    orphan = fake_backup(tmp_path, "full", NOW - timedelta(hours=1))
    os.unlink(orphan)  # killed between the sidecars and the commit rename
    (tmp_path / "daily" / ".tmp-snapshot-x-1").write_text("partial")
    removed = _catalog.remove_incomplete(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted(
        [".tmp-snapshot-x-1", os.path.basename(orphan) + ".sha256", os.path.basename(orphan) + ".meta.json"])
    assert sorted(os.listdir(str(tmp_path / "daily"))) == sorted(
        os.path.basename(p) for p in (kept, kept + ".sha256", kept + ".meta.json"))


def test_thousand_backups_listed_from_sidecars(tmp_path):
    for minute in range(1000):
        fake_backup(tmp_path, "database", NOW - timedelta(minutes=minute))
    summary = _catalog.summarize(_catalog.list_backups(str(tmp_path)))
    assert summary["totals"]["count"] == 1000 and summary["totals"]["bytes"] == 7000
    assert summary["latest"]["database"]["created"] == "2025-05-28T20:00:00Z"


def test_read_checksum_rejects_a_malformed_sidecar(tmp_path):
    archive = fake_backup(tmp_path, "full", NOW)
    assert _catalog.read_checksum(archive) == "0" * 64
    with open(archive + ".sha256", "w") as handle:
        handle.write("garbage\n")
    with pytest.raises(BackupError, match="malformed"):
        _catalog.read_checksum(archive)
