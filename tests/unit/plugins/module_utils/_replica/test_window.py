"""The replica's recovery window from Litestream's listing, and the lag of a restored moment behind a commit."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.litestream import check_plain_folder
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.restore import lag_behind
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.window import database_window, recovery_window


def entry(level, first, last, stamp):
    return {"level": level, "min_txid": "%016x" % first, "max_txid": "%016x" % last, "size": 700,
            "timestamp": stamp}


def test_the_window_opens_at_the_oldest_base_and_closes_at_the_newest_file():
    files = [entry(0, 7, 7, "2026-01-02T10:00:07Z"), entry(9, 1, 5, "2026-01-02T10:00:05Z"),
             entry(1, 3, 6, "2026-01-02T10:00:06Z"), entry(9, 1, 2, "2026-01-01T10:00:00Z")]
    assert database_window(files) == {"oldest": "2026-01-01T10:00:00Z", "newest": "2026-01-02T10:00:07Z",
                                      "txid": "0000000000000007", "files": 4}
    # Incremental files without a base to start from restore nothing: the window is not open.
    assert database_window([entry(0, 3, 3, "2026-01-02T10:00:03Z")])["oldest"] is None
    assert database_window([]) == {"oldest": None, "newest": None, "txid": None, "files": 0}


def test_settings_that_cannot_be_read_are_an_unreachable_replica_not_an_error(tmp_path):
    window = recovery_window(str(tmp_path / "replica.json"))
    assert window["reachable"] is False and window["databases"] == {}
    assert window["error"].startswith("the replica is unreachable: replica settings %s " % (tmp_path / "replica.json"))
    assert "No such file or directory" in window["error"] and "apply the devops.reddit_backup.litestream" in window["error"]


def test_lag_is_counted_to_the_second_from_the_recovery_point():
    point = "2026-01-02T10:00:05Z"
    at = 1767348005.0  # 2026-01-02T10:00:05Z
    assert lag_behind(at + 0.9, point) == 0.0, "a commit within the recovery point's second is in the replica"
    assert lag_behind(at + 3.2, point) == 3.0
    assert lag_behind(at - 60, point) == 0.0
    assert lag_behind(0.0, point) is None, "no live database: nothing to be behind"


def test_a_planted_link_or_fifo_in_a_file_replica_is_refused(tmp_path):
    replica = tmp_path / "replica"
    (replica / "db" / "ltx" / "0").mkdir(parents=True)
    (replica / "db" / "ltx" / "0" / "0000000000000001-0000000000000001.ltx").write_bytes(b"x" * 200)
    check_plain_folder(str(replica))
    check_plain_folder(str(tmp_path / "missing"))
    check_plain_folder(None)
    link = replica / "db" / "ltx" / "0" / "0000000000000002-0000000000000002.ltx"
    os.symlink("/etc/shadow", str(link))
    with pytest.raises(BackupError, match="which is a symlink, not a regular file: someone who can write"):
        check_plain_folder(str(replica))
    link.unlink()
    os.symlink(str(tmp_path), str(replica / "db" / "ltx" / "9"))
    with pytest.raises(BackupError, match="ltx/9, which is a symlink"):
        check_plain_folder(str(replica))
    (replica / "db" / "ltx" / "9").unlink()
    subprocess.run(["mkfifo", str(replica / "db" / "fifo")], check=True)
    with pytest.raises(BackupError, match="which is a special file"):
        check_plain_folder(str(replica))
