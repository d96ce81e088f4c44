"""Where the time of a comprehensive verify, a database restore or an incremental backup goes: each phase alone,
the engine call end to end, CPU time against wall time, and a cProfile of the engine call. Diagnostic, not part
of ``make bench``.

    python bench/profile_engine.py {verify,restore,incremental} [--workdir /tmp/reddit-backup-bench]
                                   [--repeat 3] [--top 20] [--collections DIR]

Uses the sample app that ``bench/run.py`` seeded and cached in the workdir (run that first); its scratch files go
to a temporary folder there, removed at the end. Runs under the targets' python (``/usr/bin/python3``),
re-executing itself there if needed. Each figure is the median of ``--repeat`` runs; the cProfile covers the
main thread only (integrity checks in create_backup run in threads, zstd in its own process).
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# profile_backup re-executes under /usr/bin/python3 when run as a script; do the same here, then import it for
# its engine imports (from --collections), Clock and measure.
if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
        and __name__ == "__main__":
    os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)

from profile_backup import COLLECTIONS, DB_RELPATH, Clock, measure, profile_options  # noqa: E402
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs  # noqa: E402
from ansible_collections.devops.reddit_backup.plugins.module_utils._database import pages as _pages, sqlite as _sqlite  # noqa: E402
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import (  # noqa: E402
    BackupRequest, create_backup)
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.reader import ArchiveReader  # noqa: E402
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import (  # noqa: E402
    RestoreRequest, restore)
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive  # noqa: E402

import incremental  # noqa: E402
import restore as restore_family  # noqa: E402


def _read_pass(archive: str, hash_members: bool) -> None:
    with ArchiveReader(archive, hash_members=hash_members) as reader:
        for member in reader.members():
            if member.kind == "file" and not member.problem:
                for _data in member.chunks():
                    pass


def _write_copy(source: str, target: str) -> None:
    """What verify's database sink does: the member's bytes written to a private file, 1 MiB at a time."""
    with open(source, "rb") as handle, open(target, "wb") as out:
        for block in iter(lambda: handle.read(1 << 20), b""):
            out.write(block)


def _syncfs(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        libc.syncfs(fd)
    finally:
        os.close(fd)


def _profile(label: str, call, top: int, setup=None) -> None:
    if setup:
        setup()
    profile = cProfile.Profile()
    with Clock() as clock:
        profile.runcall(call)
    print("\ncProfile of %s, main thread only: wall %.2f s, python CPU (all threads) %.2f s, children CPU %.2f s\n"
          % (label, clock.wall, clock.own_cpu, clock.children_cpu))
    for sort in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(profile, stream=stream).strip_dirs().sort_stats(sort).print_stats(top)
        text = stream.getvalue()
        print("sorted by %s:\n%s\n" % (sort, text[text.find("ncalls"):].rstrip()))


def _archive_phases(archive: str, database_copy: str, scratch: str, repeat: int) -> None:
    copy = os.path.join(scratch, "copy.db")
    measure("zstd -dc of the archive > /dev/null", lambda: subprocess.run(
        ["zstd", "-q", "-d", "-c", archive], stdout=subprocess.DEVNULL, check=True), repeat)
    measure("reader pass: decompress + tar walk, no member hashing", lambda: _read_pass(archive, False), repeat)
    measure("reader pass: decompress + tar walk + sha256 of members and archive", lambda: _read_pass(archive, True),
            repeat)
    measure("write a copy of the database (1 MiB writes)", lambda: _write_copy(database_copy, copy), repeat)
    measure("PRAGMA integrity_check of the copy", lambda: _sqlite.check_integrity(copy, "full"), repeat)
    measure("PRAGMA quick_check of the copy", lambda: _sqlite.check_integrity(copy, "quick"), repeat)
    measure("sha256 of the database file", lambda: _fs.sha256_file(copy), repeat)
    os.remove(copy)


def profile_verify(options, scratch: str, archive: str, database_copy: str) -> None:
    _archive_phases(archive, database_copy, scratch, options.repeat)
    call = lambda: verify_archive(archive, "comprehensive", record=False)  # noqa: E731
    measure("verify_archive(comprehensive) end to end", call, options.repeat)
    _profile("verify_archive(archive, 'comprehensive')", call, options.top)


def profile_restore(options, scratch: str, archive: str, database_copy: str, app_root: str) -> None:
    _archive_phases(archive, database_copy, scratch, options.repeat)
    target = os.path.join(scratch, "synced.db")

    def write_then_sync():
        _write_copy(database_copy, target)
        _syncfs(scratch)

    measure("write a copy of the database, then syncfs", write_then_sync, options.repeat,
            lambda: os.path.exists(target) and os.remove(target))
    databases = [DB_RELPATH]
    dest = os.path.join(scratch, "restore", "app")

    def damaged_app():
        shutil.rmtree(os.path.dirname(dest), ignore_errors=True)
        restore_family.prepare_damaged_app(app_root, dest, databases)

    call = lambda: restore(RestoreRequest(dest=dest, archive=archive, scope="database"))  # noqa: E731
    measure("restore(scope=database) end to end (damaged copy prepared untimed)", call, options.repeat,
            damaged_app)
    _profile("restore(RestoreRequest(dest, archive, scope='database'))", call, options.top, damaged_app)


def profile_incremental(options, scratch: str, app_root: str) -> None:
    state = incremental.prepare_state(scratch, app_root, COLLECTIONS, [DB_RELPATH])
    app = state["app_root"]
    database = os.path.join(app, DB_RELPATH)
    snapshot = os.path.join(scratch, "snapshot.db")
    parent = state["parent"]["archive"]
    backup_dir = os.path.join(scratch, "backups")

    def fresh_snapshot():
        if os.path.exists(snapshot):
            os.remove(snapshot)

    measure("snapshot (online backup API, pages=-1) alone", lambda: _sqlite.snapshot(database, snapshot),
            options.repeat, fresh_snapshot)
    measure("quick_check of the snapshot alone", lambda: _sqlite.check_integrity(snapshot, "quick"), options.repeat)
    page_size = _sqlite.database_facts(snapshot)["page_size"]
    measure("page_hashes of the snapshot (read + sha256 per page + whole)",
            lambda: _pages.page_hashes(snapshot, page_size), options.repeat)
    measure("sha256 of the snapshot (read + hash, 1 MiB blocks)", lambda: _fs.sha256_file(snapshot), options.repeat)

    def with_parent():
        shutil.rmtree(backup_dir, ignore_errors=True)
        folder = os.path.join(backup_dir, os.path.basename(os.path.dirname(parent)))
        os.makedirs(folder, 0o700)
        for name in os.listdir(os.path.dirname(parent)):
            if name.startswith(os.path.basename(parent)):
                os.link(os.path.join(os.path.dirname(parent), name), os.path.join(folder, name))

    def empty():
        shutil.rmtree(backup_dir, ignore_errors=True)

    def backup(backup_type, **more):
        return lambda: create_backup(BackupRequest(app_root=app, backup_dir=backup_dir, type=backup_type, **more))

    measure("create_backup type=full", backup("full"), options.repeat, empty)
    measure("create_backup type=incremental", backup("incremental"), options.repeat, with_parent)
    measure("create_backup type=incremental integrity=none", backup("incremental", integrity="none"),
            options.repeat, with_parent)
    _profile("create_backup(type='incremental')", backup("incremental"), options.top, with_parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("family", choices=["verify", "restore", "incremental"])
    options, app_root, database = profile_options(parser)
    scratch = tempfile.mkdtemp(prefix="profile-", dir=options.workdir)
    try:
        print("engine: %s" % COLLECTIONS)
        print("python %s, sqlite %s, %d cores, load average %s; database %.0f MB; median of %d runs\n" % (
            sys.version.split()[0], _sqlite.sqlite3.sqlite_version, os.cpu_count(),
            " ".join("%.2f" % value for value in os.getloadavg()), os.path.getsize(database) / 2 ** 20,
            options.repeat))
        print("| phase | wall s | min s | python CPU s | children CPU s |")
        print("|---|---|---|---|---|")
        if options.family == "incremental":
            profile_incremental(options, scratch, app_root)
            return 0
        result = create_backup(BackupRequest(app_root=app_root, backup_dir=os.path.join(scratch, "backups")))
        extracted = os.path.join(scratch, "extracted")
        os.makedirs(extracted)
        subprocess.run(["tar", "-I", "zstd", "-xf", result["archive"], "-C", extracted, DB_RELPATH], check=True)
        database_copy = os.path.join(extracted, DB_RELPATH)
        if options.family == "verify":
            profile_verify(options, scratch, result["archive"], database_copy)
        else:
            profile_restore(options, scratch, result["archive"], database_copy, app_root)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
