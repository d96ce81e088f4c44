# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verification verdict: ``<archive>.verify.json`` beside the archive, so the catalog shows when each backup
was last verified and with what result, without verifying it again."""

from __future__ import annotations

import json

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

VERDICT_SUFFIX = ".verify.json"
VERDICT_LIMIT = 4 << 20  # a verdict names at most ERRORS_KEPT problems: anything larger was not written here
ERRORS_KEPT = 20  # a verdict names the first problems; the task result has them all


def verdict_path(archive: str) -> str:
    return archive + VERDICT_SUFFIX


def write_verdict(archive: str, result: dict) -> str:
    """Record ``result`` (what backup_verify returns) beside ``archive``, atomically; returns the sidecar path."""
    verdict = {
        "verified_at": result["verified_at"],
        "level": result["level"],
        "status": result["status"],
        "valid": result["valid"],
        "reason": result["reason"],
        "archive_sha256": result.get("archive_sha256"),
        "duration": result.get("duration"),
        "errors": result["errors"][:ERRORS_KEPT],
        "failed_checks": [check["name"] for check in result["checks"] if not check["ok"]],
        "tool_version": result.get("tool_version"),
    }
    path = verdict_path(archive)
    _fs.atomic_write_bytes(path, (json.dumps(verdict, indent=1, sort_keys=True) + "\n").encode())
    return path


def read_verdict(archive: str):
    """The recorded verdict of ``archive``, or None when it was never verified (or the sidecar is unreadable)."""
    try:
        verdict = json.loads(_fs.read_regular(verdict_path(archive), VERDICT_LIMIT, what="verdict").decode("utf-8"))
    except _fs.PermissionDenied as error:  # recorded, but not for this user: say so instead of "never verified"
        return {"status": "unreadable", "valid": False, "reason": str(error)}
    except (OSError, ValueError, BackupError):
        return None
    return verdict if isinstance(verdict, dict) else None


def summary(archive: str, archive_sha256=None):
    """What the catalog shows of the verdict: when, how deep, the result; ``current`` is False when the archive
    changed since (its sha256 differs from the one that was verified)."""
    verdict = read_verdict(archive)
    if verdict is None:
        return None
    verified = verdict.get("archive_sha256")
    if not isinstance(verified, (str, type(None))):
        return None
    return {
        "at": verdict.get("verified_at"),
        "level": verdict.get("level"),
        "status": verdict.get("status"),
        "valid": verdict.get("valid") is True,
        "reason": verdict.get("reason"),
        "current": archive_sha256 is None or verified is None or verified == archive_sha256,
    }
