"""Encrypted backups through ansible-playbook on localhost: backup_create with age public keys (made here with
age-keygen), backup_verify and backup_restore with, without and with the wrong identity_file, and a key's content
never in any output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile

import pytest

pytestmark = pytest.mark.skipif(shutil.which("age-keygen") is None, reason="age is needed (tools/setup.sh installs it)")


def make_key(path) -> str:
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    os.chmod(str(path), 0o600)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def task(name, module, ignore_errors=False, **options) -> dict:
    item = {"name": name, "devops.reddit_backup." + module: options}
    if ignore_errors:
        item["ignore_errors"] = True
    return item


def test_encrypted_backups_from_create_to_restore(sample_app, tmp_path, play):
    operator, stranger = tmp_path / "operator.key", tmp_path / "stranger.key"
    public = make_key(operator)
    make_key(stranger)
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text("# the operator's key\n%s\n" % public)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(str(wheels / "requests-2.32.3-py3-none-any.whl"), "w") as wheel:
        wheel.writestr("requests/__init__.py", "")
    backups, dest = tmp_path / "backups", tmp_path / "new-server"
    result = play([
        task("create", "backup_create", app_root=str(sample_app), backup_dir=str(backups),
             encryption_recipients_file=str(recipients_file), wheelhouse=str(wheels)),
        task("quick", "backup_verify", backup_dir=str(backups), level="quick"),
        task("no key", "backup_verify", ignore_errors=True, backup_dir=str(backups)),
        task("wrong key", "backup_verify", ignore_errors=True, backup_dir=str(backups), identity_file=str(stranger)),
        task("full", "backup_verify", backup_dir=str(backups), identity_file=str(operator)),
        task("restore without key", "backup_restore", ignore_errors=True, backup_dir=str(backups), dest=str(dest)),
        task("restore", "backup_restore", backup_dir=str(backups), dest=str(dest), identity_file=str(operator)),
        task("info", "backup_info", backup_dir=str(backups)),
    ])
    assert not result.failed, result.stderr
    created = result.result("create")
    assert created["encrypted"] and created["archive"].endswith(".tar.zst.age")
    assert created["wheelhouse"]["wheels"] == 1
    assert result.result("quick")["valid"] and result.result("quick")["checks"][0]["name"] == "checksum"
    no_key = result.result("no key")
    assert no_key["failed"] and no_key["status"] == "unverifiable" and "give identity_file" in no_key["msg"]
    wrong = result.result("wrong key")
    assert wrong["failed"] and "does not match" in wrong["msg"]
    assert result.result("full")["valid"] and result.result("full")["level"] == "comprehensive"
    assert result.result("restore without key")["failed"]
    assert "give identity_file" in result.result("restore without key")["msg"]
    assert result.result("restore")["changed"] and (dest / "data" / "reddit_sentiment.db").exists()
    assert (dest / "wheelhouse" / "requests-2.32.3-py3-none-any.whl").exists()
    listed = result.result("info")["backups"]
    assert listed[0]["archive"] == created["archive"] and listed[0]["verified"]["status"] == "valid"
    # The private key's content appears nowhere in what Ansible printed.
    secret = [line for line in operator.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")][0]
    assert secret not in json.dumps(result.data) and secret not in result.stderr


def test_a_private_key_given_as_recipient_is_refused_without_showing_it(sample_app, tmp_path, play):
    key = tmp_path / "operator.key"
    make_key(key)
    secret = [line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")][0]
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(secret + "\n")
    result = play([task("create", "backup_create", app_root=str(sample_app), backup_dir=str(tmp_path / "b"),
                        encryption_recipients_file=str(recipients_file))])
    assert result.failed and "private key, not a public key" in result.result("create")["msg"]
    assert secret not in json.dumps(result.data) and secret not in result.stderr
    assert not (tmp_path / "b").exists()
