"""The phases of one family's engine call, each alone, the fastest of RUNS runs: the profile `bench/run.py` records
beside each family's table (bench/_profile.py reads the JSON this prints on its last line). Run by run.py, not by hand.

    /usr/bin/python3 bench/profile_phases.py backup DATABASE SCRATCH --collections DIR
    /usr/bin/python3 bench/profile_phases.py {verify,restore} ARCHIVE DATABASE_COPY SCRATCH --collections DIR
    /usr/bin/python3 bench/profile_phases.py incremental DATABASE SCRATCH --collections DIR

The phase functions are profile_backup.py's and profile_engine.py's; their table rows go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from profile_backup import measure  # noqa: E402
from profile_engine import _fs, _pages, _read_pass, _sqlite, _syncfs, _write_copy  # noqa: E402

RUNS = 3  # a single run of a phase can be lengthened by a burst of load from elsewhere: its fastest run counts


def _zstd(arguments: list, source: str):
    return lambda: subprocess.run(["zstd", "-q"] + arguments + ["-c", source], stdout=subprocess.DEVNULL, check=True)


def backup_phases(database: str, scratch: str) -> list:
    """What a full backup does to its database, each alone: the snapshot (the hand pipeline's `.backup` too), its
    compression (the hand pipeline's zstd, of the snapshot alone), the full integrity check and the page hashes."""
    snapshot = os.path.join(scratch, "snapshot.db")
    phases = [measure("snapshot", lambda: _sqlite.snapshot(database, snapshot), RUNS),
              measure("zstd -3 -T0 of the snapshot", _zstd(["-3", "-T0"], snapshot), RUNS),
              measure("integrity_check", lambda: _sqlite.check_integrity(snapshot, "full"), RUNS)]
    page_size = _sqlite.database_facts(snapshot)["page_size"]
    phases.append(measure("page hashes + sha256", lambda: _pages.page_hashes(snapshot, page_size), RUNS))
    return phases


def incremental_phases(database: str, scratch: str) -> list:
    """What an incremental does to the whole database whatever changed: the snapshot, the page hashes that find
    the changed pages, the quick_check a delta gets."""
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


def restore_phases(archive: str, database_copy: str, scratch: str) -> list:
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


def main(argv: list) -> int:
    arguments = [argument for index, argument in enumerate(argv)
                 if argument != "--collections" and (index == 0 or argv[index - 1] != "--collections")]
    family, paths = arguments[0], arguments[1:]
    with contextlib.redirect_stdout(sys.stderr):
        figures = PHASES[family](*paths)
    print(json.dumps([{"label": found["label"], "wall_s": round(found["min"], 3),
                       "cpu_s": round(found["python_cpu"] + found["children_cpu"], 3)} for found in figures]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
