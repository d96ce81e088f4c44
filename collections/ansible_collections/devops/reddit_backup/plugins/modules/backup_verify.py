#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_verify
short_description: Verify a backup archive, quickly or comprehensively, and record the verdict beside it
version_added: 0.1.0
description:
  - The guide's C(backup_manager.py verify --comprehensive), done without trusting the archive. The archive is read
    once, as a stream; nothing is extracted except databases, which are copied to a private temporary folder for
    their integrity check and removed afterwards.
  - V(quick) checks that the archive's sha256 matches its C(.sha256) sidecar, that the tar stream is sound (every
    member name safe, no device, FIFO, hard link or duplicate, no link leading outside, the manifest last, nothing
    but zeros after the end), that the manifest parses, and that the members are exactly those the manifest
    lists, with the listed type, size, mode and mtime.
  - V(comprehensive) also re-computes every member's sha256 against the manifest (naming each member that
    differs), runs C(PRAGMA integrity_check) on every database and matches it with its recorded snapshot,
    checks that the required paths are present, and parses the configuration files without executing them
    (C(*.env) as KEY=VALUE lines, C(logging*.conf) as the INI C(logging.config.fileConfig) needs, YAML when a
    YAML parser is installed on the target (reported as skipped, not passed, when it is not), JSON, and
    systemd unit files).
  - A database stored as a page delta (incremental and database backup chains) has its delta checked against its
    record; its C(PRAGMA integrity_check) is reported as skipped, since it runs on the database a restore
    rebuilds from the whole chain.
  - The verdict is V(valid), V(invalid) (a check failed; the archive must not be restored) or V(unverifiable)
    (the checks could not run, for example without C(zstd) or space for a database copy), with the reason.
  - The verdict is recorded beside the archive as C(<archive>.verify.json), so
    M(devops.reddit_backup.backup_info) shows when each backup was last verified and with what result.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.trusted_signers
  - devops.reddit_backup.selection
  - devops.reddit_backup.selection.type
  - devops.reddit_backup.identity
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
attributes:
  check_mode:
    support: full
    details: Verification is read-only and runs in check mode too; only the verdict sidecar is not written then.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never reports a change. The verdict sidecar is refreshed on every run.
options:
  archive:
    description: The archive to verify. Give this or O(backup_dir).
    type: path
  backup_dir:
    description:
      - Pick the archive from this backup directory, by O(name) or O(before); the newest backup by default.
    type: path
  level:
    description: V(quick) checks the checksum, structure, manifest and member list; V(comprehensive) checks everything.
    type: str
    choices: [quick, comprehensive]
    default: comprehensive
  required:
    description:
      - Paths (relative to the app root) that must be in the archive; checked at level V(comprehensive).
      - Defaults to the archive's databases, plus C(config/production.env), C(config/logging.conf) and
        C(config/monitoring.yml) for full and configuration backups.
    type: list
    elements: str
  fail_on_invalid:
    description: Fail the task when the verdict is not V(valid). With V(false), read RV(valid) and RV(status).
    type: bool
    default: true
  record:
    description: Record the verdict beside the archive as C(<archive>.verify.json) (not in check mode).
    type: bool
    default: true
  temp_dir:
    description:
      - Where databases are copied for their integrity check. The system's temporary folder by default; it needs
        room for the largest database.
    type: path
notes:
  - Reads only; needs Python 3.9+ and, for zstd archives, the C(zstd) tool on the target.
seealso:
  - module: devops.reddit_backup.backup_create
  - module: devops.reddit_backup.backup_info
  - module: devops.reddit_backup.backup_restore
"""

EXAMPLES = r"""
- name: The guide's daily verification of the latest full backup
  devops.reddit_backup.backup_verify:
    backup_dir: /home/cayir/cicd_project/backups
    type: full

- name: Verify the pre-maintenance backup before the maintenance starts
  devops.reddit_backup.backup_verify:
    backup_dir: /home/cayir/cicd_project/backups
    name: "pre-maintenance-{{ now(utc=true, fmt='%Y%m%d') }}"

- name: A quick check of one archive, reporting rather than failing
  devops.reddit_backup.backup_verify:
    archive: /home/cayir/cicd_project/backups/daily/backup_20250528_020000.tar.zst
    level: quick
    fail_on_invalid: false
  register: verdict

- name: Verify the newest backup and check that this host's key signed it (the key from the inventory)
  devops.reddit_backup.backup_verify:
    backup_dir: /home/cayir/cicd_project/backups
    trusted_signing_keys: "{{ reddit_backup_trusted_signing_keys }}"

- name: Show the verdict
  ansible.builtin.debug:
    msg: "{{ verdict.status }}: {{ verdict.reason }}"
"""

RETURN = r"""
authenticated:
  description:
    - Whether a trusted key's signature was checked and the archive (and every link of its chain) is the one it
      signed. V(false) when no O(allowed_signers) or O(trusted_signing_keys) were given; then nothing says who made
      the backup (anyone who can write the backup store can make one whose checksums agree).
  returned: always
  type: bool
  sample: true
signed_by:
  description: The trusted key that signed the backup, as C(principal) (from the allowed signers) and C(key) (its fingerprint); null when not checked.
  returned: always
  type: dict
  sample: {"principal": "trusted-1", "key": "SHA256:OCiUNplWSw/dqd438KgOjbMLsyeJzUPX+E0lq6TDgtc"}
authenticity:
  description: In words, whether authenticity was checked and what was found.
  returned: always
  type: str
  sample: "checked: signed by trusted key SHA256:OCiUNplWSw/dqd438KgOjbMLsyeJzUPX+E0lq6TDgtc"
archive:
  description: The archive verified.
  returned: always
  type: str
  sample: /home/cayir/cicd_project/backups/daily/backup_20250528_020000.tar.zst
valid:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: true
status:
  description:
    - V(valid), V(invalid) (a check failed) or V(unverifiable) (the checks could not run).
    - A backup that builds on others is V(invalid) when a link of its chain is missing from its backup directory
      (found by the archive sha256 each child recorded), or when it lies outside any backup directory; its
      C(chain) check then has status C(missing_dependency) and names the missing link.
  returned: always
  type: str
  sample: valid
reason:
  description: Why, in one line (the first failure, or what kept the checks from running).
  returned: always
  type: str
  sample: "content: data/reddit_sentiment.db: its bytes do not match the manifest"
level:
  description: The level verified at.
  returned: always
  type: str
  sample: comprehensive
checks:
  description:
    - Each check with its C(name) (C(checksum), C(structure), C(manifest), C(members), C(content),
      C(database:<path>), C(required), C(config:<path>)), C(ok), C(status) (passed, failed or skipped) and C(detail).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "checksum", "ok": true, "status": "passed", "detail": "the archive's sha256 matches its sidecar"}]
errors:
  description: Every failed check, as its name, a colon and its detail.
  returned: always
  type: list
  elements: str
  sample: ["content: config/production.env: its bytes do not match the manifest (sha256 ..., recorded ...)"]
members:
  description: Number of members read (the manifest not counted).
  returned: always
  type: int
  sample: 31
bytes:
  description: Total size of the regular files in the archive, uncompressed.
  returned: always
  type: int
  sample: 401234567
archive_sha256:
  description: SHA-256 of the archive's bytes as read; null when it could not be read to its end.
  returned: always
  type: str
  sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
verified_at:
  description: When the verification started (UTC, ISO-8601).
  returned: always
  type: str
  sample: "2025-05-28T03:00:00Z"
verdict:
  description: The verdict sidecar written; null in check mode or with O(record=false).
  returned: always
  type: str
  sample: /home/cayir/cicd_project/backups/daily/backup_20250528_020000.tar.zst.verify.json
duration:
  description: Seconds the verification took.
  returned: always
  type: float
  sample: 2.4
"""

from contextlib import nullcontext

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._option_specs import (
    IDENTITY, SELECTION, SELECTION_TYPE, TRUSTED_SIGNERS, shared_options)
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.signing import trust_from
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import pick_archive
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive


def main():
    module = AnsibleModule(
        argument_spec=shared_options(
            SELECTION, SELECTION_TYPE, IDENTITY, TRUSTED_SIGNERS,
            archive=dict(type="path"),
            backup_dir=dict(type="path"),
            level=dict(type="str", choices=["quick", "comprehensive"], default="comprehensive"),
            required=dict(type="list", elements="str"),
            fail_on_invalid=dict(type="bool", default=True),
            record=dict(type="bool", default=True),
            temp_dir=dict(type="path"),
        ),
        mutually_exclusive=[("archive", "backup_dir"), ("before", "name")],
        required_one_of=[("archive", "backup_dir")],
        supports_check_mode=True,
    )
    with guarded(module, "verifying a backup"):
        run(module)


def run(module):
    params = module.params
    try:
        types = [params["type"]] if params["type"] else None
        archive = pick_archive(params["archive"], params["backup_dir"], params["before"], params["name"], types)
        trust = trust_from(params["allowed_signers"], params["trusted_signing_keys"])
        with trust or nullcontext():
            result = verify_archive(archive, params["level"], params["required"], params["temp_dir"],
                                    record=params["record"] and not module.check_mode,
                                    identity_file=params["identity_file"], trust=trust)
    except BackupError as error:
        module.fail_json(msg=str(error))
    for warning in result.pop("warnings"):
        module.warn(warning)
    result.pop("tool_version", None)
    if params["fail_on_invalid"] and not result["valid"]:
        module.fail_json(msg="%s is %s: %s" % (archive, result["status"], result["reason"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
