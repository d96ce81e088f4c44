# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the RTO and RPO lines the restore playbooks print, one a line, in a file the scenario summarises.

Enabled by the molecule scenarios that run recoveries (ANSIBLE_CALLBACKS_ENABLED=recovery_times). The file is
$MOLECULE_EPHEMERAL_DIRECTORY/recovery_times.txt; each line is "<host>: <the line as printed>".
"""

from __future__ import annotations

import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: recovery_times
type: notification
short_description: Keep the RTO and RPO lines of restore playbooks in a file
description:
  - Appends every task message that starts with C(RTO ) or C(RPO ) to
    C($MOLECULE_EPHEMERAL_DIRECTORY/recovery_times.txt).
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "recovery_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        directory = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY") or "."
        self.path = os.path.join(directory, "recovery_times.txt")

    def v2_runner_on_ok(self, result) -> None:
        message = result._result.get("msg")
        if isinstance(message, str) and message.startswith(("RTO ", "RPO ")):
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write("%s: %s\n" % (result._host.get_name(), " ".join(message.split())))
