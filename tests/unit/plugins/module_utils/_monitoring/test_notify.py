"""Notifications: a real webhook server and a real SMTP server on 127.0.0.1; failures come back as reasons."""

from __future__ import annotations

import email
import email.policy
import time
from datetime import datetime, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring import notify as _notify
from tests.notifyservers import closed_port, smtp, webhook  # noqa: F401  (fixtures)

MOMENT = datetime(2025, 5, 28, 2, 0, 5, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(_notify, "RETRY_PAUSE", 0.01)


def event(**overrides):
    values = dict(app="reddit-sentiment", operation="backup", status="failed", message="no space left",
                  backup_type="full", host="app1", details={"duration": 3.5}, now=MOMENT)
    values.update(overrides)
    return _notify.build_event(**values)


def test_event_has_the_fields_and_a_one_line_text():
    body = event()
    assert body["source"] == "devops.reddit_backup"
    assert body["time"] == "2025-05-28T02:00:05Z"
    assert (body["app"], body["host"], body["operation"], body["type"], body["status"]) == \
        ("reddit-sentiment", "app1", "backup", "full", "failed")
    assert body["text"] == "reddit-backup: full backup of reddit-sentiment on app1 FAILED: no space left"
    assert "operation of" not in event(backup_type="all", operation="cleanup")["text"]


def test_webhook_delivers_json(webhook):  # noqa: F811
    result = _notify.notify(event(), webhook_url=webhook.url("/hooks/T0K3N"), webhook_headers={"X-Team": "ops"})
    assert result["delivered"] is True
    assert result["channels"]["webhook"]["status"] == 200
    path, headers, body = webhook.requests[0]
    assert path == "/hooks/T0K3N"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Team"] == "ops"
    assert body == event()
    assert "T0K3N" not in result["reason"]


def test_server_errors_are_retried_then_delivered(webhook):  # noqa: F811
    webhook.responses = [503, 200]
    result = _notify.notify(event(), webhook_url=webhook.url(), attempts=2)
    assert result["delivered"] is True
    assert result["channels"]["webhook"]["attempts"] == 2
    assert len(webhook.requests) == 2


def test_client_errors_are_not_retried(webhook):  # noqa: F811
    webhook.responses = [404]
    result = _notify.notify(event(), webhook_url=webhook.url(), attempts=3)
    assert result["delivered"] is False
    assert "HTTP 404" in result["reason"]
    assert len(webhook.requests) == 1


def test_a_redirect_is_not_a_delivery(webhook):  # noqa: F811
    webhook.responses = [302]
    result = _notify.notify(event(), webhook_url=webhook.url())
    assert result["delivered"] is False
    assert "redirect" in result["reason"]
    assert "secret" not in result["reason"]


def test_unreachable_webhook_is_a_reason_not_an_exception():
    started = time.monotonic()
    result = _notify.notify(event(), webhook_url="http://127.0.0.1:%d/hook?token=s3cr3t" % closed_port(),
                            attempts=2, timeout=2)
    assert result["delivered"] is False
    assert "cannot reach http://127.0.0.1" in result["reason"]
    assert "s3cr3t" not in result["reason"]
    assert result["channels"]["webhook"]["attempts"] == 2
    assert time.monotonic() - started < 5


def test_a_hanging_webhook_is_bounded_by_the_timeout(webhook):  # noqa: F811
    webhook.delay = 3
    started = time.monotonic()
    result = _notify.notify(event(), webhook_url=webhook.url(), timeout=0.5, attempts=2)
    elapsed = time.monotonic() - started
    assert result["delivered"] is False
    assert elapsed < 2.5, "two attempts of 0.5 s each took %.1f s" % elapsed


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "file:///etc/passwd"])
def test_only_http_webhooks(url):
    result = _notify.notify(event(), webhook_url=url)
    assert result["delivered"] is False
    assert "not http(s)" in result["reason"]


def test_nothing_configured_is_not_delivered():
    result = _notify.notify(event())
    assert result == {"delivered": False, "channels": {},
                      "reason": "no channel configured (give a webhook URL or mail recipients)"}


def test_mail_through_a_local_mta(smtp):  # noqa: F811
    result = _notify.notify(event(), mail_to=["ops@example.com"], mail_from="backup@app1",
                            smtp_host="127.0.0.1", smtp_port=smtp.port)
    assert result["delivered"] is True, result
    sender, recipients, data = smtp.messages[0]
    assert recipients == ["ops@example.com"]
    assert "backup@app1" in sender
    message = email.message_from_string(data, policy=email.policy.default)
    assert message["Subject"].strip() == "reddit-backup: full backup of reddit-sentiment on app1 FAILED: no space left"
    assert '"operation": "backup"' in message.get_content()


def test_refused_recipient_and_partial_failure(smtp, webhook):  # noqa: F811
    result = _notify.notify(event(), webhook_url=webhook.url(), mail_to=["nobody@example.com"],
                            smtp_host="127.0.0.1", smtp_port=smtp.port)
    assert result["delivered"] is False
    assert result["channels"]["webhook"]["delivered"] is True
    assert result["channels"]["mail"]["delivered"] is False
    assert result["reason"].startswith("mail: ")


def test_mail_to_a_closed_port_is_a_reason():
    result = _notify.notify(event(), mail_to=["ops@example.com"], smtp_host="127.0.0.1", smtp_port=closed_port(),
                            timeout=2)
    assert result["delivered"] is False
    assert "mail through 127.0.0.1" in result["reason"]


def test_unexpected_errors_never_escape(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_notify, "post_webhook", explode)
    result = _notify.notify(event(), webhook_url="http://127.0.0.1:1/")
    assert result["delivered"] is False
    assert "RuntimeError: boom" in result["reason"]
