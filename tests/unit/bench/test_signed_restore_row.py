"""The restore family's engine_signed row (bench/restore.py, bench/_fixtures.py): a real signed backup of the seeded
sample app, restored into a damaged copy with its key trusted, authenticated and byte for byte the snapshot."""

from __future__ import annotations

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "bench"))

import _fixtures  # noqa: E402
import restore  # noqa: E402
from _steps import StepRun, run_step  # noqa: E402
from tests.sampleapp import DB, seed_app  # noqa: E402

COLLECTIONS = os.path.join(REPO, "collections")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed-row")
    app = root / "app"
    seed_app(app)
    fixture = _fixtures.module_backup(str(root / "work"), str(app), COLLECTIONS, signed=True)
    return {"root": root, "app": str(app), "fixture": fixture}


def run_once(method, out: str) -> tuple:
    method.prepare(out)
    runs = [run_step(step, os.path.join(out, "logs")) for step in method.steps(out)]
    return runs, method


def test_the_signed_row_restores_the_signed_backup_authenticated_without_checking_again(signed, tmp_path):
    assert signed["fixture"]["signed"] and signed["fixture"]["public_key"].startswith("ssh-ed25519 ")
    method = restore.SignedEngineMethod(COLLECTIONS, signed["app"], [DB], signed["fixture"])
    runs, _ = run_once(method, str(tmp_path))
    assert runs[-1].returncode == 0, runs[-1].stderr
    result = method.result(str(tmp_path), runs)
    assert result["restored_ok"] and result["restored"]
    data = json.loads(runs[-1].stdout.strip().splitlines()[-1])
    assert data["authenticated"] is True
    check = [found for found in data["verification"]["checks"] if found["name"] == "database:" + DB][0]
    assert check["ok"] and "not run again" in str(check["detail"])


def test_the_unsigned_row_on_the_same_app_runs_the_quick_check(signed, tmp_path):
    unsigned = _fixtures.module_backup(str(signed["root"] / "work"), signed["app"], COLLECTIONS)
    method = restore.EngineMethod(COLLECTIONS, signed["app"], [DB], unsigned)
    runs, _ = run_once(method, str(tmp_path))
    data = json.loads(runs[-1].stdout.strip().splitlines()[-1])
    check = [found for found in data["verification"]["checks"] if found["name"] == "database:" + DB][0]
    assert data["authenticated"] is False and "quick_check" in str(check["detail"])


def test_a_restore_that_was_not_authenticated_fails_the_signed_row(signed, tmp_path):
    method = restore.SignedEngineMethod(COLLECTIONS, signed["app"], [DB], signed["fixture"])
    stdout = json.dumps({"authenticated": False, "authenticity": "not checked"})
    run = StepRun("restore", 1.0, 0, stdout, "", 0, 0, 0, 0, 0.5, 0, 0, 0)
    with pytest.raises(RuntimeError, match="not authenticated: not checked"):
        method.result(str(tmp_path), [run])
