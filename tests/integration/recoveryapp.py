"""A seeded sample app with its backups and its real health server, and the restore playbooks run against it
(services switched off, unit files into a folder): the ``recovery`` fixture of the restore playbook tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests.integration.runner import REPO, run_playbook
from tests.sampleapp import DB, posts


class Recovery:
    """A seeded app, its backups, its health server, and ``run(playbook, **vars)``."""

    def __init__(self, tmp_path, app) -> None:
        self.tmp_path = tmp_path
        self.app = app
        self.backups = tmp_path / "backups"
        self.units = tmp_path / "systemd-system"
        self.units.mkdir()
        self.full = create_backup(BackupRequest(app_root=str(app), backup_dir=str(self.backups)))
        self.posts = posts(app)
        server = os.path.join(str(app), "apps", "collector", "health_server.py")
        self.server = subprocess.Popen([sys.executable, server, "--db", str(app / DB), "--port", "0"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = "http://" + self.server.stdout.readline().split()[-1]

    def stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=10)

    def run(self, name: str, **variables):
        settings = {"reddit_backup_hosts": "localhost", "reddit_backup_app_root": str(self.app),
                    "reddit_backup_backup_dir": str(self.backups), "reddit_backup_manage_services": False,
                    "reddit_backup_health_url": self.url, "reddit_backup_systemd_dir": str(self.units),
                    "reddit_backup_health_retries": 5, "reddit_backup_health_delay": 1}
        settings.update(variables)
        return run_playbook(self.tmp_path, os.path.join(REPO, "playbooks", name + ".yml"),
                            extra_args=["-c", "local", "-e", json.dumps(settings)])


@pytest.fixture
def recovery(sample_app, tmp_path):
    env = Recovery(tmp_path, sample_app)
    yield env
    env.stop()
