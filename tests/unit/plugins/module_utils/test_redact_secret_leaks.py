"""A token in a webhook URL, a header or S3 credentials never reaches a reason or an error message, whatever is
wrong with the value; and bounds that would hang or overflow are refused with words."""

from __future__ import annotations

import json
import time

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring import notify as _notify
from ansible_collections.devops.reddit_backup.plugins.module_utils import _redact
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

TOKEN = "T0KEN-abcdef-123456"


def event() -> dict:
    return _notify.build_event("reddit-sentiment", "backup", "failed", "disk full")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hooks/%s x" % TOKEN,           # the space that made http.client quote the URL
    "http://127.0.0.1:9/hooks/%s\n" % TOKEN,
    "http://127.0.0.1:9/hooks?token=%s\r\nX: y" % TOKEN,
    "http://user:%s@127.0.0.1:99999999/" % TOKEN,       # a port out of range
    "http://user:%s@[::1/" % TOKEN,                    # unparseable
    "https://%s" % TOKEN.replace("-", " "),
])
def test_bad_webhook_urls_are_refused_without_quoting_them(url):
    result = _notify.notify(event(), webhook_url=url, timeout=1, attempts=1)
    assert result["delivered"] is False
    assert TOKEN not in json.dumps(result) and TOKEN.replace("-", " ") not in json.dumps(result)
    assert "webhook URL" in result["reason"]


def test_a_header_with_a_line_break_is_refused_by_name_not_value():
    result = _notify.notify(event(), webhook_url="http://127.0.0.1:9/h",
                            webhook_headers={"Authorization": "Bearer %s\n" % TOKEN}, timeout=1, attempts=1)
    assert result["delivered"] is False and TOKEN not in json.dumps(result)
    assert "header Authorization" in result["reason"]


def test_unreachable_webhook_reason_holds_no_token():
    result = _notify.notify(event(), webhook_url="http://user:%s@127.0.0.1:9/hooks/%s?k=%s" % (TOKEN, TOKEN, TOKEN),
                            webhook_headers={"X-Token": TOKEN}, timeout=1, attempts=1)
    assert result["delivered"] is False and "cannot reach http://127.0.0.1:9/" in result["reason"]
    assert TOKEN not in json.dumps(result)


def test_an_unexpected_error_quoting_a_secret_is_scrubbed(monkeypatch):
    def explode(url, *args, **kwargs):
        raise RuntimeError("failed for %s" % url)
    monkeypatch.setattr(_notify, "post_webhook", explode)
    result = _notify.notify(event(), webhook_url="http://127.0.0.1:9/hooks/%s" % TOKEN)
    assert result["delivered"] is False and TOKEN not in json.dumps(result)


@pytest.mark.parametrize("options,words", [
    ({"attempts": 99999999999999999999}, "attempts must be"),
    ({"attempts": 0}, "attempts must be"),
    ({"timeout": float("nan")}, "timeout must be"),
    ({"timeout": 1e308}, "timeout must be"),
    ({"smtp_port": 99999999}, "smtp_port must be"),
])
def test_absurd_bounds_are_refused_in_words_without_waiting(options, words):
    started = time.monotonic()
    result = _notify.notify(event(), webhook_url="http://127.0.0.1:9/", mail_to=["ops@example.com"],
                            **dict({"timeout": 1, "attempts": 1}, **options))
    assert result["delivered"] is False and words in result["reason"]
    assert time.monotonic() - started < 2


def test_scrub_replaces_percent_encoded_forms():
    assert TOKEN not in _redact.scrub("GET /a%%20b/%s failed" % TOKEN, ["/a b/" + TOKEN, TOKEN])
    assert "…" in _redact.scrub("x %s y" % TOKEN, _redact.secrets_of_url("http://h/p?token=%s" % TOKEN))


def test_s3_endpoint_with_a_token_and_a_space_is_refused_without_it():
    pytest.importorskip("boto3")
    from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.s3 import S3Store
    with pytest.raises(BackupError) as raised:
        S3Store("bucket", "prefix", endpoint_url="http://127.0.0.1:9/%s x" % TOKEN, access_key="AK",
                secret_key=TOKEN)
    assert TOKEN not in str(raised.value) and "s3_endpoint_url" in str(raised.value)


def test_s3_bad_region_is_refused_without_credentials():
    pytest.importorskip("boto3")
    from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.s3 import S3Store
    with pytest.raises(BackupError) as raised:
        S3Store("bucket", "prefix", region="bad region\n", access_key="AKIDEXAMPLE", secret_key=TOKEN)
    assert TOKEN not in str(raised.value) and "s3_region" in str(raised.value)
