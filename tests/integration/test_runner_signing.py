"""The runner role with signed backups (rendered into a folder, as tests/integration/test_roles.py does): the host's
signing key is made once, root's alone, its public key is printed for the inventory, the scheduled runs get the
key's path and run as root (the application user must not be able to read the key)."""

from __future__ import annotations

import json
import os
import subprocess

import yaml

from tests.integration.runnerhost import apply, read, render_only, task_result


def test_the_runner_makes_the_signing_key_once_and_scheduled_runs_sign_as_root(tmp_path):
    root = tmp_path / "root"
    variables = render_only(root, "signed", runner_scheduler="cron", runner_user="nobody", runner_group="nogroup",
                            reddit_backup_signing=True)
    first = apply(tmp_path, "signed.yml", variables)
    key = root / "etc" / "reddit-backup" / "signing_key"
    info = os.lstat(str(key))
    assert info.st_uid == 0 and info.st_mode & 0o777 == 0o600
    public = (root / "etc" / "reddit-backup" / "signing_key.pub").read_text().strip()
    assert public.startswith("ssh-ed25519 ")
    shown = task_result(first, "Show the public key to trust (reddit_backup_trusted_signing_keys in the inventory)")
    assert shown["msg"] == public
    assert "PRIVATE KEY" not in json.dumps(first.data)
    settings = json.loads(read(root / "etc" / "reddit-backup" / "signed" / "runner.json"))
    assert settings["signing_key"] == "/etc/reddit-backup/signing_key"
    inventory = yaml.safe_load(read(root / "etc" / "reddit-backup" / "signed" / "inventory.yml"))
    assert inventory["all"]["vars"]["reddit_backup_signing_key"] == "/etc/reddit-backup/signing_key"
    full = read(root / "etc" / "cron.d" / "reddit-backup-signed-full")
    assert " root " in full and " nobody " not in full
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], check=True, capture_output=True,
                                 text=True).stdout
    apply(tmp_path, "again.yml", variables)  # a second run keeps the key
    assert subprocess.run(["ssh-keygen", "-l", "-f", str(key)], check=True, capture_output=True,
                          text=True).stdout == fingerprint


def test_without_signing_the_jobs_run_as_the_application_user(tmp_path):
    root = tmp_path / "root"
    apply(tmp_path, "plain.yml", render_only(root, "plain", runner_scheduler="cron", runner_user="nobody",
                                             runner_group="nogroup"))
    assert " nobody " in read(root / "etc" / "cron.d" / "reddit-backup-plain-full")
    assert json.loads(read(root / "etc" / "reddit-backup" / "plain" / "runner.json"))["signing_key"] is None
    assert not (root / "etc" / "reddit-backup" / "signing_key").exists()
