"""Signed backups through Ansible: the modules' options, and the guide's Scenario 2 (devops.reddit_backup.
disaster_recovery) on a new server whose trusted signing key is written in the inventory's group_vars, as an
operator writes it: a signed backup is pulled from a real sshd on 127.0.0.1 and restored; a forgery made with the
age public key alone, put in its place on the backup server, is refused and nothing of it is restored."""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from tests.integration.runner import REPO, TARGET_PYTHON, run_playbook
from tests.servers import backup_server  # noqa: F401  (a fixture)
from tests.unit.plugins.module_utils.builders import ed25519, forge

DR_PULL = "Pull the backup from the backup server (checked against its .sha256 before it is listed)"


def _age_key(folder) -> tuple:
    identity = os.path.join(str(folder), "age-identity.txt")
    subprocess.run(["age-keygen", "-o", identity], check=True, capture_output=True)
    os.chmod(identity, 0o600)
    return identity, subprocess.run(["age-keygen", "-y", identity], check=True, capture_output=True,
                                    text=True).stdout.strip()


def _inventory(folder, settings: dict) -> str:
    """An inventory folder as an operator keeps it: the host in hosts.yml, the settings in group_vars."""
    os.makedirs(os.path.join(str(folder), "group_vars"))
    with open(os.path.join(str(folder), "hosts.yml"), "w") as handle:
        yaml.safe_dump({"all": {"children": {"app_servers": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": TARGET_PYTHON}}}}}}, handle)
    with open(os.path.join(str(folder), "group_vars", "app_servers.yml"), "w") as handle:
        yaml.safe_dump(settings, handle)
    return str(folder)


def _new_server_settings(tmp_path, server, identity, root: str, trusted: list) -> dict:
    os.makedirs(str(tmp_path / root / "systemd-system"), exist_ok=True)  # as a new server's /etc/systemd/system is
    return {"reddit_backup_hosts": "app_servers", "reddit_backup_app_root": str(tmp_path / root / "app"),
            "reddit_backup_backup_dir": str(tmp_path / root / "backups"),
            "reddit_backup_app_owner": "root", "reddit_backup_app_group": "root",
            "new_server_home": "/root", "new_server_shell": "/bin/bash",
            "reddit_backup_manage_services": False, "reddit_backup_identity_file": identity,
            "reddit_backup_remote": server.remote, "reddit_backup_remote_ssh_key": server.ssh_key,
            "reddit_backup_remote_known_hosts": server.known_hosts, "reddit_backup_health_check": False,
            "reddit_backup_trusted_signing_keys": trusted,
            # the new server's app root is another path than the old one's, on purpose; and this host gets no runner
            "reddit_backup_restore_to_other_root": True, "reddit_backup_dr_runner": False,
            # the restored unit files go to the test's own folder, never to this machine's /etc/systemd/system
            "reddit_backup_systemd_dir": str(tmp_path / root / "systemd-system")}


def test_disaster_recovery_restores_a_signed_backup_and_refuses_a_forged_one(
        backup_server, sample_app, tmp_path, play):  # noqa: F811
    shutil.rmtree(backup_server.folder, ignore_errors=True)
    os.makedirs(backup_server.folder, 0o700)
    identity, recipient = _age_key(tmp_path)
    signing_key = str(tmp_path / "signing_key")
    public_key = ed25519(signing_key)
    old_backups = tmp_path / "old-backups"
    made = play([
        {"name": "backup", "devops.reddit_backup.backup_create": {
            "app_root": str(sample_app), "backup_dir": str(old_backups), "encryption_recipients": [recipient],
            "signing_key": signing_key}},
        {"name": "push", "devops.reddit_backup.backup_sync": dict(backup_dir=str(old_backups),
                                                                 **backup_server.options())},
        {"name": "list", "devops.reddit_backup.backup_info": {"backup_dir": str(old_backups)}},
    ])
    assert not made.failed, made.stderr
    backup = made.result("backup")
    assert backup["signed"] and backup["signature_key"].startswith("SHA256:")
    assert "PRIVATE" not in str(made.data)
    listed = made.result("list")["backups"][0]
    assert listed["signed"] and listed["signature_key"] == backup["signature_key"]
    genuine_env = (sample_app / "config" / "production.env").read_text()

    settings = _new_server_settings(tmp_path, backup_server, identity, "new-server", [public_key])
    inventory = _inventory(tmp_path / "inventory", settings)
    result = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "disaster_recovery.yml"), inventory=inventory)
    assert not result.failed, result.stderr + str(result.data)[-3000:]
    assert result.result(DR_PULL)["transferred"]
    restored = result.result("Restore from the backup, scope full")
    assert restored["authenticated"] and restored["signed_by"]["key"] == backup["signature_key"]
    assert (tmp_path / "new-server" / "app" / "config" / "production.env").read_text() == genuine_env

    # On the backup server, the backup is replaced by one made with the age public key alone.
    relative = os.path.relpath(backup["archive"], str(old_backups))
    planted = {"archive": os.path.join(backup_server.folder, relative), "name": backup["name"],
               "created": backup["created"]}
    forge(tmp_path, sample_app, planted, recipients=[recipient])
    settings = _new_server_settings(tmp_path, backup_server, identity, "second-server", [public_key])
    inventory = _inventory(tmp_path / "inventory-2", settings)
    refused = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "disaster_recovery.yml"), inventory=inventory)
    assert refused.failed
    assert "not authentic" in str(refused.data) and "does not match the catalog entry" in str(refused.data)
    env = tmp_path / "second-server" / "app" / "config" / "production.env"
    assert not env.exists() or "EVIL" not in env.read_text()


def test_the_modules_sign_verify_and_refuse(sample_app, tmp_path, play):
    signing_key = str(tmp_path / "signing_key")
    public_key = ed25519(signing_key)
    stranger = ed25519(str(tmp_path / "stranger"))
    backups = str(tmp_path / "backups")
    made = play([
        {"name": "backup", "devops.reddit_backup.backup_create": {
            "app_root": str(sample_app), "backup_dir": backups, "signing_key": signing_key}},
        {"name": "trusted", "devops.reddit_backup.backup_verify": {
            "backup_dir": backups, "trusted_signing_keys": [public_key]}},
        {"name": "unchecked", "devops.reddit_backup.backup_verify": {"backup_dir": backups}},
        {"name": "other key", "devops.reddit_backup.backup_verify": {
            "backup_dir": backups, "trusted_signing_keys": [stranger], "fail_on_invalid": False}},
        {"name": "restore refused", "devops.reddit_backup.backup_restore": {
            "backup_dir": backups, "dest": str(tmp_path / "restored"), "trusted_signing_keys": [stranger]},
         "ignore_errors": True},
    ])
    assert not made.failed, made.stderr
    assert made.result("trusted")["authenticated"] and made.result("trusted")["valid"]
    assert made.result("unchecked")["valid"] and not made.result("unchecked")["authenticated"]
    assert made.result("unchecked")["authenticity"].startswith("not checked")
    other = made.result("other key")
    assert other["status"] == "invalid" and "not a trusted signing key" in other["reason"]
    assert "not a trusted signing key" in made.result("restore refused")["msg"]
    assert not (tmp_path / "restored").exists()
    os.chmod(signing_key, 0o644)
    loose = play([{"name": "backup", "devops.reddit_backup.backup_create": {
        "app_root": str(sample_app), "backup_dir": backups, "signing_key": signing_key}}])
    assert loose.failed and "signing_key %s has mode 0644" % signing_key in loose.result("backup")["msg"]
