"""Fixtures for every suite, and the rule that no test skips silently.

A test that skips fails the run unless tests/allowed_skips.txt lists it with its reason, so a missing tool makes
CI red instead of quietly testing less (REDDIT_BACKUP_ALLOW_SKIPS=1 turns a skip back into a skip on a machine
that lacks what CI has). A test that needs root says so with @pytest.mark.needs_root and fails without it."""

from __future__ import annotations

import os

import pytest

from tests.sampleapp import sample_app  # noqa: F401  (a fixture)

ALLOWED_SKIPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "allowed_skips.txt")


def allowed_skips(path: str = ALLOWED_SKIPS) -> dict:
    """node id (or its test without parameters) -> reason, from lines ``<node id>  # <reason>``."""
    allowed = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            node, _, reason = line.partition("#")
            if not reason.strip():
                raise pytest.UsageError("%s line %d lists %s without its reason (`<node id>  # <reason>`)"
                                        % (path, number, node.strip()))
            allowed[node.strip()] = reason.strip()
    return allowed


def _is_allowed(nodeid: str, allowed: dict) -> bool:
    return nodeid in allowed or nodeid.split("[")[0] in allowed


def pytest_configure(config) -> None:
    config._reddit_backup_allowed_skips = allowed_skips()


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("needs_root") and os.geteuid() != 0:
        pytest.fail("%s needs root (it sets owners or runs attacker steps as nobody); run the suite as root, as "
                    "CI does" % item.nodeid, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and not os.environ.get("REDDIT_BACKUP_ALLOW_SKIPS") \
            and not _is_allowed(item.nodeid, item.config._reddit_backup_allowed_skips):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = ("%s skipped (%s), and tests/allowed_skips.txt does not list it: install what it needs "
                           "(tools/setup.sh), or list it there with the reason" % (item.nodeid, reason))
