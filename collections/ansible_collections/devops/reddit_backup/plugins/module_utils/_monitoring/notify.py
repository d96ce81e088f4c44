# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notifications (the guide's BACKUP_NOTIFICATION): a JSON POST to a webhook and, optionally, a mail through a
local MTA.

A notification must never make a backup fail or hang: every channel is bounded by a timeout and a small number
of attempts, and every problem is reported as ``delivered: False`` with the reason instead of an exception.
"""

from __future__ import annotations

import json
import math
import smtplib
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from email.message import EmailMessage

from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import CONTROL_CHARACTERS
from ansible_collections.devops.reddit_backup.plugins.module_utils._redact import (
    UNSAFE_CHARACTERS, header_problem, redact_url, scrub, secrets_of_url, url_problem,
)

SOURCE = "devops.reddit_backup"
STATUSES = ("failed", "succeeded", "recovered", "warning")
RETRY_PAUSE = 1.0
USER_AGENT = "devops.reddit_backup-notify/1"
MAX_ATTEMPTS = 10
MAX_TIMEOUT = 3600


def build_event(app: str, operation: str, status: str, message: str = "", backup_type=None, host=None,
                details=None, now: datetime = None) -> dict:
    """The JSON body every channel sends. ``text`` is a one-line summary (Slack and Mattermost show it as is)."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    host = host or socket.gethostname()
    what = operation if not backup_type or backup_type == "all" else "%s %s" % (backup_type, operation)
    text = "reddit-backup: %s of %s on %s %s" % (what, app, host, status.upper())
    if message:
        text += ": %s" % message
    return {
        "source": SOURCE,
        "app": app,
        "host": host,
        "operation": operation,
        "type": backup_type,
        "status": status,
        "message": message or "",
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "details": details or {},
        "text": text,
    }


def _cause(error: BaseException) -> str:
    """Why a request failed, from the error's kind and errno only: never its text, which may quote the URL or a
    header (http.client puts the whole URL in InvalidURL, and a header's value in its ValueError)."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(reason, str) and isinstance(error, urllib.error.URLError):
        return reason
    return "the request could not be sent"


def settings_problem(timeout, attempts, smtp_port=25) -> str:
    """None when the bounds every channel relies on are sane, else what is wrong."""
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        return "timeout must be a number of seconds above 0 and at most %d, not %r" % (MAX_TIMEOUT, timeout)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS:
        return "attempts must be a whole number from 1 to %d, not %r" % (MAX_ATTEMPTS, attempts)
    if isinstance(smtp_port, bool) or not isinstance(smtp_port, int) or not 1 <= smtp_port <= 65535:
        return "smtp_port must be a port number from 1 to 65535, not %r" % (smtp_port,)
    return None


def mail_problem(mail_to, mail_from, smtp_host) -> str:
    """None when the mail settings can go into an SMTP dialogue as they are, else which one is wrong (smtplib would
    refuse a line break with a ValueError, and an empty recipient is nobody)."""
    for position, address in enumerate(mail_to or []):
        if not str(address).strip() or CONTROL_CHARACTERS.search(str(address)):
            return ("mail_to entry %d is empty or holds a line break or a control character; give addresses such "
                    "as ops@example.com" % (position + 1))
    if mail_from is not None and CONTROL_CHARACTERS.search(str(mail_from)):
        return "mail_from holds a line break or a control character; remove it"
    if mail_to and (not str(smtp_host or "").strip() or UNSAFE_CHARACTERS.search(str(smtp_host))):
        return "smtp_host is empty or holds a space, a line break or a control character; give a host name"
    return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected POST into a GET without body: that is not a delivery, so we refuse to follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401  (urllib's signature)
        return None


def post_webhook(url: str, event: dict, headers=None, timeout: float = 10.0, attempts: int = 2) -> dict:
    """POST ``event`` as JSON to ``url``; 2xx is a delivery. Connection problems and 5xx are retried once."""
    where = redact_url(url or "")
    problem = url_problem(url or "", "webhook URL") or header_problem(headers, "webhook headers")
    if problem:
        return {"delivered": False, "reason": problem, "attempts": 0}
    secrets = secrets_of_url(url) + [str(value) for value in (headers or {}).values()]
    body = json.dumps(event, sort_keys=True).encode()
    request_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    request_headers.update({str(key): str(value) for key, value in (headers or {}).items()})
    opener = urllib.request.build_opener(_NoRedirect)
    reason = "not attempted"
    attempts = max(1, int(attempts))
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, headers=request_headers, method="POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                status = response.status
            if 200 <= status < 300:
                return {"delivered": True, "status": status, "reason": "HTTP %d from %s" % (status, where),
                        "attempts": attempt}
            reason = "HTTP %d from %s" % (status, where)
            retry = False
        except urllib.error.HTTPError as error:
            location = error.headers.get("Location") if error.headers else None
            reason = "HTTP %d from %s" % (error.code, where)
            if 300 <= error.code < 400:
                reason += " (redirect to %s; configure the final URL)" % redact_url(location or "")
            retry = error.code >= 500 or error.code == 429
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = "cannot reach %s: %s" % (where, _cause(error))
            retry = True
        if not retry or attempt == attempts:
            return {"delivered": False, "reason": scrub(reason, secrets), "attempts": attempt}
        time.sleep(RETRY_PAUSE)
    return {"delivered": False, "reason": reason, "attempts": attempts}


def send_mail(event: dict, mail_to, mail_from: str = None, smtp_host: str = "localhost", smtp_port: int = 25,
              timeout: float = 10.0) -> dict:
    """Send ``event`` as a plain-text mail through the MTA at ``smtp_host:smtp_port`` (no authentication: a local
    MTA relays it)."""
    recipients = [address for address in (mail_to or []) if address]
    if not recipients:
        return {"delivered": False, "reason": "no mail recipient"}
    message = EmailMessage()
    message["Subject"] = event["text"][:200]
    message["From"] = mail_from or "reddit-backup@%s" % event.get("host", socket.gethostname())
    message["To"] = ", ".join(recipients)
    message.set_content("%s\n\n%s\n" % (event["text"], json.dumps(event, indent=2, sort_keys=True)))
    try:
        with smtplib.SMTP(smtp_host, int(smtp_port), timeout=timeout) as client:
            refused = client.send_message(message)
    except (smtplib.SMTPException, OSError, ValueError) as error:
        cause = error.strerror if isinstance(error, OSError) and error.strerror else _mail_cause(error)
        return {"delivered": False, "reason": "mail through %s:%s failed: %s" % (smtp_host, smtp_port, cause)}
    if refused:
        return {"delivered": False, "reason": "the MTA refused %s" % ", ".join(sorted(refused))}
    return {"delivered": True, "reason": "accepted by %s:%s for %s" % (smtp_host, smtp_port, ", ".join(recipients))}


def _mail_cause(error: BaseException) -> str:
    """The MTA's answer (code and text) when it gave one; a mail carries no secret of ours (no SMTP login)."""
    if isinstance(error, smtplib.SMTPResponseException):
        return "%s %s" % (error.smtp_code, error.smtp_error.decode("utf-8", "replace"))
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "the MTA refused %s" % ", ".join(sorted(error.recipients))
    if isinstance(error, smtplib.SMTPException):
        return str(error)
    return "an address or a header of the mail is malformed"


def notify(event: dict, webhook_url: str = None, webhook_headers=None, mail_to=None, mail_from: str = None,
           smtp_host: str = "localhost", smtp_port: int = 25, timeout: float = 10.0, attempts: int = 2) -> dict:
    """Send ``event`` on every configured channel. ``delivered`` is True when every configured channel
    delivered; ``channels`` says how each one did. Never raises."""
    channels = {}
    problem = settings_problem(timeout, attempts, smtp_port) or mail_problem(mail_to, mail_from, smtp_host)
    if problem:
        return {"delivered": False, "reason": problem, "channels": {}}
    try:
        if webhook_url:
            channels["webhook"] = post_webhook(webhook_url, event, webhook_headers, timeout, attempts)
        if mail_to:
            channels["mail"] = send_mail(event, mail_to, mail_from, smtp_host, smtp_port, timeout)
    except Exception as error:  # pylint: disable=broad-except  # a notification never fails its caller
        secrets = secrets_of_url(webhook_url or "") + [str(value) for value in (webhook_headers or {}).values()]
        channels["error"] = {"delivered": False, "reason": scrub(
            "unexpected %s: %s (a bug in devops.reddit_backup; please report it)" % (type(error).__name__, error),
            secrets)}
    if not channels:
        return {"delivered": False, "reason": "no channel configured (give a webhook URL or mail recipients)",
                "channels": {}}
    failed = {name: result for name, result in channels.items() if not result["delivered"]}
    if failed:
        reason = "; ".join("%s: %s" % (name, result["reason"]) for name, result in sorted(failed.items()))
    else:
        reason = "; ".join("%s: %s" % (name, result["reason"]) for name, result in sorted(channels.items()))
    return {"delivered": not failed, "reason": reason, "channels": channels}
