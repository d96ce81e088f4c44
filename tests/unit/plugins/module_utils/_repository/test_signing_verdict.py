"""The recorded verdict (.verify.json) is a cache of the last verification, never a reason to trust a backup: an
unsigned backup that verified valid without trusted keys, its verdict recorded and listed as current, is still
refused by verify and by restore once trusted keys are given, and dest is not created."""

from __future__ import annotations

import json

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import (  # noqa: F401  (fixtures)
    restore_into, signed_backup as backup, signer, sound_logging_conf, verify,
)


def test_a_recorded_valid_verdict_is_never_a_reason_to_trust_a_backup(app, tmp_path, signer):  # noqa: F811
    made = backup(app, tmp_path / "backups")
    assert verify(made["archive"])["status"] == "valid"
    with open(made["archive"] + ".verify.json") as handle:
        assert json.load(handle)["status"] == "valid"
    listed = list_backups(str(tmp_path / "backups"))[0]["verified"]
    assert listed["status"] == "valid" and listed["current"]
    refused = verify(made["archive"], [signer["host"][1]])
    assert refused["status"] == "invalid" and "is not signed" in refused["reason"]
    with pytest.raises(BackupError, match="is not signed"):
        restore_into(tmp_path / "backups", tmp_path / "restored", [signer["host"][1]])
    assert not (tmp_path / "restored").exists()
