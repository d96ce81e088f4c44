"""An application host for the role tests: the runner and monitoring roles installed for real into a folder that
stands for / (runner_root), with the sample app, a webhook server on 127.0.0.1 and the venv built offline from
wheels the "controller" (this machine) downloaded once into build/runner-dist/wheels.

One installation is shared by the role tests and the reddit-backup command tests (building a venv takes a while);
it is made once per pytest session, the first time a test asks for it.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import zipfile

import pytest
import yaml

from tests.ansiblerun import failure
from tests.integration.inventory import operator_inventory
from tests.integration.runner import REPO, run_playbook
from tests.notifyservers import WebhookServer
from tests.sampleapp import seed_app

DIST = os.path.join(REPO, "build", "runner-dist")
WHEELS = os.path.join(DIST, "wheels")
APP = "demo"
_shared = {}


def wheelhouse() -> str:
    """ansible-core and its dependencies as wheels for this machine's Python, downloaded once (the controller's
    job before an offline installation; later runs find them under build/)."""
    version = importlib.metadata.version("ansible-core")
    if not glob.glob(os.path.join(WHEELS, "ansible_core-%s-*.whl" % version)):
        os.makedirs(WHEELS, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--only-binary=:all:", "-d", WHEELS, "ansible-core==%s" % version], check=True)
    return WHEELS


def write_play(folder, name: str, plays: list) -> str:
    path = os.path.join(str(folder), name)
    with open(path, "w") as handle:
        yaml.safe_dump(plays, handle, sort_keys=False)
    return path


def role_play(roles: list, tasks=(), handlers=(), name: str = "roles") -> list:
    play = {"name": name, "hosts": "localhost", "connection": "local", "gather_facts": False, "roles": roles}
    if tasks:
        play["tasks"] = list(tasks)
    if handlers:
        play["handlers"] = list(handlers)
    return [play]


def changed_tasks(result) -> list:
    """Names of the tasks (and handlers) that reported a change on localhost, without their role prefix."""
    names = []
    for play in result.data["plays"]:
        for task in play["tasks"]:
            host = task["hosts"].get("localhost", {})
            if host.get("changed"):
                names.append(task["task"]["name"].split(" : ", 1)[-1])
    return names


def task_result(result, name: str) -> dict:
    """The localhost result of the task called ``name`` (a role's task is named "role : name")."""
    for play in result.data["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ", 1)[-1] == name and "localhost" in task["hosts"]:
                return task["hosts"]["localhost"]
    raise KeyError(name)


class Host:
    """The installed host: paths of what the roles put there, and how to run its reddit-backup command."""

    def __init__(self, base, webhook: WebhookServer) -> None:
        self.base = str(base)
        self.root = os.path.join(self.base, "root")
        self.app_root = os.path.join(self.base, "app")
        self.backup_dir = os.path.join(self.app_root, "backups")
        self.webhook = webhook
        self.command = os.path.join(self.root, "usr", "local", "bin", "reddit-backup")
        self.config = os.path.join(self.root, "etc", "reddit-backup", APP)
        self.units = os.path.join(self.root, "etc", "systemd", "system")
        self.textfile = os.path.join(self.root, "var", "lib", "prometheus", "node-exporter",
                                     "reddit_backup_%s.prom" % APP)
        self.log = os.path.join(self.app_root, "logs", "backup.log")
        self.first_run = None

    def role_vars(self) -> dict:
        return {
            "runner_root": self.root,
            "runner_app_name": APP,
            "runner_app_root": self.app_root,
            "runner_user": "root",
            "runner_group": "root",
            "runner_scheduler": "systemd",
            "runner_wheelhouse": wheelhouse(),
            # no systemd and no health endpoint here: the restore playbooks must not try them
            "runner_playbook_vars": {"reddit_backup_manage_services": False, "reddit_backup_health_check": False,
                                     "reddit_backup_retention_days": {"full": 30, "database": 1}},
            "monitoring_root": self.root,
            "monitoring_app_name": APP,
            "monitoring_app_root": self.app_root,
            "monitoring_user": "root",
            "monitoring_group": "root",
            "monitoring_notify": True,
            "monitoring_webhook_url": self.webhook.url("/hooks/s3cr3t-t0ken"),
            "monitoring_rules": True,
        }

    def install(self, tmp_path):
        plays = role_play([{"role": "devops.reddit_backup.runner"}, {"role": "devops.reddit_backup.monitoring"}],
                          name="install the runner and monitoring")
        plays[0]["vars"] = self.role_vars()
        playbook = write_play(tmp_path, "install.yml", plays)
        return run_playbook(tmp_path, playbook, timeout=900)

    def run(self, *args, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
        """The installed reddit-backup command, as an operator would run it (no ANSIBLE_* in the environment)."""
        clean = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "PYTEST"))}
        clean.update(env or {})
        return subprocess.run([self.command, *args], capture_output=True, text=True, env=clean, timeout=timeout)

    def metrics(self) -> str:
        with open(self.textfile) as handle:
            return handle.read()

    def catalog(self) -> list:
        return self.catalog_of(APP)

    def catalog_of(self, app: str) -> list:
        completed = self.run("--app", app, "list", "--json")
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout)["backups"]


def installed_host(tmp_path_factory) -> Host:
    """The shared installation (made on first use; a failed installation fails every test that needs it)."""
    if "host" not in _shared:
        base = tmp_path_factory.mktemp("apphost")
        webhook = WebhookServer()
        host = Host(base, webhook)
        seed_app(host.app_root)
        result = host.install(tmp_path_factory.mktemp("install-run"))
        host.first_run = result
        _shared["host"] = host
        _shared["error"] = None if not result.failed else "installing the runner failed:\n%s\n%s" % (
            json.dumps(result.data)[-6000:], result.stderr[-3000:])
    if _shared["error"]:
        pytest.fail(_shared["error"])
    return _shared["host"]


@pytest.fixture(scope="session")
def apphost(tmp_path_factory):
    """The application host with the runner and monitoring roles installed (shared by the whole session)."""
    return installed_host(tmp_path_factory)


def read(path) -> str:
    with open(path) as handle:
        return handle.read()


def render_only(root, app: str, **extra) -> dict:
    variables = {"runner_root": str(root), "runner_app_name": app, "runner_app_root": "/srv/%s" % app,
                 "runner_user": "root", "runner_group": "root", "runner_install": False,
                 "monitoring_root": str(root), "monitoring_app_name": app, "monitoring_app_root": "/srv/%s" % app,
                 "monitoring_user": "root", "monitoring_group": "root"}
    variables.update(extra)
    return variables


def apply(tmp_path, name: str, *role_vars, monitoring: bool = False):
    roles = []
    for variables in role_vars:
        roles.append({"role": "devops.reddit_backup.runner", "vars": variables})
        if monitoring:
            roles.append({"role": "devops.reddit_backup.monitoring", "vars": variables})
    result = run_playbook(tmp_path, write_play(tmp_path, name, role_play(roles)), timeout=600)
    assert not result.failed, (result.stderr, [t for p in result.data["plays"] for t in p["tasks"]
                                                if t["hosts"].get("localhost", {}).get("failed")])
    return result


def make_wheel(folder) -> str:
    """A minimal, valid pure-Python wheel (no build tools, no index): what the controller's `pip wheel` makes."""
    name = "demo_dependency-1.0-py3-none-any.whl"
    files = {"demo_dependency/__init__.py": b"VALUE = 42\n",
             "demo_dependency-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo-dependency\nVersion: 1.0\n",
             "demo_dependency-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                   b"Tag: py3-none-any\n"}
    record = "".join("%s,sha256=%s,%d\n" % (path, _b64(hashlib.sha256(data).digest()), len(data))
                     for path, data in files.items()) + "demo_dependency-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(str(folder), name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr("demo_dependency-1.0.dist-info/RECORD", record)
    return name


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@contextlib.contextmanager
def installed_from_inventory(tmp_path, settings: dict, roles: list):
    """ROLES (runner, monitoring) applied to app_servers as an operator applies them, SETTINGS in the inventory's
    group_vars; removed again afterwards (each role's state absent), so the shared host has one application
    again, as the other tests expect."""
    install = [{"name": "install the runner", "hosts": "app_servers", "gather_facts": False,
                "roles": [{"role": "devops.reddit_backup.%s" % role} for role in roles]}]
    playbook = tmp_path / "site.yml"
    playbook.write_text(yaml.safe_dump(install))
    inventory = operator_inventory(tmp_path, settings)
    try:
        installed = run_playbook(tmp_path, str(playbook), inventory=inventory, timeout=900)
        assert not installed.failed, installed.stderr + failure(installed)
        yield
    finally:
        absent = [argument for role in roles for argument in ("-e", "%s_state=absent" % role)]
        removed = run_playbook(tmp_path, str(playbook), inventory=inventory, extra_args=absent)
        assert not removed.failed, removed.stderr + failure(removed)


def run_on_a_terminal(command: list) -> tuple:
    """``command`` with stdout and stderr a pseudo-terminal, as an operator at a shell runs it; (rc, screen)."""
    primary, secondary = os.openpty()
    screen = []

    def drain():
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                return
            if not chunk:
                return
            screen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        clean = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "PYTEST"))}
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary, env=clean,
                                   timeout=300)
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(primary)
    return completed.returncode, b"".join(screen).decode(errors="replace")
