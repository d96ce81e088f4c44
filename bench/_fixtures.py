"""Inputs that the verify and restore families share, made once per run (untimed) in ``WORKDIR/fixtures``:

* the guide's full backup of the cached sample app (`sqlite3 .backup` + `tar -czf`, exactly as the backup
  family's ``guide`` row runs it), with the sha256 of each database snapshot it holds;
* the module's full backup of the same app (the engine's ``create_backup`` with its defaults: zstd, quick
  integrity check), in a backup directory with its sidecars, as backup_verify and backup_restore expect.

``run.py`` removes the folder at the end of the run (unless --keep-outputs)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import _peers
from _files import clean_dir, sha256_file, warm_page_cache
from _machine import loadavg
from _paths import TARGET_PYTHON
from _steps import run_methods, run_step

FOLDER = "fixtures"
_MADE: dict = {}


def folder(workdir: str) -> str:
    return os.path.join(workdir, FOLDER)


def _run(steps: list, log_dir: str) -> list:
    runs = []
    for step in steps:
        step_run = run_step(step, log_dir)
        if step_run.returncode != 0:
            raise SystemExit("bench: preparing %s failed (exit %d):\n%s\n%s" % (
                step.label, step_run.returncode, step_run.stdout[-3000:], step_run.stderr[-3000:]))
        runs.append(step_run)
    return runs


def guide_archive(workdir: str, app_root: str, databases: list) -> dict:
    """The guide's gzip full backup of the app: {"archive", "databases": {path: sha256}, "commands", "seconds"}."""
    key = ("guide", workdir, app_root)
    if key not in _MADE:
        import backup  # the guide's commands live with the backup family
        out = os.path.join(folder(workdir), "guide")
        clean_dir(out)
        method = backup.ManualMethod("guide", "guide", ["-czf"], ".tar.gz")
        steps = method.steps(app_root, out, databases)
        print("bench: preparing the guide's gzip full backup (untimed) ...", file=sys.stderr)
        started = time.monotonic()
        _run(steps, os.path.join(workdir, "logs", FOLDER))
        stage = os.path.join(out, "stage")
        digests = {db: sha256_file(os.path.join(stage, db)) for db in databases}
        shutil.rmtree(stage)  # the archive is what the methods read; the snapshot was only for the digests
        archive = method.archive(out)
        _MADE[key] = {"archive": archive, "archive_bytes": os.path.getsize(archive), "databases": digests,
                      "commands": [step.display() for step in steps],
                      "seconds": round(time.monotonic() - started, 1)}
    return _MADE[key]


MODULE_BACKUP = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
print(json.dumps(create_backup(BackupRequest(app_root=sys.argv[2], backup_dir=sys.argv[3], type=sys.argv[4],
                                             signing_key=(sys.argv[5:] or [None])[0]))))
"""


def engine_backup(collections: str, app_root: str, backup_dir: str, backup_type: str = "full",
                  signing_key: str = None) -> dict:
    """``create_backup`` in the targets' python (untimed preparation), its catalog entry signed with
    ``signing_key`` when given; returns its result."""
    signing = [signing_key] if signing_key else []
    completed = subprocess.run([TARGET_PYTHON, "-c", MODULE_BACKUP.strip(), collections, app_root, backup_dir,
                                backup_type] + signing, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit("bench: preparing a %s backup of %s failed:\n%s%s" % (
            backup_type, app_root, completed.stdout[-3000:], completed.stderr[-3000:]))
    return json.loads(completed.stdout.strip().splitlines()[-1])


def module_backup(workdir: str, app_root: str, collections: str, signed: bool = False) -> dict:
    """The module's zstd full backup of the app: {"archive", "backup_dir", "databases": {path: sha256}, ...}. With
    ``signed``, its catalog entry is signed by a fresh ed25519 key (`ssh-keygen`, as the runner role makes the
    host's), and "public_key" is the line a restore trusts."""
    kind = "signed" if signed else "module"
    key = (kind, workdir, app_root, collections)
    if key not in _MADE:
        root = os.path.join(folder(workdir), kind)
        backup_dir = os.path.join(root, "backups")
        clean_dir(root)
        commands, signing_key, made = [], None, {}
        if signed:
            signing_key = os.path.join(root, "signing_key")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "reddit-backup@bench", "-f",
                            signing_key], check=True)
            with open(signing_key + ".pub") as handle:
                made["public_key"] = handle.read().strip()
            commands.append("ssh-keygen -t ed25519 -N '' -f %s" % shlex.quote(signing_key))
        print("bench: preparing the module's %szstd full backup (untimed) ..." % ("signed " if signed else ""),
              file=sys.stderr)
        started = time.monotonic()
        result = engine_backup(collections, app_root, backup_dir, signing_key=signing_key)
        commands.append("create_backup(BackupRequest(app_root=%s, backup_dir=%s%s))" % (
            shlex.quote(app_root), shlex.quote(backup_dir),
            ", signing_key=%s" % shlex.quote(signing_key) if signed else ""))
        _MADE[key] = dict(made, archive=result["archive"], archive_bytes=result["size"], backup_dir=backup_dir,
                          databases={db["path"]: db["sha256"] for db in result["databases"]},
                          signed=result["signed"], commands=commands,
                          seconds=round(time.monotonic() - started, 1))
    return _MADE[key]


def peer_repository(workdir: str, app_root: str, databases: list, tool: str) -> dict:
    """restic's or borg's repository holding one backup of the app (bench/_peers.py), its staged snapshots
    removed afterwards so a restore reads the repository: {"archive", "repository", "stage", "databases"}."""
    key = (tool, workdir, app_root)
    if key not in _MADE:
        print("bench: preparing the %s repository (untimed) ..." % tool, file=sys.stderr)
        started = time.monotonic()
        stage = os.path.join(folder(workdir), tool + "-stage")
        seeded = _peers.seed_repository(tool, os.path.join(folder(workdir), tool), app_root, stage, databases,
                                        "full")
        shutil.rmtree(stage)
        _MADE[key] = dict(seeded, archive=seeded["repository"].repo, seconds=round(time.monotonic() - started, 1))
    return _MADE[key]


def extracted_database(workdir: str, archive: str, database: str) -> str:
    """``database`` extracted once (untimed) from the zstd ``archive``, for the verify baseline."""
    key = ("extracted", workdir, archive, database)
    if key not in _MADE:
        out = os.path.join(folder(workdir), "extracted")
        clean_dir(out)
        subprocess.run(["tar", "-I", "zstd", "-xf", archive, "-C", out, database], check=True)
        _MADE[key] = os.path.join(out, database)
    return _MADE[key]


def remove(workdir: str) -> None:
    """Remove the fixtures (the end of a run)."""
    shutil.rmtree(folder(workdir), ignore_errors=True)
    for key in [key for key in _MADE if key[1] == workdir]:
        del _MADE[key]


def measure_on(family: str, methods: list, options, workdir: str, databases: list, guide: dict, module: dict,
               artifact_key: str = None) -> tuple:
    """The rounds of a family that reads these archives (read once first, so every method finds them in the page
    cache); its outputs go unless --keep-outputs. Returns (the family's result, the records by method)."""
    warm_page_cache(*[fixture["archive"] for fixture in (guide, module) if fixture])
    records, _last = run_methods(family, methods, options.repeat, workdir, artifact_key=artifact_key)
    if not getattr(options, "keep_outputs", False):
        shutil.rmtree(os.path.join(workdir, "out", family), ignore_errors=True)
    return {"databases": databases, "methods": list(records.values()), "loadavg_end": loadavg(),
            "fixtures": {"guide": guide, "module": module}}, records
