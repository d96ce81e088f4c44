# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options shared by every module that works on a backup directory."""

    DOCUMENTATION = r"""
options:
  backup_dir:
    description:
      - The backup directory, laid out as the guide's C(daily/), C(incremental/), C(config/), C(database/) and
        C(manual/) folders.
      - Created as mode C(0700) when missing; backups in it are C(0600).
    type: path
    required: true
  lock_timeout:
    description:
      - Seconds to wait for another run that holds the backup directory's lock before failing.
      - The lock is released by the kernel when its holder dies, so a killed run never blocks the next one.
    type: float
    default: 60
"""
