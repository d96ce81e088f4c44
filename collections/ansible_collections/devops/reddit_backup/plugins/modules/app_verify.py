#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: app_verify
short_description: Check an application tree in place, as the guide's verify-restore does
version_added: 0.1.0
description:
  - After a restore (or in a recovery drill's temporary folder), checks the application where it lies, with the
    engine's own checks, the ones M(devops.reddit_backup.backup_verify) runs on an archive.
  - Every SQLite database through C(PRAGMA integrity_check), opened read-only (with its C(-wal) when there is one, so
    committed transactions count; otherwise immutable, so nothing is created beside it).
  - Every configuration file under C(config/), C(monitoring/) and C(systemd/) parsed as its reader parses it
    (C(*.env) as C(KEY=VALUE) lines, C(logging*.conf) as the INI C(logging.config.fileConfig) needs, YAML, JSON,
    systemd units); nothing is executed.
  - The O(required) paths must exist. Nothing under the tree is followed through a symlink.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  app_root:
    description: The application directory to check.
    type: path
    required: true
  databases:
    description:
      - The databases to check, relative to O(app_root) (such as C(data/reddit_sentiment.db)). Unset, every SQLite
        file (C(*.db), C(*.sqlite), C(*.sqlite3)) under C(data/).
    type: list
    elements: str
  config:
    description: Check the configuration files.
    type: bool
    default: true
  required:
    description: Paths relative to O(app_root) that must exist (such as C(config/production.env)).
    type: list
    elements: str
    default: []
  fail_on_invalid:
    description: Fail when a check fails. With V(false), the result says RV(valid=false) and the task succeeds.
    type: bool
    default: true
seealso:
  - module: devops.reddit_backup.backup_verify
  - module: devops.reddit_backup.backup_restore
"""

EXAMPLES = r"""
- name: Check the restored application (the guide's verify-restore)
  devops.reddit_backup.app_verify:
    app_root: /home/cayir/cicd_project
    required: [config/production.env, config/logging.conf]

- name: Check only the database a restore put back
  devops.reddit_backup.app_verify:
    app_root: /home/cayir/cicd_project
    databases: [data/reddit_sentiment.db]
    config: false
"""

RETURN = r"""
valid:
  description: Whether every check passed (skipped checks do not count against it).
  returned: always
  type: bool
  sample: true
databases:
  description: The databases checked, relative to O(app_root).
  returned: always
  type: list
  elements: str
  sample: [data/reddit_sentiment.db]
checks:
  description: Every check, as C(name) (C(database:PATH), C(config:PATH), C(required:PATH)), C(status) (C(passed),
    C(failed), C(skipped)) and C(detail).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "database:data/reddit_sentiment.db", "status": "passed", "detail": "PRAGMA integrity_check: ok"}]
errors:
  description: One line per failed check.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.app_checks import verify_app
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_root=dict(type="path", required=True),
            databases=dict(type="list", elements="str"),
            config=dict(type="bool", default=True),
            required=dict(type="list", elements="str", default=[]),
            fail_on_invalid=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    with guarded(module, "checking the application tree"):
        run(module)


def run(module):
    params = module.params
    try:
        result = verify_app(params["app_root"], databases=params["databases"], config=params["config"],
                            required=params["required"])
    except BackupError as error:
        module.fail_json(msg=str(error), valid=False)
    if not result["valid"] and params["fail_on_invalid"]:
        module.fail_json(msg="%s failed its checks: %s" % (params["app_root"], "; ".join(result["errors"])),
                         **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
