"""_notify_policy: which runs notify, decided once for the monitoring role and the reddit-backup command."""

from __future__ import annotations

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.notify_policy import notification_for

GUIDE = ["failure", "recovery"]


@pytest.mark.parametrize("run, previous, notify_on, expected", [
    ("failed", None, GUIDE, "failed"),
    ("failed", "failed", GUIDE, "failed"),
    ("success", "failed", GUIDE, "recovered"),
    ("success", "success", GUIDE, None),
    ("success", None, GUIDE, None),
    ("success", None, ["failure", "success"], "succeeded"),
    ("success", "failed", ["success"], "succeeded"),
    ("failed", None, ["recovery"], None),
    ("success", "failed", [], None),
])
def test_the_decision(run, previous, notify_on, expected):
    assert notification_for(run, previous, notify_on) == expected


def test_wrong_input_is_named():
    with pytest.raises(BackupError, match="notify_on takes failure, recovery, success, not failures"):
        notification_for("failed", None, ["failures"])
    with pytest.raises(BackupError, match="a run's status is success or failed, not 'ok'"):
        notification_for("ok", None, GUIDE)
