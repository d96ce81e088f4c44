# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cron_to_oncalendar
short_description: Turn a cron expression into the systemd OnCalendar expression that fires at the same moments
version_added: 0.1.0
description:
  - Reads a five-field cron expression (minute, hour, day of month, month, day of week; numbers, names, C(*),
    lists, ranges and steps) or a macro (C(@hourly), C(@daily), C(@weekly), C(@monthly), C(@yearly)) and returns
    the C(OnCalendar=) expression of a systemd timer that fires at exactly the same moments.
  - One schedule setting (the guide's C(BACKUP_SCHEDULE="0 2 * * *")) so drives cron files and systemd timers alike.
  - Fails for expressions with no exact translation (both day of month and day of week restricted, where cron
    runs when either matches and systemd only when both do) and for anything that is not a valid cron expression.
author:
  - devops.reddit_backup developers (@devops)
options:
  _input:
    description: The cron expression.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The guide's daily 02:00 backup as a timer
  ansible.builtin.debug:
    msg: "OnCalendar={{ '0 2 * * *' | devops.reddit_backup.cron_to_oncalendar }}"  # *-*-* 02:00:00

- name: Every 6 hours
  ansible.builtin.debug:
    msg: "{{ '0 */6 * * *' | devops.reddit_backup.cron_to_oncalendar }}"  # *-*-* 00/6:00:00
"""

RETURN = r"""
_value:
  description: The OnCalendar expression, such as C(Sun *-*-* 03:00:00).
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._runner.schedule import cron_to_oncalendar as convert


def cron_to_oncalendar(expression):
    try:
        return convert(expression)
    except BackupError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    """The devops.reddit_backup schedule filters."""

    def filters(self):
        return {"cron_to_oncalendar": cron_to_oncalendar}
