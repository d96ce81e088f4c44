# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a restore swaps: the units (paths under the destination), the entries a full restore moves aside, the
safety copies, whether each unit already matches the backup (so a re-run changes nothing), and the last touches
to the staged tree before the swap (database folders completed with hard links, owners)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import swap as _swap
from ansible_collections.devops.reddit_backup.plugins.module_utils._confined import Anchor
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.staging import SAFE_MODE_BITS, chown_tree

# Never _fs.TEMP_PREFIX (".tmp-"): create and prune remove what starts with it, and must never take a restore's
# staging folder or safety copies (item 8 of issue 10).
STAGING_PREFIX = ".reddit-restore-"
SAFETY_INFIX = _swap.SAFETY_INFIX


@dataclass
class Target:
    """What a plan needs of its restore: the archive, where it goes, what of it, and how."""
    archive: str
    dest: str
    parent: str  # dest's parent, which the restore holds locked
    scope: object  # the restore's scope: name, paths, wants(path)
    keep: object  # paths kept in place (request.keep)
    safety_copy: bool
    stamp: str  # names the safety copies
    owner: tuple  # (uid, gid) the restored items get; (-1, -1) keeps the archive's
    root_only: set  # staged paths the archive keeps from everyone but root
    staged_beside_dest: bool  # staging sits beside dest (same filesystem), not inside it (a mount point)
    warnings: list  # the restore's warnings, which the plan adds to


class Plan:
    """The units a restore swaps (paths under dest), the entries a full restore moves aside, and their safety
    copies; ``prepare`` builds database folders and sets owners in the staging tree."""

    def __init__(self, target: Target, manifest: dict, tree, staging, live_hashes=None) -> None:
        self.target = target
        self.live_hashes = live_hashes  # LiveHashes of dest's databases, hashed while the archive was read
        self.dest = target.dest
        self.tree = tree
        self.staging = staging
        self.index = {member["path"]: member for member in manifest["members"]}
        self.database_paths = [database["path"] for database in manifest["databases"]]
        self.missing: list = []
        self.aside: list = []
        full = target.scope.name == "full"
        same_device = not os.path.isdir(self.dest) or target.staged_beside_dest
        self.safety_root = None
        if full and target.safety_copy:
            self.safety_root = (self.dest + SAFETY_INFIX + target.stamp) if same_device else \
                os.path.join(self.dest, SAFETY_INFIX.strip(".-") + "-" + target.stamp)
            self.safety_root = unused(self.safety_root)
        self.units = self._units(self._wanted(full), full)
        if full and os.path.isdir(self.dest):
            self.aside = self._aside()
        self._refuse_archive_inside()

    def _wanted(self, full: bool) -> list:
        keep = set(self.target.keep or ())
        if full:
            top = sorted({path.split("/")[0] for path in self.index})
            kept = [name for name in top if name in keep]
            if kept:
                self.target.warnings.append("kept in place (named in keep), not restored: %s" % ", ".join(kept))
            return [name for name in top if name not in keep]
        if self.target.scope.name == "database":
            if not self.database_paths:
                raise BackupError("%s holds no database, so scope database has nothing to restore"
                                  % self.target.archive)
            unplanned = set(self.database_paths) - set(self.target.scope.paths or self.database_paths)
            if unplanned:
                raise BackupError("the manifest of %s lists databases its catalog entry does not (%s): the archive "
                                  "or its .meta.json was altered; nothing was changed"
                                  % (self.target.archive, ", ".join(sorted(unplanned))))
            return list(self.database_paths)
        wanted = [path for path in self.target.scope.paths if path in self.index]
        self.missing = [path for path in self.target.scope.paths if path not in self.index]
        if self.missing and self.target.scope.name == "paths":
            raise BackupError("%s is not in %s; list the archive's paths with backup_verify or choose another "
                              "backup (nothing was changed)" % (", ".join(self.missing), self.target.archive))
        if not wanted:
            raise BackupError("%s holds nothing of scope %s (%s); nothing was changed"
                              % (self.target.archive, self.target.scope.name, ", ".join(self.target.scope.paths)))
        return wanted

    def _units(self, wanted: list, full: bool) -> list:
        if not os.path.isdir(self.dest):
            return [self._unit("", "replace")]
        units = {}
        for path in wanted:
            folder = path.rpartition("/")[0]
            kind = "replace"
            if path in self.database_paths:
                if not folder:
                    self._refuse_root_database(path)
                elif not full:
                    kind, path = "databases", folder  # the folder is swapped: the old -wal/-shm leave with it
            promoted = self._promote(path)
            if promoted != path:
                kind, path = "replace", promoted
            elif kind == "databases" and not real_dir(os.path.join(self.dest, path)):
                kind = "replace"
            if path in units and units[path]["kind"] != kind:
                kind = "replace"
            units[path] = self._unit(path, kind)
        # A unit beneath another replace unit is restored by it.
        kept = [unit for path, unit in units.items()
                if not any(under(path, other) and other != path for other, o in units.items()
                           if o["kind"] == "replace")]
        return sorted(kept, key=lambda unit: unit["path"])

    def _has_side_files(self, path: str) -> bool:
        return any(os.path.lexists(side) for side in _swap.side_files(os.path.join(self.dest, path)))

    def _refuse_root_database(self, path: str) -> None:
        if self._has_side_files(path):
            raise BackupError("database %s lies directly in %s beside its -wal/-shm/-journal files, so it cannot "
                              "be swapped in atomically; stop the application (SQLite removes them on a clean "
                              "close) and run the restore again" % (path, self.dest))

    def _promote(self, path: str) -> str:
        """The topmost folder of ``path`` that is missing in dest, or is not a real directory there (a symlink
        would lead the swap outside dest); ``path`` itself when all its parents are real directories."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            candidate = os.path.join(self.dest, *parts[:depth])
            if not real_dir(candidate):
                return "/".join(parts[:depth])
        return path

    def _unit(self, path: str, kind: str) -> dict:
        target = os.path.join(self.dest, path) if path else self.dest
        exists = os.path.lexists(target)
        safety = None
        if exists and self.target.safety_copy:
            safety = os.path.join(self.safety_root, path) if self.safety_root else unused(
                target + SAFETY_INFIX + self.target.stamp)
        return {"path": path, "kind": kind, "target": target, "exists": exists, "safety": safety,
                "staged": os.path.join(self.tree, path) if (self.tree and path) else self.tree,
                "databases": [p for p in self.database_paths if kind == "databases" and under(p, path)]}

    def _aside(self) -> list:
        restored = {unit["path"].split("/")[0] for unit in self.units}
        keep = set(self.target.keep or ())
        entries = []
        for name in sorted(os.listdir(self.dest)):
            target = os.path.join(self.dest, name)
            if name in restored or name in keep or name.startswith(STAGING_PREFIX) or \
                    (self.safety_root and target == self.safety_root):
                continue
            entries.append({"target": target, "safety": os.path.join(self.safety_root, name)
                            if self.safety_root else None})
        return entries

    def _refuse_archive_inside(self) -> None:
        archive = os.path.realpath(self.target.archive)
        for target in [unit["target"] for unit in self.units if unit["exists"]] + [e["target"] for e in self.aside]:
            if archive.startswith(target.rstrip("/") + "/"):
                raise BackupError("the archive %s lies inside %s, which this restore would replace; restore from a "
                                  "copy elsewhere, or add its top folder to keep (nothing was changed)"
                                  % (archive, target))

    def safety_copies(self, pending: list) -> list:
        """Where the replaced items go: one folder for a full restore, one path per item otherwise."""
        if self.safety_root:
            return [self.safety_root] if self.aside or any(unit["exists"] for unit in pending) else []
        return [unit["safety"] for unit in pending if unit["safety"]]

    def is_current(self, unit: dict) -> bool:
        """True when dest already holds exactly what this unit would put there (so a re-run changes nothing)."""
        if not unit["exists"]:
            return False
        try:
            if unit["kind"] == "databases":
                return all(self._database_current(path) for path in unit["databases"])
            return self._tree_current(unit)
        except OSError:
            return False

    def _database_current(self, path: str) -> bool:
        target = os.path.join(self.dest, path)
        sha256 = self.live_hashes.sha256 if self.live_hashes is not None else _fs.sha256_file
        if not self._file_current(target, self.index[path], sha256):
            return False
        wal, _shm, journal = _swap.side_files(target)
        return not os.path.lexists(journal) and (not os.path.lexists(wal) or os.path.getsize(wal) == 0)

    def _file_current(self, target: str, record: dict, sha256=_fs.sha256_file) -> bool:
        info = os.lstat(target)
        if not os.path.isfile(target) or os.path.islink(target) or info.st_size != record["size"]:
            return False
        if info.st_mode & 0o7777 != int(record["mode"], 8) & SAFE_MODE_BITS or not self._owner_current(info):
            return False
        return sha256(target) == record["sha256"]

    def _owner_current(self, info: os.stat_result) -> bool:
        uid, gid = self.target.owner
        return uid in (-1, info.st_uid) and gid in (-1, info.st_gid)

    def _tree_current(self, unit: dict) -> bool:
        prefix = unit["path"]
        expected = {path: record for path, record in self.index.items()
                    if under(path, prefix) and self.target.scope.wants(path)}
        found = {prefix: unit["target"]}
        if os.path.isdir(unit["target"]) and not os.path.islink(unit["target"]):
            for dirpath, dirnames, filenames in os.walk(unit["target"]):
                for name in dirnames + filenames:
                    full = os.path.join(dirpath, name)
                    found[prefix + "/" + os.path.relpath(full, unit["target"])] = full
        if set(found) != set(expected):
            return False
        for path, record in expected.items():
            target = found[path]
            if record["type"] == "file":
                if not self._file_current(target, record):
                    return False
            elif record["type"] == "symlink":
                if not os.path.islink(target) or os.readlink(target) != record.get("target"):
                    return False
            else:
                info = os.lstat(target)
                if os.path.islink(target) or not os.path.isdir(target) or not self._owner_current(info) or \
                        info.st_mode & 0o7777 != int(record["mode"], 8) & SAFE_MODE_BITS:
                    return False
        return True

    def prepare(self, pending: list) -> None:
        """Complete the staged units: database folders get the other entries of the live folder (hard links)
        and its mode; everything staged gets its owner."""
        for unit in pending:
            if unit["kind"] == "databases":
                self._prepare_databases(unit)
            else:
                uid, gid = self._owner_for(unit["target"])
                chown_tree(unit["staged"], uid, gid)
                self._keep_root_only(unit["path"], uid)
                if unit["path"] == "":
                    os.chmod(unit["staged"], 0o755)

    def _prepare_databases(self, unit: dict) -> None:
        live = unit["target"]
        names = {path.rpartition("/")[2] for path in unit["databases"]}
        skip = {name + suffix for name in names for suffix in ("",) + _swap.SIDE_FILE_SUFFIXES}
        skip |= set(os.listdir(unit["staged"]))
        anchor = Anchor(self.target.parent)
        unit["replicated"] = _swap.link_others(live, unit["staged"], skip, anchor)
        info = anchor.lstat(live)  # link_others opened it as a real folder, without following a symlink
        os.chmod(unit["staged"], info.st_mode & 0o7777)
        os.utime(unit["staged"], ns=(info.st_atime_ns, info.st_mtime_ns))
        for path in unit["databases"]:
            staged = os.path.join(self.tree, path)
            uid, gid = self._owner_for(os.path.join(self.dest, path))
            chown_tree(staged, uid, gid)
            self._keep_root_only(path, uid)
        if os.geteuid() == 0:
            os.lchown(unit["staged"], info.st_uid, info.st_gid)

    def _keep_root_only(self, prefix: str, uid: int) -> None:
        """What the archive records as root's and unreadable by others stays root's when the owner comes from the
        destination: a restore never hands the app user a file the archive kept from it."""
        if uid in (-1, 0) or self.target.owner != (-1, -1):
            return
        kept = sorted(path for path in self.target.root_only if under(path, prefix))
        for path in kept:
            os.lchown(os.path.join(self.tree, path), 0, 0)
        if kept:
            self.target.warnings.append("kept owned by root, as the archive records them (no read access for others): "
                                        "%s" % ", ".join(kept[:10]) + (" and %d more" % (len(kept) - 10)
                                                                       if len(kept) > 10 else ""))

    def _owner_for(self, target: str) -> tuple:
        """The owner given, else (as root) the owner of what is replaced or of its nearest existing folder."""
        uid, gid = self.target.owner
        if (uid, gid) != (-1, -1) or os.geteuid() != 0:
            return uid, gid
        path = target
        while not os.path.lexists(path):
            path = os.path.dirname(path)
        info = os.lstat(path)
        return info.st_uid, info.st_gid


def real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def under(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def unused(path: str) -> str:
    candidate, counter = path, 1
    while os.path.lexists(candidate):
        counter += 1
        candidate = "%s-%d" % (path, counter)
    return candidate
