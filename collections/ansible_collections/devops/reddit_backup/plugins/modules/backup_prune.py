#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_prune
short_description: Remove the backups a retention policy no longer keeps
version_added: 0.1.0
description:
  - The guide's C(backup_manager.py cleanup), with its retention table as the default policy (full 30 days,
    incremental 7 days, configuration 90 days, database 24 hours; named backups in C(manual/) are kept until removed
    on purpose).
  - Each backup type can be kept by age (C(keep_within)), by count (C(keep_last)) and by grandfather-father-son
    buckets (C(keep_hourly), C(keep_daily), C(keep_weekly), C(keep_monthly)). A backup kept by any rule stays.
  - Never removed whatever the policy says, the newest verified full backup (and the newest full backup), and any
    backup that a kept backup depends on (the links of incremental and database chains).
  - Runs under the backup directory's lock, so it never races a backup; it waits O(lock_timeout) for a running one.
    An archive goes before its sidecars, and a chain's newest links before older ones, so a run killed half-way
    leaves nothing broken listed.
  - With O(remote), the same policy runs against the remote copy (a backup server or an object store, as
    M(devops.reddit_backup.backup_sync) reaches it) instead of O(backup_dir). The remote's catalog is read from its
    sidecars, the same rules and protections apply, and every doomed archive is removed before its sidecars.
    O(backup_dir)'s lock is held meanwhile, so the prune never races a push from this host.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
  - devops.reddit_backup.backup_dir
  - devops.reddit_backup.lock_timeout
  - devops.reddit_backup.remote
attributes:
  check_mode:
    support: full
    details: Check mode lists what would be removed and removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: With a fixed O(now), a second run finds nothing more to remove.
options:
  policy:
    description:
      - Rules per type (C(full), C(incremental), C(config), C(database), C(manual)), each a dictionary of
        C(keep_within) (a duration such as C(30d), C(24h), C(2w)), C(keep_last), C(keep_hourly), C(keep_daily),
        C(keep_weekly), C(keep_monthly).
      - A type given here replaces that type's default rules; types not given keep the guide's defaults. An empty
        dictionary for a type keeps all its backups.
    type: dict
    default: {}
  now:
    description:
      - Evaluate the policy as of this moment instead of the current time, for previews and reproducible runs.
        ISO-8601, C(YYYYmmdd_HHMMSS), epoch seconds, or a phrase such as C(3 days ago).
    type: str
seealso:
  - module: devops.reddit_backup.backup_info
"""

EXAMPLES = r"""
- name: The guide's weekly cleanup with its retention table
  devops.reddit_backup.backup_prune:
    backup_dir: /home/cayir/cicd_project/backups

- name: Keep full backups 30 days, plus one a week for 8 weeks and one a month for a year
  devops.reddit_backup.backup_prune:
    backup_dir: /home/cayir/cicd_project/backups
    policy:
      full:
        keep_within: 30d
        keep_weekly: 8
        keep_monthly: 12

- name: The same retention on the backup server's copy, kept longer there
  devops.reddit_backup.backup_prune:
    backup_dir: /home/cayir/cicd_project/backups
    remote: ssh://backup@backup.example.internal/srv/backups/app1
    ssh_key: /home/cayir/.ssh/backup_ed25519
    known_hosts: /home/cayir/.ssh/known_hosts_backup
    policy:
      full:
        keep_within: 90d

- name: Preview what the cleanup would remove ten days from now
  devops.reddit_backup.backup_prune:
    backup_dir: /home/cayir/cicd_project/backups
    now: "2025-06-07T03:00:00Z"
  check_mode: true
  register: preview
"""

RETURN = r"""
deleted:
  description: The backups removed (in check mode, that would be removed), newest first.
  returned: always
  type: list
  elements: dict
  sample: [{"archive": "/srv/backups/daily/backup_20250427_020000.tar.zst", "type": "full", "size": 73413020,
            "name": "backup_20250427_020000", "created": "2025-04-27T02:00:00Z"}]
kept:
  description: The backups kept, each with the C(reasons) (rules) that kept it. With O(remote), also the remote
    entries retention cannot classify (damaged, incomplete, not a backup this tool makes), with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"archive": "/srv/backups/daily/backup_20250528_020000.tar.zst", "reasons": ["keep_within 30d"]}]
freed_bytes:
  description: Bytes of archives removed (or that would be removed).
  returned: always
  type: int
  sample: 73413020
remote:
  description: With O(remote), the remote pruned (no credentials); RV(deleted) and RV(kept) then name archives
    relative to it.
  returned: when O(remote) is given
  type: str
  sample: ssh://backup@backup.example.internal/srv/backups/app1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._option_specs import (
    BACKUP_DIR, LOCK_TIMEOUT, shared_options,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import (
    REMOTE_ARGUMENT_SPEC, prune_remote, request_from_params)
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.retention import prune


def main():
    module = AnsibleModule(
        argument_spec=shared_options(
            BACKUP_DIR, LOCK_TIMEOUT,
            REMOTE_ARGUMENT_SPEC,
            policy=dict(type="dict", default={}),
            now=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    with guarded(module, "pruning backups"):
        run(module)


def run(module):
    params = module.params
    try:
        if params["remote"]:
            result = prune_remote(request_from_params(params), params["policy"], params["now"], module.check_mode)
        else:
            result = prune(params["backup_dir"], params["policy"], params["now"], module.check_mode,
                           params["lock_timeout"])
    except BackupError as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
