# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How a module picks one backup of a backup directory (argument specs: _option_specs.SELECTION and
    SELECTION_TYPE). Without either option, a module takes the newest backup that serves it."""

    DOCUMENTATION = r"""
options:
  before:
    description:
      - From the backup directory, the newest backup created at or before this moment (point-in-time recovery).
        ISO-8601 (C(2025-05-28T14:00:00Z); no zone means UTC), C(YYYYmmdd_HHMMSS), epoch seconds, or a phrase
        such as C(6 hours ago).
    type: str
  name:
    description: From the backup directory, the backup with this name (or archive file name).
    type: str
"""

    TYPE = r"""
options:
  type:
    description: Only consider backups of this type (when listing, list only those).
    type: str
    choices: [full, incremental, config, database]
"""
