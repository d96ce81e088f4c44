#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_sync
short_description: Copy backups to a backup server or an object store, or back from it
version_added: 0.1.0
description:
  - The guide's C(BACKUP_REMOTE_SYNC), and the first step of its disaster recovery (fetch the latest backup from the
    backup server). V(push) copies backups of O(backup_dir) to O(remote); V(pull) copies them from O(remote) into
    O(backup_dir).
  - Only complete backups travel, and they travel whole, the sidecars first and the archive last. rsync renames
    each file into place once it is complete, and S3 shows an object only once its upload completes. So a push
    killed half-way never leaves anything on the remote that a pull would take for a complete backup.
  - A pull lands the archive under a hidden temp name and checks it against the remote C(.sha256) sidecar before
    it renames it into place, under the backup directory's lock, so
    M(devops.reddit_backup.backup_info) never lists a bad or half-pulled backup.
  - Nothing is overwritten. A backup already at the destination with the same sha256 is skipped; a different one of
    the same name is skipped with that reason.
  - Encrypted backups travel without their C(.index.json) (per-file hashes), so the remote holds only ciphertext
    and metadata that names no file contents. Verdicts (C(.verify.json)) stay with the copy that was verified.
  - A signed backup's signature (C(<archive>.meta.json.sig)) travels with it, among the sidecars, before the archive.
    With O(allowed_signers) or O(trusted_signing_keys), a V(pull) takes only backups whose catalog entry a trusted
    key signed (the others are listed in RV(skipped_backups), before O(select) picks the newest, so a forgery
    planted on the remote cannot stand in for the newest genuine backup), and keeps a pulled archive only when its
    sha256 is the one the signed entry names. Those options are for V(pull) only.
  - Retention on the remote runs with M(devops.reddit_backup.backup_prune) and its O(devops.reddit_backup.backup_prune#module:remote) option.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
  - devops.reddit_backup.backup_dir
  - devops.reddit_backup.lock_timeout
  - devops.reddit_backup.remote
  - devops.reddit_backup.trusted_signers
attributes:
  check_mode:
    support: full
    details: Check mode lists the remote and says what would be copied, skipped and removed; it copies nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run finds every selected backup at the destination (same sha256) and copies nothing.
options:
  remote:
    required: true
  direction:
    description:
      - V(push) copies from O(backup_dir) to O(remote); V(pull) from O(remote) into O(backup_dir).
    type: str
    choices: [push, pull]
    default: push
  select:
    description:
      - V(all) takes every complete backup (of O(type), when given).
      - V(latest) takes the newest restorable backup of O(type), or of each type when O(type) is unset.
      - V(before) takes the newest restorable backup made at or before O(before), of O(type) or of each type.
      - Any other value is the name of one backup (C(backup_20250528_020000), C(pre-maintenance-20250528)).
      - A backup that builds on others (incremental, database page deltas) travels with every link of its chain.
    type: str
    default: all
  before:
    description:
      - With O(select=before), the moment to go back to. ISO-8601 (C(2025-05-28T14:00:00Z)), C(YYYYmmdd_HHMMSS),
        epoch seconds, or a phrase such as C(6 hours ago).
    type: str
  type:
    description: Only backups of this type.
    type: str
    choices: [full, incremental, config, database]
  delete:
    description:
      - Make the destination a mirror of the source. Backups at the destination (of O(type), when given) that the
        source does not have are removed, each archive before its sidecars. Only with O(select=all).
      - For retention by age or count on the remote, use M(devops.reddit_backup.backup_prune) instead.
    type: bool
    default: false
  now:
    description: The moment that relative O(before) phrases count from (default, the current time).
    type: str
notes:
  - Reaches only the O(remote) given. For V(push), the backup directory's lock is held while the backups are
    read, so a backup being written is never sent half-made (and it is not listed before it is complete anyway).
seealso:
  - module: devops.reddit_backup.backup_prune
  - module: devops.reddit_backup.backup_info
"""

EXAMPLES = r"""
- name: After each backup, copy every backup the backup server does not have yet
  devops.reddit_backup.backup_sync:
    backup_dir: /home/cayir/cicd_project/backups
    remote: ssh://backup@backup.example.internal/srv/backups/app1
    ssh_key: /home/cayir/.ssh/backup_ed25519
    known_hosts: /home/cayir/.ssh/known_hosts_backup

- name: The same to an S3-compatible store, credentials from the vault
  devops.reddit_backup.backup_sync:
    backup_dir: /home/cayir/cicd_project/backups
    remote: s3://reddit-backups/app1
    s3_endpoint_url: https://objects.example.internal
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"

- name: On a new server, fetch the newest backup of each type (with the chains they build on)
  devops.reddit_backup.backup_sync:
    backup_dir: /home/cayir/cicd_project/backups
    remote: ssh://backup@backup.example.internal/srv/backups/app1
    direction: pull
    select: latest
    ssh_key: /root/.ssh/backup_ed25519
    known_hosts: /root/.ssh/known_hosts_backup

- name: On a new server, fetch only backups signed by the app host's key (the key from the inventory)
  devops.reddit_backup.backup_sync:
    backup_dir: /home/cayir/cicd_project/backups
    remote: ssh://backup@backup.example.internal/srv/backups/app1
    direction: pull
    select: latest
    trusted_signing_keys: "{{ reddit_backup_trusted_signing_keys }}"

- name: Fetch the newest full backup made before the incident
  devops.reddit_backup.backup_sync:
    backup_dir: /home/cayir/cicd_project/backups
    remote: s3://reddit-backups/app1
    direction: pull
    select: before
    before: "2025-05-28T14:00:00Z"
    type: full
"""

RETURN = r"""
transferred:
  description:
    - Each backup copied (in check mode, that would be copied), oldest first, with its C(name), C(type),
      C(created), C(archive) (relative to the backup directory), C(files) (sidecars first, the archive last),
      C(size) (bytes of all its files), C(seconds) and C(mib_per_second).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "backup_20250528_020000", "type": "full", "archive": "daily/backup_20250528_020000.tar.zst.age",
            "size": 73413983, "seconds": 1.9, "mib_per_second": 36.8}]
skipped_backups:
  description:
    - Each selected backup not copied, with its C(name), C(archive) and the C(reason) (already there with the same
      sha256, a different backup of that name there, incomplete or damaged on the remote, a remote entry that is
      not a backup this tool makes, a pulled archive that did not match its sidecar, a local file in the way, not authentic when trusted
      keys were given).
    - Not called C(skipped), which Ansible reserves for a skipped task.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "backup_20250527_020000", "archive": "daily/backup_20250527_020000.tar.zst",
            "reason": "already on the remote (same sha256)"}]
deleted:
  description: With O(delete), the backups removed from the destination (in check mode, that would be removed).
  returned: always
  type: list
  elements: dict
  sample: []
bytes:
  description: Bytes copied.
  returned: always
  type: int
  sample: 73413983
seconds:
  description: Seconds spent copying.
  returned: always
  type: float
  sample: 1.9
remote:
  description: The remote, as reached (no credentials).
  returned: always
  type: str
  sample: ssh://backup@backup.example.internal/srv/backups/app1
direction:
  description: V(push) or V(pull).
  returned: always
  type: str
  sample: push
duration:
  description: Seconds the whole run took (listing the remote included).
  returned: always
  type: float
  sample: 2.4
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._option_specs import (
    BACKUP_DIR, LOCK_TIMEOUT, TRUSTED_SIGNERS, shared_options)
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import (
    REMOTE_ARGUMENT_SPEC, request_from_params, sync)


def main():
    module = AnsibleModule(
        argument_spec=shared_options(
            REMOTE_ARGUMENT_SPEC, BACKUP_DIR, LOCK_TIMEOUT, TRUSTED_SIGNERS,
            remote=dict(type="str", required=True),
            direction=dict(type="str", choices=["push", "pull"], default="push"),
            select=dict(type="str", default="all"),
            before=dict(type="str"),
            type=dict(type="str", choices=["full", "incremental", "config", "database"]),
            delete=dict(type="bool", default=False),
            now=dict(type="str"),
        ),
        required_if=[("select", "before", ["before"])],
        supports_check_mode=True,
    )
    with guarded(module, "syncing with the remote"):
        run(module)


def run(module):
    params = module.params
    request = request_from_params(params, direction=params["direction"], select=params["select"],
                                  before=params["before"], type=params["type"], delete=params["delete"],
                                  now=params["now"], allowed_signers=params["allowed_signers"],
                                  trusted_signing_keys=params["trusted_signing_keys"])
    try:
        result = sync(request, check_mode=module.check_mode)
    except BackupError as error:
        module.fail_json(msg=str(error))
    result["skipped_backups"] = result.pop("skipped")  # "skipped" would mark the task itself as skipped
    module.exit_json(**result)


if __name__ == "__main__":
    main()
