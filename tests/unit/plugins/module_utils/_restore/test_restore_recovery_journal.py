"""A killed restore's journal is confined before it is used: even in a staging folder this tool made (root's,
0700, its marker intact), a journal naming a path outside the destination or a safety copy elsewhere is refused,
the folder is named, and nothing it names is touched."""

from __future__ import annotations

import json
import os
import signal

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import swap as _swap
from ansible_collections.devops.reddit_backup.plugins.module_utils._confined import PlantedPath
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.unit.plugins.module_utils.builders import REPO, _run_driver, damage, tree


@pytest.fixture
def killed(app, tmp_path):
    """A database restore killed at a named step; returns (archive, staging folder, its journal as JSON)."""
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups")))
    damage(app)

    def kill_at(step: str) -> tuple:
        assert _run_driver(made["archive"], app, step, "database") == -signal.SIGKILL
        stagings = [os.path.join(str(tmp_path), n) for n in os.listdir(str(tmp_path))
                    if n.startswith(".reddit-restore-")]
        assert len(stagings) == 1
        with open(os.path.join(stagings[0], _swap.JOURNAL_NAME)) as handle:
            return made["archive"], stagings[0], json.load(handle)
    return kill_at


def _rewrite_journal(staging: str, journal: dict) -> None:
    with open(os.path.join(staging, _swap.JOURNAL_NAME), "w") as handle:
        json.dump(journal, handle)


@pytest.mark.parametrize("path", ["../victim", "/etc/cron.d", "data/../../victim"])
def test_a_journal_naming_a_path_outside_dest_is_refused(app, tmp_path, killed, path):
    archive, staging, journal = killed("journal")
    journal["units"][0]["path"] = path
    _rewrite_journal(staging, journal)
    before, victim = tree(app), tree(tmp_path / "victim")
    with pytest.raises(PlantedPath, match=r"refusing to recover %s .*its journal names .*not a plain relative "
                                          r"path" % staging):
        restore(RestoreRequest(dest=str(app), archive=archive, scope="database"))
    assert tree(app) == before and tree(tmp_path / "victim") == victim and os.path.isdir(staging)


def test_a_journal_putting_a_safety_copy_elsewhere_is_refused(app, tmp_path, killed):
    """Killed after the exchange, recovery would move the old tree to its safety copy: a journal that names
    another place beside dest is refused before anything is moved there."""
    archive, staging, journal = killed("exchanged-0")
    journal["units"][0]["safety"] = "elsewhere"
    _rewrite_journal(staging, journal)
    with pytest.raises(PlantedPath, match=r"refusing to recover %s .*puts a safety copy at elsewhere, outside"
                       % staging):
        restore(RestoreRequest(dest=str(app), archive=archive, scope="database"))
    assert not os.path.lexists(str(tmp_path / "elsewhere")) and os.path.isdir(staging)
