# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets never reach a result, a log or a notification: URLs are checked up front and named by scheme, host and
port only, and any text built from an exception is scrubbed of the secrets it might quote."""

from __future__ import annotations

import re
import urllib.parse

# Whitespace and control characters: what makes http.client quote the whole URL (and its token) in an error.
UNSAFE_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")
HIDDEN = "…"


def redact_url(url: str) -> str:
    """scheme://host:port/… — enough to say where, never the user info, path or query that may carry a token."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        port = ":%d" % parts.port if parts.port else ""
        host = parts.hostname or "?"
    except ValueError:
        return "<unparseable URL>"
    if UNSAFE_CHARACTERS.search(host):
        host = "?"
    return "%s://%s%s/%s" % (parts.scheme or "?", host, port, HIDDEN)


def url_problem(url: str, option: str) -> str:
    """None for a usable http(s) URL, else what is wrong with it, in words that never quote it."""
    where = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(str(url))
        scheme = parts.scheme
    except ValueError:
        return "%s %s is not a valid URL" % (option, where)
    if scheme not in ("http", "https"):
        return "%s %s is not http(s)" % (option, where)
    if UNSAFE_CHARACTERS.search(str(url)):
        return ("%s %s holds a space, a line break or a control character; remove it (percent-encode what must "
                "stay, e.g. a space as %%20)" % (option, where))
    try:
        parts.port  # pylint: disable=pointless-statement  # raises ValueError for a port out of range
    except ValueError:
        return "%s %s has a port out of range (1 to 65535)" % (option, where)
    if not parts.hostname:
        return "%s %s has no host" % (option, where)
    return None


def header_problem(headers: dict, option: str) -> str:
    """None when every header name and value can be sent as is; the message names the header, never its value."""
    for name, value in (headers or {}).items():
        if not str(name) or UNSAFE_CHARACTERS.search(str(name)) or ":" in str(name):
            return "%s has a header name that is empty or holds a space, a colon or a control character" % option
        if UNSAFE_CHARACTERS.search(str(value).replace(" ", "").replace("\t", "")):
            return "%s: the value of header %s holds a line break or a control character; remove it" % (option, name)
    return None


def secrets_of_url(url: str) -> list:
    """The parts of ``url`` that may carry a secret: user info, path, query and fragment (and the whole URL)."""
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError:
        return [str(url)]
    found = [str(url), parts.path, parts.query, parts.fragment, parts.netloc.rpartition("@")[0]]
    found += [value for _key, value in urllib.parse.parse_qsl(parts.query)]
    found += [segment for segment in parts.path.split("/") if len(segment) >= 8]
    return found


def scrub(text: str, secrets) -> str:
    """``text`` with every secret (and its percent-encoded form) replaced by an ellipsis."""
    text = str(text)
    for secret in sorted({str(s) for s in secrets if s and len(str(s)) >= 4}, key=len, reverse=True):
        for form in dict.fromkeys([secret, urllib.parse.quote(secret), urllib.parse.quote(secret, safe="")]):
            text = text.replace(form, HIDDEN)
    return text
