"""A prune on the remote holds this host's backup directory lock, so it never races a push from this host: while
another run holds the lock, the prune waits lock_timeout, then fails naming the holder and deletes nothing there."""

from __future__ import annotations

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import LockTimeout
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import SyncRequest, prune_remote, sync
from tests.unit.plugins.module_utils.builders import hold_in_child
from tests.unit.plugins.module_utils.builders import listing, server_folder, three_backups  # noqa: F401  (fixtures)
from tests.servers import backup_server  # noqa: F401  (a fixture)


def test_a_remote_prune_never_races_a_run_holding_the_backup_directory(server_folder, three_backups):  # noqa: F811
    backup_dir, made = three_backups
    options = server_folder.options()
    sync(SyncRequest(backup_dir=str(backup_dir), **options))
    before = listing(server_folder.folder)
    holder = hold_in_child(backup_dir)
    try:
        with pytest.raises(LockTimeout, match=r"locked by another run \(PID %d" % holder.pid):
            prune_remote(SyncRequest(backup_dir=str(backup_dir), lock_timeout=0.5, **options),
                         {"full": {"keep_last": 1}}, now="2025-05-27T12:00:00Z")
    finally:
        holder.kill()
        holder.wait()
    assert listing(server_folder.folder) == before
    pruned = prune_remote(SyncRequest(backup_dir=str(backup_dir), **options), {"full": {"keep_last": 1}},
                          now="2025-05-27T12:00:00Z")
    assert [item["name"] for item in pruned["deleted"]] == [made[0]["name"]]
