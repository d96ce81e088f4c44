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
import stat

from ansible_collections.devops.reddit_backup.plugins.module_utils._confined import DIR_FLAGS, Anchor, PlantedPath
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.sqlite import SIDE_FILE_SUFFIXES
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.tarsafe import check_path

RENAME_EXCHANGE = 2
JOURNAL_NAME = "journal.json"
JOURNAL_FORMAT = "devops.reddit_backup restore journal 2"
MARKER_NAME = "made-by-reddit-backup.json"
MARKER_FORMAT = "devops.reddit_backup restore staging 1"
TREE_NAME = "tree"
SAFETY_INFIX = ".pre-restore-"
OWNED_FILE_LIMIT = 64 << 20  # a journal lists every unit and replicated entry: generous, but never unbounded
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_LIBC = None


def _libc():
    global _LIBC  # pylint: disable=global-statement
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _LIBC


def exchange(first: tuple, second: tuple) -> bool:
    """Atomically swap the names ``first`` and ``second`` (each a folder descriptor and a name in it); False when
    this kernel or filesystem cannot."""
    function = getattr(_libc(), "renameat2", None)
    if function is None:
        return False
    result = function(first[0], os.fsencode(first[1]), second[0], os.fsencode(second[1]), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), second[1])


def sync_filesystem(path: str) -> None:
    """Make everything written on the filesystem holding ``path`` durable (syncfs; sync where it is missing)."""
    function = getattr(_libc(), "syncfs", None)
    if function is None:
        os.sync()
        return
    fd = os.open(path, DIR_FLAGS)
    try:
        if function(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def side_files(path: str) -> list:
    return [path + suffix for suffix in SIDE_FILE_SUFFIXES]


def link_others(source_dir: str, target_dir: str, skip: set, anchor: Anchor) -> list:
    """Replicate every entry of ``source_dir`` except the names in ``skip`` into ``target_dir``: files as hard
    links (copies where a link is refused), symlinks and directories recreated, every folder opened without
    following a symlink. Returns the relative paths replicated, deepest last."""
    replicated: list = []
    source_fd = anchor.open_dir(source_dir)
    try:
        target_fd = anchor.open_dir(target_dir)
        try:
            for name in sorted(os.listdir(source_fd)):
                if name not in skip:
                    _replicate(source_fd, target_fd, name, name, replicated)
        finally:
            os.close(target_fd)
    finally:
        os.close(source_fd)
    return replicated


def _replicate(source_fd: int, target_fd: int, name: str, relative: str, replicated: list) -> None:
    info = os.stat(name, dir_fd=source_fd, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=source_fd), name, dir_fd=target_fd)
    elif stat.S_ISDIR(info.st_mode):
        os.mkdir(name, 0o700, dir_fd=target_fd)
        replicated.append(relative)
        child_source = os.open(name, DIR_FLAGS, dir_fd=source_fd)
        child_target = os.open(name, DIR_FLAGS, dir_fd=target_fd)
        try:
            for child in sorted(os.listdir(child_source)):
                _replicate(child_source, child_target, child, relative + "/" + child, replicated)
            _copy_stat(info, child_target)
        finally:
            os.close(child_source)
            os.close(child_target)
        return
    elif stat.S_ISREG(info.st_mode):
        try:
            os.link(name, name, src_dir_fd=source_fd, dst_dir_fd=target_fd, follow_symlinks=False)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            _copy_file_at(source_fd, target_fd, name, info)
    else:
        return  # sockets and FIFOs are not part of an application's data: they leave with the old folder
    replicated.append(relative)


def _copy_file_at(source_fd: int, target_fd: int, name: str, info: os.stat_result) -> None:
    """Copy the regular file ``name`` (the very inode ``info`` describes) with its mode, times and owner."""
    source = os.open(name, _READ_FLAGS, dir_fd=source_fd)
    try:
        opened = os.fstat(source)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise PlantedPath("refusing to copy %s: it changed while the restore read it" % name)
        target = os.open(name, _WRITE_FLAGS, 0o600, dir_fd=target_fd)
        try:
            for chunk in iter(lambda: os.read(source, 1 << 20), b""):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(target, view):]
            _copy_stat(info, target)
        finally:
            os.close(target)
    finally:
        os.close(source)


def _copy_stat(info: os.stat_result, fd: int) -> None:
    """Owner (as root), then mode and times, of ``info`` onto the open ``fd``."""
    try:
        os.fchown(fd, info.st_uid, info.st_gid)
    except PermissionError:
        pass
    os.fchmod(fd, info.st_mode & 0o7777)
    os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))


def drop_replicas(old_dir: str, live_dir: str, replicated: list, anchor: Anchor) -> None:
    """Remove from the retired folder what is also in the live one (same inode, same symlink), so the safety copy
    holds only what the restore replaced. Nothing is lost: every name removed still lives in ``live_dir``."""
    for relative in reversed(replicated):
        old, live = os.path.join(old_dir, relative), os.path.join(live_dir, relative)
        try:
            old_info, live_info = anchor.lstat(old), anchor.lstat(live)
            if old_info is None or live_info is None:
                continue
            with anchor.parent(old) as (old_fd, name), anchor.parent(live) as (live_fd, live_name):
                _drop_replica(old_fd, name, old_info, live_fd, live_name, live_info)
        except (OSError, PlantedPath):
            continue  # something changed or was planted: keep the old entry, nothing is lost


def _drop_replica(old_fd: int, name: str, old_info, live_fd: int, live_name: str, live_info) -> None:
    if stat.S_ISLNK(old_info.st_mode):
        if stat.S_ISLNK(live_info.st_mode) and \
                os.readlink(name, dir_fd=old_fd) == os.readlink(live_name, dir_fd=live_fd):
            os.unlink(name, dir_fd=old_fd)
    elif stat.S_ISDIR(old_info.st_mode):
        os.rmdir(name, dir_fd=old_fd)  # fails, keeping it, when something the restore did not replicate is inside
    elif (old_info.st_dev, old_info.st_ino) == (live_info.st_dev, live_info.st_ino):
        os.unlink(name, dir_fd=old_fd)


def write_marker(staging_dir: str, dest: str, anchor: Anchor) -> tuple:
    """Mark a new staging folder as this tool's: the marker names the folder's own device and inode, which no
    other folder has, and only root can write into the root-owned 0700 folder. Returns that (device, inode)."""
    fd = open_staging(staging_dir, anchor)
    try:
        info = os.fstat(fd)
        _write_at(fd, MARKER_NAME, {"format": MARKER_FORMAT, "folder": [info.st_dev, info.st_ino], "dest": dest})
    finally:
        os.close(fd)
    return info.st_dev, info.st_ino


class StagingReplaced(PlantedPath):
    """The staging folder at its name is not the one this restore made: nothing there is ours to recover."""


def open_staging(staging_dir: str, anchor: Anchor, identity: tuple = None) -> int:
    """The staging folder's descriptor, refused unless it is a folder of this user, mode 0700, and (once known)
    the very folder this restore made: the app user may rename it and put another folder in its place."""
    fd = anchor.open_dir(staging_dir)
    info = os.fstat(fd)
    problem = None
    if info.st_uid != os.geteuid() or info.st_mode & 0o7777 != 0o700:
        problem = "it is owned by uid %d with mode %04o" % (info.st_uid, info.st_mode & 0o7777)
    elif identity is not None and (info.st_dev, info.st_ino) != tuple(identity):
        problem = "it is another folder than the one this restore made"
    if problem:
        os.close(fd)
        raise StagingReplaced("the restore's staging folder %s was replaced while the restore ran (%s); nothing "
                              "more was swapped: check who did, and run the restore again" % (staging_dir, problem))
    return fd


def _write_at(dir_fd: int, name: str, data: dict) -> None:
    """Write ``data`` as JSON to ``name`` in the folder ``dir_fd`` at once (temp file, fsync, rename)."""
    temp = ".%s.new" % name
    try:
        os.unlink(temp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(temp, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(json.dumps(data, indent=1).encode())
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


class Swapper:
    """Swaps the units of one restore and keeps the journal that lets a later run finish a killed one.

    A unit is ``{"path", "staged", "target", "exists", "safety", "replicated"}`` (absolute paths; ``safety``
    None when safety copies are off); an aside entry ``{"target", "safety"}`` is only moved out of the way.
    Every step goes through ``anchor`` (dest's parent): no symlink below it is ever followed.
    """

    def __init__(self, staging_dir: str, units: list, aside: list, safety_root=None, dest: str = None,
                 staging_id: tuple = None) -> None:
        self.staging_dir = staging_dir
        self.staging_id = staging_id
        self.units = units
        self.aside = aside
        self.safety_root = safety_root
        self.dest = dest
        self.anchor = Anchor(os.path.dirname(dest))

    def write_journal(self) -> None:
        """The journal names only paths relative to dest (units), to the staging folder (staged trees) and to
        dest's parent (safety copies), and the staging folder's own device and inode."""
        for unit in self.units:
            unit["inode"] = self.anchor.lstat(unit["staged"]).st_ino
        relative = self._relative
        data = {"format": JOURNAL_FORMAT, "dest": self.dest, "safety_root": relative(self.safety_root),
                "units": [{"path": unit["path"], "exists": unit["exists"], "inode": unit["inode"],
                           "safety": relative(unit["safety"]), "replicated": unit.get("replicated") or []}
                          for unit in self.units],
                "aside": [{"name": os.path.basename(entry["target"]), "safety": relative(entry["safety"])}
                          for entry in self.aside]}
        fd = open_staging(self.staging_dir, self.anchor, self.staging_id)
        try:
            info = os.fstat(fd)
            _write_at(fd, JOURNAL_NAME, dict(data, folder=[info.st_dev, info.st_ino]))
        finally:
            os.close(fd)

    def _relative(self, path):
        return None if path is None else "/".join(self.anchor.parts(path))

    def run(self, pause=None) -> None:
        """Swap every unit, then move the aside entries. ``pause(step)`` is a test hook between steps."""
        anchor = self.anchor
        if self.safety_root and not anchor.is_dir(self.safety_root):
            anchor.mkdir(self.safety_root, 0o700)
            anchor.fsync_dir(os.path.dirname(self.safety_root))
        for index, unit in enumerate(self.units):
            if pause:
                pause("unit-%d" % index)
            os.close(open_staging(self.staging_dir, anchor, self.staging_id))  # still ours: checked before each step
            swap_unit(unit, self.staging_dir, index, anchor, pause)
        for entry in self.aside:
            if entry["safety"]:
                anchor.rename(entry["target"], entry["safety"])
            else:
                anchor.remove(entry["target"])
            anchor.fsync_dir(os.path.dirname(entry["target"]))


def swap_unit(unit: dict, staging_dir: str, index: int, anchor: Anchor, pause=None) -> None:
    target, staged = unit["target"], unit["staged"]
    parent = os.path.dirname(target)
    if not unit["exists"]:
        anchor.rename(staged, target)
        anchor.fsync_dir(parent)
        return
    with anchor.parent(staged) as first, anchor.parent(target) as second:
        exchanged = exchange(first, second)
    if exchanged:
        anchor.fsync_dir(parent)
        anchor.fsync_dir(os.path.dirname(staged))
        if pause:
            pause("exchanged-%d" % index)
        retire(unit, staged, anchor)
        return
    # No RENAME_EXCHANGE here (some network and FUSE filesystems): two renames; a kill between them leaves the
    # target missing for a moment, and the next run puts the old item back.
    old_place = unit["safety"] or os.path.join(staging_dir, "old-%d" % index)
    anchor.rename(target, old_place)
    if pause:
        pause("moved-%d" % index)
    anchor.rename(staged, target)
    anchor.fsync_dir(parent)
    retire(unit, old_place, anchor, moved=True)


def retire(unit: dict, old: str, anchor: Anchor, moved: bool = False) -> None:
    """Put the replaced item at its safety copy path (or delete it when safety copies are off)."""
    if unit["safety"] is None:
        anchor.remove(old)
        return
    if not moved:
        anchor.rename(old, unit["safety"])
        anchor.fsync_dir(os.path.dirname(unit["safety"]))
    if unit.get("replicated"):
        drop_replicas(unit["safety"], unit["target"], unit["replicated"], anchor)


def recover(staging_dir: str, dest: str) -> list:
    """Finish what a killed restore into ``dest`` left in ``staging_dir`` (its journal says what), then remove the
    folder. Only a folder this tool made is touched (see ``trusted_journal``). Returns what was done, in words."""
    anchor = Anchor(os.path.dirname(dest))
    journal = trusted_journal(staging_dir, dest)
    done = []
    for index, unit in enumerate(journal_units(journal, staging_dir, dest)):
        done += _recover_unit(unit, staging_dir, index, anchor)
    anchor.remove(staging_dir)
    return done


def _refuse(staging_dir: str, why: str) -> PlantedPath:
    return PlantedPath("refusing to recover %s as a killed restore's staging folder: %s, so this tool did not make "
                       "it (or it was altered). Nothing in it or named by it was touched; inspect it, remove it by "
                       "hand, and run the restore again" % (staging_dir, why))


def trusted_journal(staging_dir: str, dest: str):
    """The journal of ``staging_dir`` (None when the restore was killed before writing it), once the folder is
    proved ours: a real folder (not a symlink) owned by the uid running now with mode 0700, opened with
    O_NOFOLLOW as that same inode, holding a marker and journal (regular files owned by this uid) that name the
    folder's own device and inode and this dest."""
    try:
        info = os.lstat(staging_dir)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise _refuse(staging_dir, "it is a symlink or not a directory")
    if info.st_uid != os.geteuid():
        raise _refuse(staging_dir, "it is owned by uid %d, not by uid %d that restores run as"
                      % (info.st_uid, os.geteuid()))
    if info.st_mode & 0o7777 != 0o700:
        raise _refuse(staging_dir, "its mode is %04o, not 0700" % (info.st_mode & 0o7777))
    try:
        fd = os.open(staging_dir, DIR_FLAGS)
    except OSError as error:
        raise _refuse(staging_dir, "it cannot be opened as a folder (%s)" % error.strerror) from None
    try:
        opened = os.fstat(fd)
        folder = [opened.st_dev, opened.st_ino]
        if folder != [info.st_dev, info.st_ino]:
            raise _refuse(staging_dir, "it changed while it was checked")
        marker = _read_owned(fd, MARKER_NAME, staging_dir)
        if marker != {"format": MARKER_FORMAT, "folder": folder, "dest": dest}:
            raise _refuse(staging_dir, "its marker %s is missing or names another folder or destination"
                          % MARKER_NAME)
        journal = _read_owned(fd, JOURNAL_NAME, staging_dir)
    finally:
        os.close(fd)
    if journal is not None and (not isinstance(journal, dict) or journal.get("format") != JOURNAL_FORMAT or
                                journal.get("folder") != folder or journal.get("dest") != dest):
        raise _refuse(staging_dir, "its journal names another folder or destination")
    return journal


def _read_owned(dir_fd: int, name: str, staging_dir: str):
    """The JSON in regular file ``name`` of the folder ``dir_fd``, owned by this uid; None when it is missing."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _refuse(staging_dir, "its %s cannot be opened as a plain file (%s)" % (name, error.strerror)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_size > OWNED_FILE_LIMIT:
            raise _refuse(staging_dir, "its %s is not a regular file of uid %d under %d bytes"
                          % (name, os.geteuid(), OWNED_FILE_LIMIT))
        data = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
    finally:
        os.close(fd)
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        raise _refuse(staging_dir, "its %s is not JSON (it is written whole, so it was altered)" % name) from None


def journal_units(journal, staging_dir: str, dest: str) -> list:
    """The units of a trusted journal with absolute paths, each confined: targets below dest, staged trees below
    the staging folder, safety copies below dest or beside it (``<dest>.pre-restore-*``)."""
    units = []
    tree = os.path.join(staging_dir, TREE_NAME)
    for entry in (journal or {}).get("units", []):
        path = _confined(entry.get("path"), staging_dir, allow_empty=True)
        units.append({"path": path, "target": os.path.join(dest, path) if path else dest,
                      "staged": os.path.join(tree, path) if path else tree, "exists": bool(entry.get("exists")),
                      "inode": entry.get("inode"), "safety": _safety_path(entry.get("safety"), staging_dir, dest),
                      "replicated": [_confined(item, staging_dir) for item in entry.get("replicated") or []]})
    return units


def _confined(path, staging_dir: str, allow_empty: bool = False) -> str:
    if not isinstance(path, str) or (path == "" and not allow_empty) or (path and check_path(path)):
        raise _refuse(staging_dir, "its journal names %r, which is not a plain relative path" % (path,))
    return path


def _safety_path(relative, staging_dir: str, dest: str):
    if relative is None:
        return None
    relative = _confined(relative, staging_dir)
    top, name = relative.split("/")[0], os.path.basename(dest)
    if top != name and not top.startswith(name + SAFETY_INFIX):
        raise _refuse(staging_dir, "its journal puts a safety copy at %s, outside %s and its safety copies"
                      % (relative, dest))
    return os.path.join(os.path.dirname(dest), relative)


def _recover_unit(unit: dict, staging_dir: str, index: int, anchor: Anchor) -> list:
    staged, target = unit["staged"], unit["target"]
    old_place = unit["safety"] or os.path.join(staging_dir, "old-%d" % index)
    info = anchor.lstat(staged)
    staged_inode = info.st_ino if info is not None else None
    if staged_inode is not None and staged_inode != unit["inode"]:
        retire(unit, staged, anchor)  # exchanged, killed before the old item reached its safety copy
        return ["%s: the replaced item was moved to its safety copy %s" % (target, unit["safety"] or "(deleted)")]
    if staged_inode is not None and unit["exists"] and not anchor.lexists(target) and anchor.lexists(old_place):
        anchor.rename(old_place, target)  # killed between the two renames of the fallback: put the old item back
        anchor.fsync_dir(os.path.dirname(target))
        return ["%s: put back as it was (the restore was killed while swapping it)" % target]
    if staged_inode is None and unit["safety"] is None and anchor.lexists(old_place):
        anchor.remove(old_place)
    if staged_inode is None and unit["safety"] and unit.get("replicated") and anchor.is_dir(unit["safety"]):
        drop_replicas(unit["safety"], target, unit["replicated"], anchor)
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
