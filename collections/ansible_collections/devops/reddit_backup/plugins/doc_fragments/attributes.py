# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The attributes every module documents; each module says its own support and details."""

    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description: Whether running the module twice gives the same result and no change the second time.
"""

    # The modules of the action group in meta/runtime.yml (module_defaults: group/devops.reddit_backup.reddit_backup).
    ACTION_GROUP = r"""
attributes:
  action_group:
    description: Use C(group/devops.reddit_backup.reddit_backup) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - devops.reddit_backup.reddit_backup
"""
