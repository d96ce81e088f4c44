"""Restores against a hostile filesystem (issue 10): the app user (nobody here) owns the destination and plants
fake staging folders, symlinks and races; a compromised store rewrites chains. Nothing outside the destination
may change, and nothing the archive keeps from the app user may reach it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from tests.unit.plugins.module_utils.builders import write
from tests.unit.plugins.module_utils.builders import tree
from tests.unit.plugins.module_utils.builders import (  # noqa: F401  (fixtures)
    PLANT_STAGING, _make_chain, as_nobody, hostile_backup as backup, rewrite, world,
)

pytestmark = pytest.mark.needs_root  # the attacker steps run as nobody, started by root


@pytest.mark.parametrize("where", ["beside", "inside"])
def test_a_planted_staging_folder_is_refused_and_nothing_is_touched(world, where):
    """Item 1: a fake killed restore's staging folder with a journal of absolute paths (under the old and the new
    prefix) must not move the attacker's file to an attacker-chosen path nor delete an unrelated tree."""
    app, outside = world / "home" / "app", world / "outside"
    made = backup(app, world / "backups")
    folder = app.parent if where == "beside" else app
    legacy, current = folder / ".tmp-restore-app-0000", folder / ".reddit-restore-app-0000"
    for planted in (legacy, current):
        as_nobody(PLANT_STAGING, planted, outside, app)
    before_outside, before_app = tree(outside), tree(app)
    with pytest.raises(BackupError, match="refusing to recover %s" % current):
        restore(RestoreRequest(dest=str(app), archive=made["archive"]))
    assert tree(outside) == before_outside and tree(app) == before_app
    assert not (outside / "sudoers.d" / "evil").exists() and (outside / "victim" / "precious.txt").exists()
    shutil.rmtree(str(current))  # what the message asks the operator to do
    result = restore(RestoreRequest(dest=str(app), archive=made["archive"]))
    assert any(str(legacy) in warning for warning in result["warnings"])
    assert tree(outside) == before_outside
    assert [path for path in world.rglob("payload") if legacy.name in str(path)]  # kept (a full restore moves
    # what dest holds aside into its safety copy)


def test_a_root_owned_folder_renamed_to_a_staging_name_is_refused(world):
    """Item 1: owner and mode are not enough: a root-owned 0700 folder of the app that the app user renames to a
    staging folder's name is not recovered (it has no marker naming its own inode), so nothing in it is lost."""
    app = world / "home" / "app"
    secrets_dir = app / "secrets"
    write(str(secrets_dir / "key"), "k\n", 0o600)
    os.chmod(str(secrets_dir), 0o700)  # root's, inside the app user's folder
    made = backup(app, world / "backups")
    for name in (".tmp-restore-app-1111", ".reddit-restore-app-1111"):
        as_nobody("import os, sys; os.rename(sys.argv[1], sys.argv[2])", secrets_dir, app / name)
        renamed = tree(app / name)
        if name.startswith(".reddit-"):
            with pytest.raises(BackupError, match="marker"):
                restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="config"))
        else:
            restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="config"))
        assert tree(app / name) == renamed, "the renamed folder %s was touched" % name
        as_nobody("import os, sys; os.rename(sys.argv[1], sys.argv[2])", app / name, secrets_dir)


@pytest.mark.parametrize("check_mode", [False, True])
def test_symlinks_are_judged_against_the_composed_chain(world, check_mode):
    """Item 2: l -> d/up/.. stays inside alone, d/up -> .. stays inside alone; composed, l leads outside."""
    app, _full, incremental = _make_chain(world, {"l": "d/up/.."}, {"d/up": ".."})
    dest = world / "restored"
    with pytest.raises(BackupError, match="symlink l -> d/up/.. leads outside"):
        restore(RestoreRequest(dest=str(dest), archive=incremental["archive"]), check_mode=check_mode)
    assert not dest.exists()
    assert not [name for name in os.listdir(str(world)) if name.startswith(".reddit-restore-")]


def test_a_rewritten_deletion_list_through_composed_links_deletes_nothing_outside(world):
    """Item 2: the deletion list names l/outside/victim, where l leads (through d/up) two levels above the
    staged tree, to the destination's parent: nothing there may be deleted."""
    app, _full, incremental = _make_chain(world, {"l": "d/up/../.."}, {"d/up": ".."})
    rewrite(incremental["archive"], deleted=["l/outside/victim", "l/victim"])
    before = tree(world / "outside")
    dest = world / "outside" / ".." / "restored"
    for target in (dest, world / "home" / "restored"):
        with pytest.raises(BackupError, match="leads outside"):
            restore(RestoreRequest(dest=str(target), archive=incremental["archive"]))
    assert tree(world / "outside") == before


def test_a_member_beneath_a_link_of_an_earlier_backup_is_refused_even_in_check_mode(world):
    """Item 2: d/a -> .. in the full backup, then d/a/x in a rewritten incremental: x would land outside d."""
    app, _full, incremental = _make_chain(world, {"d/a": ".."}, {})
    rewrite(incremental["archive"], extra=[("d/a/x", "../scripts")])
    for check_mode in (True, False):
        with pytest.raises(BackupError, match="d/a/x"):
            restore(RestoreRequest(dest=str(world / "restored"), archive=incremental["archive"]),
                    check_mode=check_mode)
    assert not (world / "home" / "app" / "x").exists()


def test_a_folder_swapped_for_a_symlink_before_the_swap_leads_nowhere_outside(world):
    """Item 2: the app user replaces dest/data by a symlink to a folder outside after the restore planned its
    swap: the restore must not rename, delete or write through it (an empty outside/notes was deleted before)."""
    app, outside = world / "home" / "app", world / "outside"
    made = backup(app, world / "backups")
    before = tree(outside)

    def pause(step):
        if step == "journal":
            as_nobody("import os, sys; os.rename(sys.argv[1], sys.argv[1] + '.moved'); os.symlink(sys.argv[2], "
                      "sys.argv[1])", app / "data", outside)

    try:
        restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="database"), pause=pause)
    except BackupError as error:
        assert "symlink" in str(error)
    assert tree(outside) == before


FLIPPER = """
import os, sys, time
data, outside, stop = sys.argv[1], sys.argv[2], sys.argv[3]
while not os.path.exists(stop):
    try:
        os.rename(data, data + ".real")
        os.symlink(outside, data)
        time.sleep(0.002)
        os.unlink(data)
        os.rename(data + ".real", data)
    except OSError:
        time.sleep(0.001)
"""


def test_a_racing_symlink_swap_never_leads_a_restore_outside(world):
    """Item 2, the race: nobody swaps dest/data for a symlink to outside in a loop while 25 restores run."""
    app, outside = world / "home" / "app", world / "outside"
    made = backup(app, world / "backups")
    before = tree(outside)
    stop = world / "home" / "stop"
    flipper = threading.Thread(target=as_nobody, args=(FLIPPER, app / "data", outside, stop))
    flipper.start()
    try:
        for _ in range(25):
            try:
                restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="database", force=True))
            except BackupError:
                pass  # refusing is fine; going outside is not
            assert tree(outside) == before
    finally:
        stop.touch()
        flipper.join()
    assert tree(outside) == before


def test_a_restore_never_hands_the_app_user_a_file_the_archive_kept_from_it(world):
    """Item 5, restore half: owners come from the destination (the app user here), but a member the archive
    records as root's and unreadable by others stays root's; the app user's own files stay the app user's."""
    app = world / "home" / "app"
    secret = app / "config" / "root.key"
    write(str(secret), "root only\n", 0o600)  # made by root inside the app user's tree
    made = backup(app, world / "backups")
    shutil.rmtree(str(app / "config"))
    as_nobody("import os, sys; os.mkdir(sys.argv[1])", app / "config")
    result = restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="config"))
    assert os.lstat(str(secret)).st_uid == 0 and os.lstat(str(app / "config" / "production.env")).st_uid == 65534
    assert any("config/root.key" in warning for warning in result["warnings"])
    with pytest.raises(subprocess.CalledProcessError):
        as_nobody("import sys; open(sys.argv[1]).read()", secret)
    assert not restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="config"))["changed"]


@pytest.mark.parametrize("step", ["staged", "journal", "unit-0"])
def test_a_staging_folder_the_app_user_replaced_is_refused(world, step):
    """The staging folder sits where the app user may rename entries (beside dest here; inside dest when dest is
    a mount point): renamed away and replaced by a folder of theirs, holding their own tree, at any step before
    a swap, it must never be swapped into dest."""
    app = world / "home" / "app"
    made = backup(app, world / "backups")
    before = tree(app / "data")
    replaced = []

    def pause(name):
        if name != step or replaced:
            return
        for parent in (app.parent, app):
            for entry in os.listdir(str(parent)):
                if entry.startswith(".reddit-restore-"):
                    as_nobody("import os, sys; os.rename(sys.argv[1], sys.argv[1] + '.moved'); os.mkdir(sys.argv[1], "
                              "0o700); os.makedirs(sys.argv[1] + '/tree/data'); "
                              "open(sys.argv[1] + '/tree/data/evil', 'w').write('planted')", parent / entry)
                    replaced.append(parent / entry)

    with pytest.raises(BackupError, match="staging folder .* was replaced while the restore ran"):
        restore(RestoreRequest(dest=str(app), archive=made["archive"], scope="database"), pause=pause)
    assert replaced and tree(app / "data") == before and not (app / "data" / "evil").exists()
