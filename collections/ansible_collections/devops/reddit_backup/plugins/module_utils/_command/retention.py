# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The retention policy the inventory sets, as the cleanup playbook builds it."""

from __future__ import annotations


def retention_policy(settings) -> dict:
    """reddit_backup_retention_policy when set, else reddit_backup_retention_days as keep_within rules."""
    policy = settings.setting("retention_policy")
    if policy is not None:
        return policy
    days = settings.setting("retention_days", {})
    return {backup_type: {"keep_within": "%sd" % count} for backup_type, count in days.items()}
