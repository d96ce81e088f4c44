#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: List the backups in a backup directory and pick one by time or name
version_added: 0.1.0
description:
  - The catalog, as the guide's C(backup_manager.py list --detailed). It lists every complete backup with its type, name,
    creation time, size, parent and host, the newest of each type, and totals.
  - It reads only the small C(.meta.json) sidecars, never an archive, so it stays fast with thousands of backups.
    Backups whose archive or sidecars are incomplete are never listed.
  - With O(before) or O(name) it also returns RV(selected), the backup a restore would use.
  - With O(replica) it also returns RV(replica), the recovery window of the Litestream replica beside the archives,
    the oldest and newest moment each database can be restored to from it, from Litestream's own listing
    (C(litestream ltx -level all)). A replica that cannot be read is reported there as unreachable; the archives
    are listed all the same.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
  - devops.reddit_backup.selection
  - devops.reddit_backup.selection.type
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  backup_dir:
    description: The backup directory.
    type: path
    required: true
  replica:
    description:
      - The settings file of the Litestream replica the role C(devops.reddit_backup.litestream) wrote
        (C(/etc/reddit-backup/<app>/replica.json)). Reading it runs the Litestream binary it names, as root.
    type: path
notes:
  - Reports O(backup_dir) that does not exist as an empty catalog, not as an error.
seealso:
  - module: devops.reddit_backup.backup_create
"""

EXAMPLES = r"""
- name: List the backups
  devops.reddit_backup.backup_info:
    backup_dir: /home/cayir/cicd_project/backups
  register: catalog

- name: The backup to restore for "the state of 6 hours ago"
  devops.reddit_backup.backup_info:
    backup_dir: /home/cayir/cicd_project/backups
    before: 6 hours ago
    type: full
  register: chosen

- name: The archives and the Litestream replica's recovery window
  devops.reddit_backup.backup_info:
    backup_dir: /home/cayir/cicd_project/backups
    replica: /etc/reddit-backup/reddit-sentiment/replica.json
  register: catalog_and_replica

- name: Show it
  ansible.builtin.debug:
    msg: "{{ chosen.selected.archive }} from {{ chosen.selected.created }}"
"""

RETURN = r"""
backups:
  description: Every complete backup, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    archive:
      description: Path of the archive.
      type: str
      sample: /home/cayir/cicd_project/backups/daily/backup_20250528_020000.tar.zst
    type:
      description: full, incremental, config or database.
      type: str
      sample: full
    name:
      description: The backup's name.
      type: str
      sample: backup_20250528_020000
    created:
      description: Creation time (UTC, ISO-8601).
      type: str
      sample: "2025-05-28T02:00:00Z"
    size:
      description: Archive size in bytes.
      type: int
      sample: 73413020
    parent:
      description: The backup this one builds on (incremental and database chains), or null.
      type: str
      sample: null
    parent_sha256:
      description:
        - The archive sha256 of the backup this one builds on, by which its chain is resolved (names can be
          reused; checksums cannot). Null for backups that stand alone, and for those made before it was recorded.
      type: str
      sample: null
    damaged:
      description:
        - Null for a sound entry. Otherwise why its sidecars cannot be trusted (a C(.meta.json) of the wrong shape,
          an unknown type, a FIFO or link planted as a sidecar), naming the path. A damaged backup is listed but
          never selected, never in RV(latest), never built on, and kept by M(devops.reddit_backup.backup_prune).
      type: str
      sample: null
    depth:
      description: Links between this backup and the base of its chain (0 for a base or a standalone backup).
      type: int
      sample: 0
    restorable:
      description: Whether every link of its chain is present, so that it can be restored.
      type: bool
      sample: true
    host:
      description: The host the backup was made on.
      type: str
      sample: app1
    files:
      description: Number of regular files in it.
      type: int
      sample: 42
    named:
      description: Whether it is a named backup in C(manual/).
      type: bool
      sample: false
    signed:
      description: Whether a signature of its catalog entry (C(<archive>.meta.json.sig)) lies beside it.
      type: bool
      sample: true
    signature_key:
      description:
        - The fingerprint of the key the signature names, read from the signature file without checking it (anyone
          can sign with a key of their own); M(devops.reddit_backup.backup_verify) with trusted keys checks it.
      type: str
      sample: SHA256:OCiUNplWSw/dqd438KgOjbMLsyeJzUPX+E0lq6TDgtc
    verified:
      description:
        - The last verification recorded beside the archive (C(<archive>.verify.json), written by
          M(devops.reddit_backup.backup_verify) and by restores that verify first), or null when it was never
          verified.
        - C(at) (UTC, ISO-8601), C(level), C(status) (valid, invalid or unverifiable), C(valid), C(reason), and
          C(current) (false when the archive's sha256 changed since it was verified).
      type: dict
      sample: {"at": "2025-05-28T03:00:00Z", "level": "comprehensive", "status": "valid", "valid": true, "current": true}
latest:
  description: The newest backup of each type, keyed by type.
  returned: always
  type: dict
  sample: {"full": {"archive": "/srv/backups/daily/backup_20250528_020000.tar.zst"}}
selected:
  description: The backup chosen by O(before) or O(name); null when none matches or neither is given.
  returned: always
  type: dict
  sample: {"archive": "/srv/backups/daily/backup_20250528_020000.tar.zst", "created": "2025-05-28T02:00:00Z"}
recovery_points:
  description:
    - The moments the application can be restored to, oldest first.
    - Each restorable backup's C(created), C(name) and C(type).
  returned: always
  type: list
  elements: dict
  sample: [{"created": "2025-05-28T02:00:00Z", "name": "backup_20250528_020000", "type": "full"}]
replica:
  description:
    - With O(replica), the replica's recovery window. C(reachable) is false, and C(error) says why, when the
      replica or its settings cannot be read (the backup server down, the settings missing).
    - C(databases) maps each replicated database to C(oldest) (the oldest moment a restore can reach, the time of the
      oldest file holding the whole database), C(newest) (the newest, UTC, to the second), C(txid) (the newest
      transaction) and C(files); C(oldest) and C(newest) are null while the replica holds nothing of it.
  returned: when O(replica) is given
  type: dict
  sample: {"settings": "/etc/reddit-backup/app1/replica.json", "reachable": true, "error": null,
           "databases": {"data/reddit_sentiment.db": {"oldest": "2025-05-28T02:00:00Z",
                                                      "newest": "2025-05-28T09:41:07Z",
                                                      "txid": "00000000000004d2", "files": 37}}}
totals:
  description: Count and bytes of all backups, and per type (damaged backups under C(damaged)).
  returned: always
  type: dict
  sample: {"count": 31, "bytes": 2275803620, "by_type": {"full": {"count": 30, "bytes": 2202390600}}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import (
    choose, list_backups, summarize,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.window import recovery_window
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._option_specs import (
    SELECTION, SELECTION_TYPE, shared_options,
)


def main():
    module = AnsibleModule(
        argument_spec=shared_options(SELECTION, SELECTION_TYPE, backup_dir=dict(type="path", required=True),
                                     replica=dict(type="path")),
        mutually_exclusive=[("before", "name")],
        supports_check_mode=True,
    )
    with guarded(module, "reading the catalog"):
        run(module)


def run(module):
    params = module.params
    try:
        backups = [b for b in list_backups(params["backup_dir"]) if params["type"] in (None, b["type"])]
        selected = None
        if params["before"] or params["name"]:
            selected = choose(backups, before=params["before"], name=params["name"])
    except BackupError as error:
        module.fail_json(msg=str(error))
    listed = summarize(backups)
    if params["replica"]:
        listed["replica"] = recovery_window(params["replica"])
    module.exit_json(changed=False, backups=backups, selected=selected, **listed)


if __name__ == "__main__":
    main()
