"""The seeded sample app (cached in the workdir per size, seed and recipe) and the file helpers around runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

from _paths import REPO


SEED = os.path.join(REPO, "examples", "sample_app", "seed.py")

DB_RELPATH = "data/reddit_sentiment.db"


def _sample_app_sha256() -> str:
    """One digest of seed.py and the skeleton it lays out: a change to either reseeds the cached app."""
    digest = hashlib.sha256()
    paths = [SEED]
    for directory, dirs, files in os.walk(os.path.join(os.path.dirname(SEED), "skeleton")):
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        paths += [os.path.join(directory, name) for name in sorted(files)]
    for path in paths:
        digest.update(os.path.relpath(path, REPO).encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def ensure_sample_app(workdir: str, db_size_mb: float, seed: int = 0) -> dict:
    """The seeded sample app under ``workdir/app``; reseeded (``--force``) only when the size, the seed or
    the sample app (seed.py, skeleton/) changed since the cached copy was made. Returns the cache record
    (seed.py's summary inside)."""
    app_root = os.path.join(workdir, "app")
    record_path = os.path.join(workdir, "app.seeded.json")
    wanted = {"db_size_mb": db_size_mb, "seed": seed, "sample_app_sha256": _sample_app_sha256()}
    try:
        with open(record_path) as handle:
            record = json.load(handle)
        if all(record.get(key) == value for key, value in wanted.items()) and \
                os.path.isfile(os.path.join(app_root, DB_RELPATH)):
            record["cached"] = True
            return record
    except (OSError, ValueError):
        pass
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(record_path):
        os.remove(record_path)  # a seeding that dies half-way must not be taken for a cached app
    command = [sys.executable, SEED, "--app-root", app_root, "--db-size-mb", str(db_size_mb), "--seed", str(seed),
               "--force"]
    print("bench: seeding the sample app (%s MB database) into %s ..." % (db_size_mb, app_root), file=sys.stderr)
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit("bench: seeding failed (%s):\n%s%s" % (" ".join(command), completed.stdout,
                                                                completed.stderr))
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    record = dict(wanted, summary=summary, command=command, seconds=round(time.monotonic() - started, 1))
    with open(record_path, "w") as handle:
        json.dump(record, handle, indent=2)
    record["cached"] = False
    return record


def tree_bytes(root: str, skip=()) -> int:
    """Bytes of the regular files under ``root`` (not following links), leaving out top-level names in ``skip``."""
    total = 0
    for directory, dirs, files in os.walk(root):
        if directory == root:
            dirs[:] = [name for name in dirs if name not in skip]
        for name in files:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def clean_dir(path: str) -> None:
    """An empty ``path``: whatever a previous run left there is removed."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_tree(path: str) -> None:
    """Flush what a preparation copied, so its writeback is not charged to the timed run that follows."""
    for directory, _dirs, files in os.walk(path):
        for name in files + ["."]:
            target = os.path.join(directory, name)
            if os.path.islink(target):
                continue
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def warm_page_cache(*paths: str) -> None:
    """Read files (or every file under folders) once, untimed, so every method reads them from the page cache."""
    for root in paths:
        if os.path.isfile(root):
            files = [root]
        else:
            files = [os.path.join(directory, name) for directory, _dirs, names in os.walk(root) for name in names]
        for path in files:
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    while handle.read(1 << 20):
                        pass
