#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_safety_copies
short_description: List the safety copies restores left, and remove those a retention rule no longer keeps
version_added: 0.1.0
description:
  - By default (M(devops.reddit_backup.backup_restore)'s C(safety_copy)) a restore moves what it replaces aside as a
    safety copy, C(<item>.pre-restore-<UTC stamp>) below the app root (a partial restore, such as C(data.pre-restore-20250528T140312Z)),
    C(<app root>.pre-restore-<stamp>) beside it (a full restore), or C(pre-restore-<stamp>) inside it (a full
    restore of an app root that is a mount point). Backups never take them.
  - The rule, per item (C(data), C(config/production.env), the whole app root), is that the O(keep) newest safety copies
    stay, and none older than O(max_age) (the age is the restore's time in the name). The same rule runs after
    every restore (M(devops.reddit_backup.backup_restore)'s C(safety_copies_keep) and C(safety_copies_max_age)).
  - The app user owns the app root and may plant links or folders named like safety copies. The search and every
    removal go through folder descriptors and never follow a symbolic link, so a planted link is removed as a link
    and nothing outside the app root and its parent is reached. Runs under the lock a restore takes on the app
    root's parent, waiting O(lock_timeout) for a running restore.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
  - devops.reddit_backup.lock_timeout
attributes:
  check_mode:
    support: full
    details: Check mode lists the safety copies and what would be removed, and removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: With a fixed O(now), a second run finds nothing more to remove.
options:
  app_root:
    description: The application directory the restores went into (their C(dest)).
    type: path
    required: true
  keep:
    description: Of each item's safety copies, how many of the newest to keep (0 keeps none).
    type: int
    default: 3
  max_age:
    description:
      - Remove safety copies older than this, however few there are. A duration such as C(7d), C(48h), C(2w).
      - An empty string sets no age limit.
    type: str
    default: 7d
  remove:
    description:
      - Safety copies to remove now whatever the rule says, as RV(safety_copies) lists them (absolute paths).
        A path that is not a safety copy of O(app_root) fails the task and nothing is removed.
    type: list
    elements: path
    default: []
  prune:
    description: Apply the rule. V(false) only lists them (and removes O(remove)).
    type: bool
    default: true
  now:
    description:
      - Judge ages as of this moment instead of the current time (previews, reproducible runs). ISO-8601,
        C(YYYYmmdd_HHMMSS), epoch seconds, or a phrase such as C(3 days ago).
    type: str
seealso:
  - module: devops.reddit_backup.backup_restore
"""

EXAMPLES = r"""
- name: Apply the rule (the 3 newest of each item, none older than 7 days)
  devops.reddit_backup.backup_safety_copies:
    app_root: /home/cayir/cicd_project

- name: List them without removing anything
  devops.reddit_backup.backup_safety_copies:
    app_root: /home/cayir/cicd_project
    prune: false
  register: safety

- name: Remove one that is no longer needed
  devops.reddit_backup.backup_safety_copies:
    app_root: /home/cayir/cicd_project
    prune: false
    remove:
      - /home/cayir/cicd_project/data.pre-restore-20250528T140312Z
"""

RETURN = r"""
safety_copies:
  description: Every safety copy found before anything was removed, oldest first, with the C(item) it holds the old
    state of, its C(kind) (C(dir), C(file), C(symlink)), when the restore C(created) it, and its C(age_seconds).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/home/cayir/cicd_project/data.pre-restore-20250528T140312Z", "item": "data", "kind": "dir",
            "created": "2025-05-28T14:03:12Z", "age_seconds": 3600}]
removed:
  description: The safety copies removed (in check mode, that would be removed), each with the C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/home/cayir/cicd_project/data.pre-restore-20250501T020000Z", "item": "data",
            "reason": "older than 7d"}]
kept:
  description: The safety copies kept, each with the C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/home/cayir/cicd_project/data.pre-restore-20250528T140312Z", "item": "data",
            "reason": "one of the 3 newest, within 7d"}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import parse_time
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._option_specs import LOCK_TIMEOUT, shared_options
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.safety import (
    DEFAULT_KEEP, DEFAULT_MAX_AGE, prune_safety_copies)


def main():
    module = AnsibleModule(
        argument_spec=shared_options(
            LOCK_TIMEOUT,
            app_root=dict(type="path", required=True),
            keep=dict(type="int", default=DEFAULT_KEEP),
            max_age=dict(type="str", default=DEFAULT_MAX_AGE),
            remove=dict(type="list", elements="path", default=[]),
            prune=dict(type="bool", default=True),
            now=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    with guarded(module, "handling safety copies"):
        run(module)


def run(module):
    params = module.params
    try:
        now = parse_time(params["now"]) if params["now"] else None
        keep, max_age = (params["keep"], params["max_age"]) if params["prune"] else (None, None)
        result = prune_safety_copies(params["app_root"], keep, max_age, params["remove"], now, module.check_mode,
                                     params["lock_timeout"])
    except BackupError as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
