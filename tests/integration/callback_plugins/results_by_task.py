# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stdout callback for the option fuzz test: every result keyed by task name and host, as one JSON document.

Unlike results_json it stays right under the ``free`` strategy, where hosts run different tasks at the same time.
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: results_by_task
type: stdout
short_description: All task results keyed by task name and host, for the option fuzz test
description: Prints every task result of the run as one JSON document {task name {host result}}.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "results_by_task"

    def __init__(self) -> None:
        super().__init__()
        self.results: dict = {}

    def _record(self, result, **flags) -> None:
        self.results.setdefault(result._task.get_name(), {})[result._host.get_name()] = dict(result._result, **flags)

    def v2_runner_on_ok(self, result) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result) -> None:
        pass  # every case is skipped on every host but its own

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats) -> None:
        self._display.display(json.dumps(self.results, default=str))
