# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The backup directory of every module that writes to one (argument spec: _option_specs.BACKUP_DIR)."""

    DOCUMENTATION = r"""
options:
  backup_dir:
    description:
      - The backup directory, laid out as the guide's C(daily/), C(incremental/), C(config/), C(database/) and
        C(manual/) folders.
      - Created as mode C(0700) when missing; backups in it are C(0600).
    type: path
    required: true
"""
