# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which runs notify whom: one decision for the monitoring role's record step (through backup_notify) and the
reddit-backup command alike, from the run's status, the previous run's status and ``notify_on``."""

from __future__ import annotations

from typing import Optional

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

NOTIFY_ON = ("failure", "recovery", "success")
RUN_STATUSES = ("success", "failed")


def notification_for(run_status: str, previous_status: Optional[str], notify_on) -> Optional[str]:
    """``failed``, ``recovered`` (the first success after a failure), ``succeeded`` or None (no notification)."""
    unknown = sorted(set(notify_on) - set(NOTIFY_ON))
    if unknown:
        raise BackupError("notify_on takes %s, not %s" % (", ".join(NOTIFY_ON), ", ".join(unknown)))
    if run_status not in RUN_STATUSES:
        raise BackupError("a run's status is %s, not %r" % (" or ".join(RUN_STATUSES), run_status))
    if run_status == "failed":
        return "failed" if "failure" in notify_on else None
    if previous_status == "failed" and "recovery" in notify_on:
        return "recovered"
    return "succeeded" if "success" in notify_on else None
