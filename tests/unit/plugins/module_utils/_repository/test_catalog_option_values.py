"""Absurd times, durations and retention counts end in an error that says what is wrong, never a Python one."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError


@pytest.mark.parametrize("value", ["99999999999999999999", "99999999 weeks ago",
                                   "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_beyond_the_calendar_are_named(value):
    with pytest.raises(BackupError, match="out of range"):
        _catalog.parse_time(value)


@pytest.mark.parametrize("value", ["", "x\n", "..", "/", "1e5", "10000-01-01"])
def test_unreadable_times_are_named(value):
    with pytest.raises(BackupError, match="cannot read the time"):
        _catalog.parse_time(value)


def test_a_newline_terminated_time_still_reads():
    assert _catalog.parse_time("2025-05-28T14:00:00Z\n") == datetime(2025, 5, 28, 14, tzinfo=timezone.utc)


def test_a_duration_beyond_1000_years_is_named():
    with pytest.raises(BackupError, match="longer than 1000 years"):
        _retention.parse_duration("99999999999999y")


@pytest.mark.parametrize("policy,words", [
    ({"full": {"keep_last": "many"}}, "policy.full.keep_last must be a whole number"),
    ({"full": {"keep_last": -1}}, "policy.full.keep_last must be a whole number"),
    ({"full": {"keep_daily": 1e308}}, "policy.full.keep_daily"),
    ({"full": {"keep_weekly": True}}, "policy.full.keep_weekly"),
    ({"full": 5}, "policy.full must be a mapping"),
])
def test_bad_counts_and_shapes_are_named(policy, words):
    with pytest.raises(BackupError, match=words):
        _retention.effective_policy(policy)


def test_counts_given_as_text_still_work():
    assert _retention.effective_policy({"full": {"keep_last": "3"}})["full"] == {"keep_last": 3}


def test_keep_within_reaching_before_year_1_keeps_everything():
    backups = [{"archive": "a", "type": "full", "named": False, "name": "a", "created": "0002-01-01T00:00:00Z"}]
    reasons = _retention.plan(backups, {"full": {"keep_within": "999y"}},
                              now=datetime(500, 1, 1, tzinfo=timezone.utc))
    assert any("keep_within" in reason for reason in reasons["a"])


# What the option fuzz (tests/integration/test_option_fuzz.py) found, each refused in words before any work.

def test_a_scope_of_the_wrong_type_is_named():
    from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import parse_scope
    for scope in (99999999999999999999, {"x": 1}, ["config", 5]):
        with pytest.raises(BackupError, match="scope must be one of"):
            parse_scope(scope)


@pytest.mark.parametrize("owner,group", [("nul\x00byte", None), (None, "nul\x00byte"), ("no-such-user-x", None)])
def test_an_owner_or_group_no_account_has_is_named(owner, group):
    from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import owner_ids
    with pytest.raises(BackupError, match="unknown owner"):
        owner_ids(owner, group)


@pytest.mark.parametrize("required", [[""], ["/"], ["x\n"], ["nul\x00byte"], ["../etc/passwd"]])
def test_an_impossible_required_path_is_named_before_verifying(required, tmp_path):
    from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import Verifier
    with pytest.raises(BackupError, match="required entry 1 is empty"):
        Verifier("quick", str(tmp_path), required)
    Verifier("quick", str(tmp_path), ["config/production.env", "data/my db.db"])


@pytest.mark.parametrize("settings,words", [
    ({"mail_to": ["ops@example.com\n"]}, "mail_to entry 1 is empty or holds a line break"),
    ({"mail_to": [""]}, "mail_to entry 1 is empty"),
    ({"mail_to": ["ops@example.com"], "mail_from": "a\x00b"}, "mail_from holds a line break"),
    ({"mail_to": ["ops@example.com"], "smtp_host": "mail\nhost"}, "smtp_host is empty or holds")])
def test_mail_settings_an_smtp_dialogue_cannot_carry_are_named(settings, words):
    from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.notify import build_event, notify
    result = notify(build_event("app", "backup", "failed"), **settings)
    assert result["reason"].startswith(words) and not result["delivered"]


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0, -1, 1e308])
def test_a_remote_timeout_out_of_bounds_is_named(timeout, tmp_path):
    from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import SyncRequest, open_store
    with pytest.raises(BackupError, match="timeout must be a number of seconds above 0 and at most 3600"):
        open_store(SyncRequest(str(tmp_path), "ssh://u@127.0.0.1:1/srv", timeout=timeout))


@pytest.mark.parametrize("option", ["access_key", "secret_key", "session_token", "region"])
def test_s3_credentials_with_a_line_break_are_named_not_quoted(option):
    from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.s3 import S3Store
    secrets = {"access_key": "AKIAFUZZ", "secret_key": "s3cr3t-value", option: "tok-5ecret-1234\n"}
    with pytest.raises(BackupError) as error:
        S3Store("bucket", "prefix", endpoint_url="http://127.0.0.1:1", **secrets)
    assert str(error.value) == "s3_%s holds a space, a line break or a control character; remove it" % option
