# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Swapping staged items into the destination so that a kill at any moment leaves each item old or new.

Each unit (a path in the destination) is swapped with one ``renameat2(RENAME_EXCHANGE)``: the new tree takes the
unit's name and the old one takes the staged name in the same step; the old one is then moved to its safety
copy. A journal written before the first swap records the inode of every staged unit, so the next run can tell,
for each unit left in a killed run's staging folder, whether it is the new tree (never swapped: discard it) or
the old one (swapped: move it to its safety copy). Nothing old is deleted unless safety copies are off.

A database is restored by swapping its whole folder: the new folder holds the restored database and hard links
to every other entry of the old one, but not the old database's -wal, -shm and -journal files, which leave with
the old folder. So SQLite can never see the restored database beside a stale WAL, not even for an instant.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil

from . import _fs
from ._errors import BackupError
from ._sqlite import SIDE_FILE_SUFFIXES

RENAME_EXCHANGE = 2
AT_FDCWD = -100
JOURNAL_NAME = "journal.json"
TREE_NAME = "tree"
_LIBC = None


def _libc():
    global _LIBC  # pylint: disable=global-statement
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _LIBC


def exchange(first: str, second: str) -> bool:
    """Atomically swap the names ``first`` and ``second``; False when this kernel or filesystem cannot."""
    function = getattr(_libc(), "renameat2", None)
    if function is None:
        return False
    result = function(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), second)


def sync_filesystem(path: str) -> None:
    """Make everything written on the filesystem holding ``path`` durable (syncfs; sync where it is missing)."""
    function = getattr(_libc(), "syncfs", None)
    if function is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if function(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def side_files(path: str) -> list:
    return [path + suffix for suffix in SIDE_FILE_SUFFIXES]


def link_others(source_dir: str, target_dir: str, skip: set) -> list:
    """Replicate every entry of ``source_dir`` except the names in ``skip`` into ``target_dir``: files as hard
    links (copies where a link is refused), symlinks and directories recreated. Returns the relative paths
    replicated, deepest last."""
    replicated = []
    for name in sorted(os.listdir(source_dir)):
        if name in skip:
            continue
        _replicate(os.path.join(source_dir, name), os.path.join(target_dir, name), name, replicated)
    return replicated


def _replicate(source: str, target: str, relative: str, replicated: list) -> None:
    info = os.lstat(source)
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        os.mkdir(target, info.st_mode & 0o7777)
        replicated.append(relative)
        for name in sorted(os.listdir(source)):
            _replicate(os.path.join(source, name), os.path.join(target, name), relative + "/" + name, replicated)
        shutil.copystat(source, target, follow_symlinks=False)
        _copy_owner(info, target)
        return
    elif os.path.isfile(source):
        try:
            os.link(source, target)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            shutil.copy2(source, target)
            _copy_owner(info, target)
    else:
        return  # sockets and FIFOs are not part of an application's data: they leave with the old folder
    replicated.append(relative)


def _copy_owner(info: os.stat_result, target: str) -> None:
    try:
        os.lchown(target, info.st_uid, info.st_gid)
    except PermissionError:
        pass


def drop_replicas(old_dir: str, live_dir: str, replicated: list) -> None:
    """Remove from the retired folder what is also in the live one (same inode, same symlink), so the safety copy
    holds only what the restore replaced. Nothing is lost: every name removed still lives in ``live_dir``."""
    for relative in reversed(replicated):
        old, live = os.path.join(old_dir, relative), os.path.join(live_dir, relative)
        try:
            old_info, live_info = os.lstat(old), os.lstat(live)
        except OSError:
            continue
        if os.path.islink(old):
            if os.path.islink(live) and os.readlink(old) == os.readlink(live):
                os.unlink(old)
        elif os.path.isdir(old):
            try:
                os.rmdir(old)
            except OSError:
                pass  # something the restore did not replicate is in there: keep it
        elif (old_info.st_dev, old_info.st_ino) == (live_info.st_dev, live_info.st_ino):
            os.unlink(old)


class Swapper:
    """Swaps the units of one restore and keeps the journal that lets a later run finish a killed one.

    A unit is ``{"path", "staged", "target", "exists", "safety", "replicated"}`` (absolute paths; ``safety``
    None when safety copies are off); an aside entry ``{"target", "safety"}`` is only moved out of the way.
    """

    def __init__(self, staging_dir: str, units: list, aside: list, safety_root=None) -> None:
        self.staging_dir = staging_dir
        self.units = units
        self.aside = aside
        self.safety_root = safety_root

    def write_journal(self) -> None:
        for unit in self.units:
            unit["inode"] = os.lstat(unit["staged"]).st_ino
        data = {"units": self.units, "aside": self.aside, "safety_root": self.safety_root}
        _fs.atomic_write_bytes(os.path.join(self.staging_dir, JOURNAL_NAME), json.dumps(data, indent=1).encode())

    def run(self, pause=None) -> None:
        """Swap every unit, then move the aside entries. ``pause(step)`` is a test hook between steps."""
        if self.safety_root and not os.path.isdir(self.safety_root):
            os.mkdir(self.safety_root, 0o700)
            _fs.fsync_dir(os.path.dirname(self.safety_root))
        for index, unit in enumerate(self.units):
            if pause:
                pause("unit-%d" % index)
            swap_unit(unit, self.staging_dir, index, pause)
        for entry in self.aside:
            if entry["safety"]:
                os.rename(entry["target"], entry["safety"])
            else:
                _fs.remove_quietly(entry["target"])
            _fs.fsync_dir(os.path.dirname(entry["target"]))


def swap_unit(unit: dict, staging_dir: str, index: int, pause=None) -> None:
    target, staged = unit["target"], unit["staged"]
    parent = os.path.dirname(target)
    if not unit["exists"]:
        os.rename(staged, target)
        _fs.fsync_dir(parent)
        return
    if exchange(staged, target):
        _fs.fsync_dir(parent)
        _fs.fsync_dir(os.path.dirname(staged))
        if pause:
            pause("exchanged-%d" % index)
        retire(unit, staged)
        return
    # No RENAME_EXCHANGE here (some network and FUSE filesystems): two renames; a kill between them leaves the
    # target missing for a moment, and the next run puts the old item back.
    old_place = unit["safety"] or os.path.join(staging_dir, "old-%d" % index)
    os.rename(target, old_place)
    if pause:
        pause("moved-%d" % index)
    os.rename(staged, target)
    _fs.fsync_dir(parent)
    retire(unit, old_place, moved=True)


def retire(unit: dict, old: str, moved: bool = False) -> None:
    """Put the replaced item at its safety copy path (or delete it when safety copies are off)."""
    if unit["safety"] is None:
        _fs.remove_quietly(old)
        return
    if not moved:
        os.rename(old, unit["safety"])
        _fs.fsync_dir(os.path.dirname(unit["safety"]))
    if unit.get("replicated"):
        drop_replicas(unit["safety"], unit["target"], unit["replicated"])


def recover(staging_dir: str) -> list:
    """Finish what a killed restore left in ``staging_dir`` (its journal says what), then remove the folder.
    Returns what was done, in words."""
    done = []
    try:
        with open(os.path.join(staging_dir, JOURNAL_NAME), encoding="utf-8") as handle:
            journal = json.load(handle)
    except (OSError, ValueError):
        journal = None  # killed before the first swap: everything in it is staged, nothing is old
    for index, unit in enumerate((journal or {}).get("units", [])):
        done += _recover_unit(unit, staging_dir, index)
    _fs.remove_quietly(staging_dir)
    return done


def _recover_unit(unit: dict, staging_dir: str, index: int) -> list:
    staged, target = unit["staged"], unit["target"]
    old_place = unit["safety"] or os.path.join(staging_dir, "old-%d" % index)
    try:
        staged_inode = os.lstat(staged).st_ino
    except FileNotFoundError:
        staged_inode = None
    if staged_inode is not None and staged_inode != unit["inode"]:
        retire(unit, staged)  # exchanged, killed before the old item reached its safety copy
        return ["%s: the replaced item was moved to its safety copy %s" % (target, unit["safety"] or "(deleted)")]
    if staged_inode is not None and unit["exists"] and not os.path.lexists(target) and os.path.lexists(old_place):
        os.rename(old_place, target)  # killed between the two renames of the fallback: put the old item back
        _fs.fsync_dir(os.path.dirname(target))
        return ["%s: put back as it was (the restore was killed while swapping it)" % target]
    if staged_inode is None and unit["safety"] is None and os.path.lexists(old_place):
        _fs.remove_quietly(old_place)
    if staged_inode is None and unit["safety"] and unit.get("replicated") and os.path.isdir(unit["safety"]):
        drop_replicas(unit["safety"], target, unit["replicated"])
    return []


def check_same_filesystem(staging_dir: str, targets: list) -> None:
    """Renames cannot cross filesystems: refuse before anything changes when a target's folder is elsewhere."""
    device = os.stat(staging_dir).st_dev
    for target in targets:
        parent = os.path.dirname(target)
        if os.stat(parent).st_dev != device:
            raise BackupError("%s is on another filesystem than the staging folder %s, so it cannot be swapped in "
                              "atomically; restore a narrower scope or restore that mount point as dest"
                              % (parent, staging_dir))
