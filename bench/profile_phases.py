"""The phases of one family's engine call, each alone, the fastest of RUNS runs: the profile `bench/run.py` records
beside each family's table (bench/_profile.py reads the JSON this prints on its last line). Run by run.py, not by hand.

    /usr/bin/python3 bench/profile_phases.py {backup,incremental} APP_ROOT DATABASE SCRATCH --collections DIR
    /usr/bin/python3 bench/profile_phases.py verify ARCHIVE DATABASE_COPY SCRATCH --collections DIR
    /usr/bin/python3 bench/profile_phases.py restore ARCHIVE DATABASE_COPY APP_ROOT DATABASE SCRATCH --collections DIR

DATABASE is relative to APP_ROOT. The phase functions are profile_backup.py's and profile_engine.py's; their table
rows go to stderr. Then one engine call as the family's engine row makes it, timed stage by stage (_timeline.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timeline import Timeline  # noqa: E402
from profile_backup import COLLECTIONS, TARGET_PYTHON, measure  # noqa: E402
from profile_engine import _fs, _pages, _read_pass, _sqlite, _syncfs, _write_copy  # noqa: E402
from profile_engine import restore_family  # noqa: E402
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import create as _create  # noqa: E402
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import restore as _restore  # noqa: E402
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify import verify as _verify  # noqa: E402

RUNS = 3  # a single run of a phase can be lengthened by a burst of load from elsewhere: its fastest run counts


def _zstd(arguments: list, source: str):
    return lambda: subprocess.run(["zstd", "-q"] + arguments + ["-c", source], stdout=subprocess.DEVNULL, check=True)


def backup_phases(app_root: str, database: str, scratch: str) -> list:
    """What a full backup does to its database, each alone: the snapshot (the hand pipeline's `.backup` too), its
    compression (the hand pipeline's zstd, of the snapshot alone), the full integrity check and the page hashes."""
    database = os.path.join(app_root, database)
    snapshot = os.path.join(scratch, "snapshot.db")
    phases = [measure("snapshot", lambda: _sqlite.snapshot(database, snapshot), RUNS),
              measure("zstd -3 -T0 of the snapshot", _zstd(["-3", "-T0"], snapshot), RUNS),
              measure("integrity_check", lambda: _sqlite.check_integrity(snapshot, "full"), RUNS)]
    page_size = _sqlite.database_facts(snapshot)["page_size"]
    phases.append(measure("page hashes + sha256", lambda: _pages.page_hashes(snapshot, page_size), RUNS))
    return phases


def incremental_phases(app_root: str, database: str, scratch: str) -> list:
    """What an incremental does to the whole database whatever changed: the snapshot, the page hashes that find
    the changed pages, the quick_check a delta gets."""
    database = os.path.join(app_root, database)
    snapshot = os.path.join(scratch, "snapshot.db")
    phases = [measure("snapshot", lambda: _sqlite.snapshot(database, snapshot), RUNS)]
    page_size = _sqlite.database_facts(snapshot)["page_size"]
    phases.append(measure("page hashes + sha256", lambda: _pages.page_hashes(snapshot, page_size), RUNS))
    phases.append(measure("quick_check", lambda: _sqlite.check_integrity(snapshot, "quick"), RUNS))
    return phases


def verify_phases(archive: str, database_copy: str, scratch: str) -> list:
    """The baseline's two parts and the engine's pass over the archive (decompress, tar walk, sha256)."""
    return [measure("zstd -dc > /dev/null", _zstd(["-d"], archive), RUNS),
            measure("reader pass + sha256", lambda: _read_pass(archive, True), RUNS),
            measure("integrity_check", lambda: _sqlite.check_integrity(database_copy, "full"), RUNS)]


def restore_phases(archive: str, database_copy: str, _app_root: str, _database: str, scratch: str) -> list:
    """The engine's pass over the archive, writing the database and its syncfs, the quick_check of the copy, and
    the sha256 of a database file (the restore's is-the-destination-current check reads the damaged one)."""
    copy = os.path.join(scratch, "copy.db")

    def write_then_sync():
        _write_copy(database_copy, copy)
        _syncfs(scratch)

    return [measure("reader pass + sha256", lambda: _read_pass(archive, True), RUNS),
            measure("write + syncfs", write_then_sync, RUNS),
            measure("quick_check", lambda: _sqlite.check_integrity(copy, "quick"), RUNS),
            measure("sha256 of a database file", lambda: _fs.sha256_file(copy), RUNS)]


PHASES = {"backup": backup_phases, "incremental": incremental_phases, "verify": verify_phases,
          "restore": restore_phases}

# ---------------------------------------------------------------------------------------------------------------
# One engine call as the family's engine row makes it, stage by stage: the engine's functions each stage is.

_BACKUP_REST = "the rest: selection, catalog, the archive's fsync, its sidecars, the commit"
_SNAPSHOT = (_create._ArchiveJob, "_snapshot_databases", "snapshot (SQLite's backup API; one thread)")
_CHECK_END = (_create._IntegrityChecks, "wait", "the integrity check's end, after the archive's last byte")
_ZSTD_END = (_create.CompressedWriter, "close", "zstd's last blocks")
_REMOVE_SNAPSHOT = (_create._ArchiveJob, "remove_temps", "removing the snapshot")
BACKUP_STAGES = [(_create, "create_backup", _BACKUP_REST), _SNAPSHOT,
                 (_create._ArchiveJob, "_write_tar", "archive: tar, page hashes and sha256 into zstd, the full "
                                                     "integrity check beside them"),
                 _CHECK_END, _ZSTD_END, _REMOVE_SNAPSHOT]
INCREMENTAL_STAGES = [(_create, "create_backup", _BACKUP_REST), _SNAPSHOT,
                      (_create._ArchiveJob, "_write_tar", "page hashes and the page delta into zstd, the "
                                                          "quick_check beside them"),
                      _CHECK_END, _ZSTD_END, _REMOVE_SNAPSHOT]
VERIFY_STAGES = [(_verify, "verify_archive", "the rest: catalog, sidecars, the verdict"),
                 (_verify, "run_pass", "reader pass: decompress, tar walk, sha256 of every member, the database "
                                       "written to a private file"),
                 (_verify.Verifier, "conclude", "the checks: integrity_check of that file"),
                 (shutil, "rmtree", "removing the private file")]
RESTORE_STAGES = [(_restore, "restore", "the rest: catalog, lock, plan, result"),
                  (_restore.RestoreJob, "_read", "reader pass: decompress, tar walk, sha256, the database staged "
                                                 "with its flushes"),
                  (_restore.Verifier, "conclude", "the checks: quick_check of the staged database"),
                  (_restore.Stager, "close", "the staged files' last flushes"),
                  (_restore.Plan, "prepare", "safety copies of what is replaced"),
                  (_restore._swap, "sync_filesystem", "syncfs before the swap"),
                  (_restore._swap.Swapper, "run", "the swap"),
                  (_restore._swap, "recover", "removing the staging folder"),
                  (shutil, "rmtree", "removing the verification copies")]


def timed_call(stages: list, call, done) -> list:
    """The stages of ``call()``; ``done(result)`` says whether it did the row's work (else the profile stops)."""
    timeline = Timeline()
    for owner, name, label in stages:
        timeline.wrap(owner, name, label)
    try:
        result = call()
    finally:
        timeline.unwrap()
    if not done(result):
        raise SystemExit("profile: the timed engine call did not do the row's work: %s" % json.dumps(result)[:2000])
    return timeline.stages()


def backup_timeline(app_root: str, _database: str, scratch: str, kind: str = "full") -> list:
    """A full backup of the app into an empty folder (as the engine row), or an incremental on a full made first,
    untimed (with no rows changed since: the same snapshot, hashes and check as the row, a smaller delta)."""
    backups = os.path.join(scratch, "timeline-backups")
    if kind == "incremental":
        _create.create_backup(_create.BackupRequest(app_root=app_root, backup_dir=backups))
    stages = timed_call(INCREMENTAL_STAGES if kind == "incremental" else BACKUP_STAGES, lambda: _create.create_backup(
        _create.BackupRequest(app_root=app_root, backup_dir=backups, type=kind)),
        lambda result: result["type"] == kind and result["databases"])
    shutil.rmtree(backups)
    return stages


def verify_timeline(archive: str, _database_copy: str, _scratch: str) -> list:
    return timed_call(VERIFY_STAGES, lambda: _verify.verify_archive(archive),
                      lambda result: result["status"] == "valid")


def restore_timeline(archive: str, _database_copy: str, app_root: str, database: str, scratch: str) -> list:
    """The database restored into a copy of the app whose database has one damaged page (the engine row's)."""
    dest = os.path.join(scratch, "timeline-app")
    restore_family.prepare_damaged_app(app_root, dest, [database])
    stages = timed_call(RESTORE_STAGES, lambda: _restore.restore(
        _restore.RestoreRequest(dest=dest, archive=archive, scope="database")),
        lambda result: result["databases"] == [database])
    shutil.rmtree(dest)
    return stages


TIMELINES = {"backup": backup_timeline, "verify": verify_timeline, "restore": restore_timeline,
             "incremental": lambda *paths: backup_timeline(*paths, kind="incremental")}
IMPORTS = {"backup": _create, "incremental": _create, "verify": _verify, "restore": _restore}


def start_seconds(family: str) -> float:
    """The engine row's python start and its imports of the engine: the fastest of RUNS fresh processes."""
    code = "import sys; sys.path.insert(0, sys.argv[1]); import %s" % IMPORTS[family].__name__
    return measure("python start + imports", lambda: subprocess.run([TARGET_PYTHON, "-c", code, COLLECTIONS],
                                                                     check=True), RUNS)["min"]


def main(argv: list) -> int:
    arguments = [argument for index, argument in enumerate(argv)
                 if argument != "--collections" and (index == 0 or argv[index - 1] != "--collections")]
    family, paths = arguments[0], arguments[1:]
    with contextlib.redirect_stdout(sys.stderr):
        figures = PHASES[family](*paths)
        timeline = {"start_s": round(start_seconds(family), 3), "stages": TIMELINES[family](*paths),
                    "cores": os.cpu_count()}
    print(json.dumps({"phases": [{"label": found["label"], "wall_s": round(found["min"], 3),
                                  "cpu_s": round(found["python_cpu"] + found["children_cpu"], 3)}
                                 for found in figures], "timeline": timeline}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
