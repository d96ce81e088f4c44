"""A restore into another root than the backup recorded is refused when asked to be (a typo'd app root must not
fill a new folder), and every restore says what it did not restore."""

from __future__ import annotations

import os

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.unit.plugins.module_utils.builders import restore_backup as backup, tree  # noqa: F401  (fixtures)


def test_another_root_is_refused_naming_both_paths(app, backup, tmp_path):  # noqa: F811
    typo = tmp_path / "ap"
    before = tree(app)
    with pytest.raises(BackupError) as refused:
        restore(RestoreRequest(dest=str(typo), archive=backup["archive"], require_same_root=True))
    message = str(refused.value)
    assert str(typo) in message and str(app) in message and "nothing was changed" in message
    assert "reddit_backup_restore_to_other_root" in message
    assert not typo.exists() and tree(app) == before


def test_the_manifest_is_checked_when_the_catalog_entry_is_missing(app, backup, tmp_path):  # noqa: F811
    os.unlink(backup["archive"] + ".meta.json")
    typo = tmp_path / "ap"
    with pytest.raises(BackupError, match="recorded app_root"):
        restore(RestoreRequest(dest=str(typo), archive=backup["archive"], require_same_root=True,
                               verify_first=False))
    assert not typo.exists()


def test_the_same_root_and_a_link_to_it_pass(app, backup, tmp_path):  # noqa: F811
    (app / "config" / "production.env").write_text("changed\n")
    result = restore(RestoreRequest(dest=str(app), archive=backup["archive"], scope="config",
                                    require_same_root=True))
    assert result["changed"]
    link = tmp_path / "link-to-app"
    link.symlink_to(app)
    again = restore(RestoreRequest(dest=str(link), archive=backup["archive"], scope="config",
                                   require_same_root=True))
    assert not again["changed"]


def test_another_root_on_purpose(app, backup, tmp_path):  # noqa: F811
    other = tmp_path / "scratch"
    result = restore(RestoreRequest(dest=str(other), archive=backup["archive"]))
    assert result["restored"] == [str(other)]


def test_a_full_restore_says_what_it_did_not_restore(app, backup, tmp_path):  # noqa: F811
    result = restore(RestoreRequest(dest=str(tmp_path / "new"), archive=backup["archive"]))
    left = "\n".join(result["not_restored"])
    assert "venv/: never in a backup, left as it is (rebuild it from the wheelhouse" in left
    assert "backups/: the backups themselves, left as they are" in left
    assert "logs/*.log.*" in left and "__pycache__" in left
    assert "safety copies of earlier restores (*.pre-restore-*): not in this backup" in left


def test_a_narrow_restore_says_what_lies_outside_its_scope(app, backup):  # noqa: F811
    result = restore(RestoreRequest(dest=str(app), archive=backup["archive"], scope="database"))
    assert result["not_restored"] == ["everything outside scope database (the databases): left as it is"]
    config = restore(RestoreRequest(dest=str(app), archive=backup["archive"], scope="config"))
    assert "prometheus_config.yml: not in the backup" in "\n".join(config["not_restored"])
    assert "everything outside scope config (config, systemd," in "\n".join(config["not_restored"])
