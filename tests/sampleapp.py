"""The sample app, seeded with the real seeding tool into temporary folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = os.path.join(REPO, "examples", "sample_app", "seed.py")


def seed_app(app_root: str, rows: int = 2000, seed: int = 0, **options) -> dict:
    """Seed the sample app into ``app_root`` with the real seeding tool; returns its JSON summary."""
    command = [sys.executable, SEED, "--app-root", str(app_root), "--rows", str(rows), "--seed", str(seed)]
    for key, value in options.items():
        command += ["--" + key.replace("_", "-"), str(value)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture
def sample_app(tmp_path):  # re-exported by tests/conftest.py
    """A seeded sample app at tmp_path/app, with tmp_path/backups as the (empty) backup directory."""
    app_root = tmp_path / "app"
    seed_app(app_root)
    return app_root
