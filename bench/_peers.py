"""restic and borg, the peers of issue 16, as rows of each family. As their users do, each first takes a consistent
`sqlite3 .backup` snapshot of every database into a staging folder, then backs up the app (the guide's excludes,
the live database and its -wal/-shm/-journal left out) and that folder into its own repository. Debian's packages
with their defaults: restic's always-on encryption (a password file) and compression auto; borg unencrypted
(as our archives are by default) with its lz4. Each repository's cache lives beside it, never in $HOME."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from _files import sha256_file, tree_bytes
from _steps import Step

TOOLS = ("restic", "borg")
PASSWORD = "bench-not-a-secret\n"


def versus_fastest(summaries: dict, value, suffix: str = "", field: str = "median_s") -> float:
    """``value`` over the smallest ``field`` of the peers' rows (keys TOOL+SUFFIX); None when no peer ran."""
    smallest = min((summaries[tool + suffix][field] for tool in TOOLS if tool + suffix in summaries), default=None)
    return round(value / smallest, 2 if field == "median_s" else 4) if value is not None and smallest else None


class Repository:
    """One tool's repository under ``home`` (HOME/repo, its cache in HOME/cache, restic's password file)."""

    def __init__(self, tool: str, home: str) -> None:
        self.tool = tool
        self.home = home
        self.repo = os.path.join(home, "repo")

    def __str__(self) -> str:  # how the results' JSON shows it
        return self.repo

    def env(self) -> dict:
        if self.tool == "restic":
            return {"RESTIC_REPOSITORY": self.repo, "RESTIC_PASSWORD_FILE": os.path.join(self.home, "password"),
                    "RESTIC_CACHE_DIR": os.path.join(self.home, "cache")}
        # A copied repository (the incremental family's parent) is at a new path: borg asks unless told.
        return {"BORG_REPO": self.repo, "BORG_BASE_DIR": os.path.join(self.home, "cache"),
                "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def init(self) -> None:
        """A new, empty repository (untimed: its users make it once)."""
        shutil.rmtree(self.home, ignore_errors=True)
        os.makedirs(os.path.join(self.home, "cache"))
        with open(os.path.join(self.home, "password"), "w") as handle:
            handle.write(PASSWORD)
        argv = ["restic", "init", "-q"] if self.tool == "restic" else ["borg", "init", "--encryption=none"]
        self._run(argv)

    def copy_to(self, home: str) -> "Repository":
        """A copy of the repository and its cache at ``home`` (untimed: each run builds on the same parent)."""
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(self.home, home, symlinks=True)
        return Repository(self.tool, home)

    def bytes(self) -> int:
        return tree_bytes(self.repo)

    def backup_shell(self, app_root: str, stage: str, databases: list, name: str) -> str:
        excluded = [os.path.join(app_root, pattern) for pattern in ("backups", "logs/*.log.*", "venv")]
        for db in databases:
            excluded += [os.path.join(app_root, db), os.path.join(app_root, db) + "-*"]
        if self.tool == "restic":
            argv = ["restic", "backup", "-q", "--exclude", "__pycache__"]
            argv += [part for pattern in excluded for part in ("--exclude", pattern)]
        else:
            argv = ["borg", "create", "--exclude", "sh:**/__pycache__"]
            argv += [part for pattern in excluded for part in ("--exclude", "sh:" + pattern.lstrip("/"))]
            argv.append("::" + name)
        return " ".join(shlex.quote(part) for part in argv + [app_root, stage])

    def restore_shell(self, scratch: str, stored: str, name: str) -> str:
        """The file backed up as ``stored`` (absolute) into SCRATCH/STORED."""
        if self.tool == "restic":
            argv = ["restic", "restore", "-q", "latest", "--target", scratch, "--include", stored]
            return " ".join(shlex.quote(part) for part in argv)
        return "mkdir -p %s && cd %s && borg extract %s %s" % (
            shlex.quote(scratch), shlex.quote(scratch), shlex.quote("::" + name), shlex.quote(stored.lstrip("/")))

    def _run(self, argv: list, cwd: str = None) -> None:
        completed = subprocess.run(argv, env=dict(os.environ, **self.env()), cwd=cwd, capture_output=True,
                                   text=True)
        if completed.returncode != 0:
            raise SystemExit("bench: %s failed (exit %d):\n%s%s" % (" ".join(argv), completed.returncode,
                                                                    completed.stdout[-2000:], completed.stderr[-2000:]))


def snapshot_shell(app_root: str, stage: str, databases: list) -> str:
    """`sqlite3 .backup` of each database into STAGE/DB (a snapshot left there before is replaced)."""
    lines = ["mkdir -p %s" % " ".join(sorted({shlex.quote(os.path.dirname(os.path.join(stage, db)))
                                              for db in databases}))]
    for db in databases:
        target = os.path.join(stage, db)
        lines += ["rm -f %s" % shlex.quote(target),
                  "sqlite3 %s %s" % (shlex.quote(os.path.join(app_root, db)), shlex.quote(".backup %s" % target))]
    return "\n".join(lines)


def backup_steps(repository: Repository, app_root: str, stage: str, databases: list, name: str) -> list:
    return [Step("snapshot", shell=snapshot_shell(app_root, stage, databases), env=repository.env()),
            Step(repository.tool, shell=repository.backup_shell(app_root, stage, databases, name),
                 env=repository.env())]


def seed_repository(tool: str, home: str, app_root: str, stage: str, databases: list, name: str) -> dict:
    """A repository holding one backup of the app, its snapshots staged in ``stage`` (untimed preparation):
    {"repository", "stage", "databases"} with the sha256 of each snapshot it holds."""
    repository = Repository(tool, home)
    repository.init()
    for step in backup_steps(repository, app_root, stage, databases, name):
        completed = subprocess.run(["bash", "-o", "pipefail", "-e", "-c", step.shell],
                                   env=dict(os.environ, **step.env), capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit("bench: preparing the %s repository failed at %s:\n%s%s" % (
                tool, step.label, completed.stdout[-2000:], completed.stderr[-2000:]))
    digests = {db: sha256_file(os.path.join(stage, db)) for db in databases}
    return {"repository": repository, "stage": stage, "databases": digests}
