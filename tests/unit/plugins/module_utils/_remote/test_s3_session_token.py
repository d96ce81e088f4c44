"""The S3 session token (temporary credentials) is never logged and never in a result: the remote options declare
it no_log (so Ansible censors it), and a push, a pull and a failing run against the S3 API server on 127.0.0.1 never
return it or name it."""

from __future__ import annotations

import json

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import (
    REMOTE_ARGUMENT_SPEC, SyncRequest, sync)
from tests.unit.plugins.module_utils.builders import three_backups  # noqa: F401  (fixtures)
from tests.servers import s3_server  # noqa: F401  (a fixture)

TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKEN0123456789"


def test_the_session_token_is_no_log_like_the_secret_key():
    assert REMOTE_ARGUMENT_SPEC["s3_session_token"]["no_log"] is True
    assert REMOTE_ARGUMENT_SPEC["s3_secret_key"]["no_log"] is True


def test_the_session_token_is_in_no_result_and_no_message(s3_server, three_backups, tmp_path):  # noqa: F811
    backup_dir, made = three_backups
    options = dict(s3_server.options(s3_server.make_bucket("backups-token")), s3_session_token=TOKEN)
    pushed = sync(SyncRequest(backup_dir=str(backup_dir), **options))
    pulled = sync(SyncRequest(backup_dir=str(tmp_path / "pulled"), direction="pull", **options))
    assert len(pushed["transferred"]) == len(made) and len(pulled["transferred"]) == len(made)
    assert TOKEN not in json.dumps([pushed, pulled], default=str)
    missing = dict(options, remote="s3://no-such-bucket-here/app1")
    with pytest.raises(BackupError) as failed:
        sync(SyncRequest(backup_dir=str(backup_dir), **missing))
    assert TOKEN not in str(failed.value)
