# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How long a module waits for a lock another run holds (argument spec: _option_specs.LOCK_TIMEOUT)."""

    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for another run that holds the lock this task needs (the backup directory's; for a restore,
        the lock of the folder restored into) before failing.
      - The lock is released by the kernel when its holder dies, so a killed run never blocks the next one.
    type: float
    default: 60
"""
