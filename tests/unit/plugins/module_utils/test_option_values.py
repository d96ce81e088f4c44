"""Absurd times, durations and retention counts end in an error that says what is wrong, never a Python one."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils import _catalog, _retention
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
