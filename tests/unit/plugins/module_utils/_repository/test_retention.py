from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError, LockTimeout
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import DirectoryLock
from tests.unit.plugins.module_utils.builders import fake_backup
from tests.unit.plugins.module_utils.builders import churn

T0 = datetime(2025, 5, 1, 2, 0, 0, tzinfo=timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_guide_defaults_per_type(tmp_path):
    now = T0 + timedelta(days=100)
    for days in (0, 65, 71, 80, 92, 95, 99):
        fake_backup(tmp_path, "full", T0 + timedelta(days=days))
        fake_backup(tmp_path, "config", T0 + timedelta(days=days, hours=1))
    for hours in (0, 20, 30):
        fake_backup(tmp_path, "database", now - timedelta(hours=hours))
    fake_backup(tmp_path, "full", T0, name="pre-maintenance-20250501")
    reasons = _retention.plan(_catalog.list_backups(str(tmp_path)), now=now)
    kept = {os.path.relpath(path, str(tmp_path)) for path, why in reasons.items() if why}
    # now is 2025-08-09 02:00: 30 days back is 07-10 02:00, 90 days back is 05-11 02:00, 24 hours back 08-08 02:00.
    assert kept == {
        "daily/backup_20250711_020000.tar.zst", "daily/backup_20250720_020000.tar.zst",
        "daily/backup_20250801_020000.tar.zst", "daily/backup_20250804_020000.tar.zst",
        "daily/backup_20250808_020000.tar.zst",  # within 30 days
        "config/config_20250705_030000.tar.zst", "config/config_20250711_030000.tar.zst",
        "config/config_20250720_030000.tar.zst", "config/config_20250801_030000.tar.zst",
        "config/config_20250804_030000.tar.zst", "config/config_20250808_030000.tar.zst",  # within 90 days
        "database/database_20250809_020000.tar.zst", "database/database_20250808_060000.tar.zst",  # within 24 h
        "manual/pre-maintenance-20250501.tar.zst",  # named: kept until asked
    }


def test_gfs_buckets_keep_the_newest_of_each(tmp_path):
    now = T0 + timedelta(days=60)
    for day in range(60):
        for hour in (2, 14):
            fake_backup(tmp_path, "full", T0 + timedelta(days=day, hours=hour - 2))
    policy = {"full": {"keep_daily": 3, "keep_weekly": 2, "keep_monthly": 2}}
    backups = _catalog.list_backups(str(tmp_path))
    reasons = _retention.plan(backups, policy, now)
    kept = sorted(b["created"] for b in backups if reasons[b["archive"]])
    assert kept == ["2025-05-31T14:00:00Z",  # monthly: May
                    "2025-06-22T14:00:00Z",  # weekly: ISO week 25 ends on Sunday the 22nd
                    "2025-06-27T14:00:00Z", "2025-06-28T14:00:00Z", "2025-06-29T14:00:00Z"]  # daily, weekly, monthly
    assert "keep_monthly 2 (2025-06)" in reasons[backups[-1]["archive"]]


def test_newest_verified_full_is_never_deleted(tmp_path):
    old = fake_backup(tmp_path, "full", T0)
    newer = fake_backup(tmp_path, "full", T0 + timedelta(days=1))
    with open(old + ".verify.json", "w") as handle:
        json.dump({"verified_at": stamp(T0), "valid": True, "status": "valid", "archive_sha256": "0" * 64}, handle)
    reasons = _retention.plan(_catalog.list_backups(str(tmp_path)), {"full": {"keep_last": 0}}, T0 + timedelta(days=400))
    assert reasons[old] == ["the newest verified full backup"]
    assert reasons[newer] == ["the newest full backup"]


def test_policy_errors_say_what_is_wrong():
    with pytest.raises(BackupError, match="unknown backup type 'weekly'"):
        _retention.effective_policy({"weekly": {}})
    with pytest.raises(BackupError, match="unknown rules keep_forever"):
        _retention.effective_policy({"full": {"keep_forever": 1}})
    with pytest.raises(BackupError, match="cannot read the duration '30 days'"):
        _retention.effective_policy({"full": {"keep_within": "30 days"}})


def real_chain(app, backups):
    """A full backup and three incrementals, six hours apart, from T0."""
    created = [create_backup(BackupRequest(str(app), str(backups), now=T0))]
    for step in range(1, 4):
        churn(app, 20)
        created.append(create_backup(BackupRequest(str(app), str(backups), type="incremental",
                                                   now=T0 + timedelta(hours=6 * step))))
    return created


def test_prune_in_the_future_keeps_what_kept_backups_depend_on(app, tmp_path):
    backups = tmp_path / "backups"
    full, first, second, third = real_chain(app, backups)
    # Eight days on: the incrementals are past 7 days, the full is within 30. Keep the last incremental only by
    # count: its whole chain must stay.
    now = stamp(T0 + timedelta(days=8))
    preview = _retention.prune(str(backups), {"incremental": {"keep_last": 1}}, now, check_mode=True)
    assert preview["deleted"] == [] and {k["name"]: k["reasons"] for k in preview["kept"]} == {
        full["name"]: ["keep_within 30d", "the newest full backup", "a kept backup depends on it"],
        first["name"]: ["a kept backup depends on it"], second["name"]: ["a kept backup depends on it"],
        third["name"]: ["keep_last 1"]}
    result = _retention.prune(str(backups), None, now)
    assert [d["name"] for d in result["deleted"]] == [third["name"], second["name"], first["name"]]
    assert result["freed_bytes"] == sum(b["size"] for b in (first, second, third))
    assert [b["name"] for b in _catalog.list_backups(str(backups))] == [full["name"]]
    assert sorted(os.listdir(str(backups / "incremental"))) == []
    # 40 days on: past 30 days, but it is the newest full backup.
    assert _retention.prune(str(backups), None, stamp(T0 + timedelta(days=40)))["deleted"] == []


def test_check_mode_deletes_nothing(app, tmp_path):
    backups = tmp_path / "backups"
    real_chain(app, backups)
    before = sorted(os.listdir(str(backups / "incremental")))
    preview = _retention.prune(str(backups), None, stamp(T0 + timedelta(days=8)), check_mode=True)
    assert len(preview["deleted"]) == 3 and preview["changed"] is True
    assert sorted(os.listdir(str(backups / "incremental"))) == before


def test_prune_waits_for_a_running_backup_and_never_deletes_under_it(app, tmp_path):
    backups = tmp_path / "backups"
    real_chain(app, backups)
    with DirectoryLock(str(backups), 1, "a backup in progress"):
        with pytest.raises(LockTimeout, match="a backup in progress"):
            _retention.prune(str(backups), None, stamp(T0 + timedelta(days=8)), lock_timeout=0.3)
    assert len(_catalog.list_backups(str(backups))) == 4


def test_prune_racing_real_backups(app, tmp_path):
    backups = tmp_path / "backups"
    real_chain(app, backups)
    errors = []

    def take_backups():
        try:
            for hour in range(3):
                churn(app, 5)
                create_backup(BackupRequest(str(app), str(backups), type="incremental", lock_timeout=30,
                                            now=T0 + timedelta(days=8, hours=hour)))
        except BackupError as error:  # pragma: no cover - reported below
            errors.append(error)

    worker = threading.Thread(target=take_backups)
    worker.start()
    for _ in range(5):
        _retention.prune(str(backups), None, stamp(T0 + timedelta(days=8, hours=3)), lock_timeout=30)
    worker.join()
    assert errors == []
    listed = _catalog.list_backups(str(backups))
    assert all(backup["restorable"] for backup in listed)
    assert len([b for b in listed if b["created"] >= "2025-05-09"]) == 3
