"""One job at a time per application: a reddit-backup job that changes things waits for the one holding the
application's job lock (the 02:00 full backup and the hourly database backup never run at once), then runs."""

from __future__ import annotations

import json
import os
import subprocess
import time

from tests.integration.runnerhost import apphost  # noqa: F401  (fixture)
from tests.unit.plugins.module_utils.builders import hold_in_child


def test_a_job_waits_for_the_one_holding_the_applications_job_lock(apphost):  # noqa: F811
    with open(os.path.join(apphost.config, "runner.json")) as handle:
        state_dir = json.load(handle)["state_dir"]
    before = {backup["name"] for backup in apphost.catalog()}
    holder = hold_in_child(state_dir)
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "PYTEST"))}
    waiting = subprocess.Popen([apphost.command, "create", "--type", "database"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=clean)
    try:
        time.sleep(8)
        assert waiting.poll() is None, "the job did not wait for the lock"
        assert {backup["name"] for backup in apphost.catalog()} == before, "a backup was made under another's lock"
    finally:
        holder.kill()
        holder.wait()
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, out + err
    assert len({backup["name"] for backup in apphost.catalog()} - before) == 1
