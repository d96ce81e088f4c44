"""Private keys stay in their files: through a signed, encrypted backup, its verification and its restore, every
program the engine starts (age, ssh-keygen, zstd, ...) gets the key's path, never its content, on its command line
or in its environment, and no result carries the content either (what a module returns is what Ansible logs)."""

from __future__ import annotations

import json
import subprocess

from tests.unit.plugins.module_utils.builders import (  # noqa: F401  (fixtures)
    age_key, restore_into, signed_backup as backup, signer, sound_logging_conf, verify,
)


def secrets_of(path: str) -> list:
    """The lines of a private key file that are key material (not its armour)."""
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith(("-----", "#"))]


def test_private_keys_never_reach_a_command_line_an_environment_or_a_result(app, tmp_path, signer, age_key,  # noqa: F811
                                                                            monkeypatch):
    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, args, *more, **options):
            started.append(json.dumps([args, options.get("env")], default=str))
            super().__init__(args, *more, **options)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    made = backup(app, tmp_path / "backups", signer["host"][0], recipients=[age_key[1]])
    checked = verify(made["archive"], [signer["host"][1]], identity=age_key[0])
    restored = restore_into(tmp_path / "backups", tmp_path / "restored", [signer["host"][1]], identity=age_key[0])
    assert checked["status"] == "valid" and restored["changed"]
    assert any(age_key[0] in call for call in started) and any(signer["host"][0] in call for call in started)
    secrets = secrets_of(age_key[0]) + secrets_of(signer["host"][0])
    assert secrets and all(len(secret) > 20 for secret in secrets)
    seen = "\n".join(started) + json.dumps([made, checked, restored], default=str)
    assert [secret for secret in secrets if secret in seen] == []
