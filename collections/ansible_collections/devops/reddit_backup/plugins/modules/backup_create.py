#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_create
short_description: Make a full, configuration or database backup of an application
version_added: 0.1.0
description:
  - Makes one backup of the application under O(app_root) into O(backup_dir), the way the guide's
    C(backup_manager.py create) does, with every database taken as a consistent snapshot, never as a raw copy.
  - The archive is a tar stream compressed with zstd (default), gzip or nothing. Its last member, C(MANIFEST.json),
    records every member (path, type, size, mode, mtime, sha256) and every database (page size, page count,
    integrity result, snapshot sha256). Beside it go C(<archive>.sha256) (C(sha256sum -c) format) and
    C(<archive>.meta.json) (the manifest without its member list, which the catalog reads).
  - A backup exists only once its archive is complete and renamed into place. A run killed at any moment leaves
    nothing that M(devops.reddit_backup.backup_info) lists, and the next run cleans up after it.
  - One lock per backup directory serialises runs. Free space is checked before anything is written; a disk that
    fills up anyway fails clearly, the partial file is removed and earlier backups are untouched.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
  - devops.reddit_backup.backup_dir
  - devops.reddit_backup.lock_timeout
attributes:
  check_mode:
    support: full
    details: Check mode selects the files and reports the archive it would write; it writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run makes a new backup. A named backup is made once; a second run with the same O(name) fails
        rather than overwrite it.
options:
  app_root:
    description: The application directory to back up (the guide's C(/home/cayir/cicd_project)).
    type: path
    required: true
  type:
    description:
      - V(full) takes everything under O(app_root) except O(exclude), into C(daily/).
      - V(config) takes the guide's configuration set (C(config/), C(systemd/),
        C(monitoring/alerting_rules.yml), C(monitoring/prometheus_config.yml)), into C(config/).
      - V(incremental) takes what changed since its parent, the newest V(full) or V(incremental) backup, into
        C(incremental/). It stores the files whose size, mode or content changed (an mtime change alone is settled by the
        sha256), the list of files deleted since, and for each database only the pages that changed. With no
        full backup to build on it is taken as a full backup, with a warning.
      - V(database) takes only the databases, into C(database/). It builds a page-level chain of its own. Each
        database backup stores the pages changed since the previous one until the chain is O(chain_max) long,
        then a whole snapshot starts the next chain.
    type: str
    choices: [full, incremental, config, database]
    default: full
  name:
    description:
      - A name for the backup, such as C(pre-maintenance-20250528). Named backups go to C(manual/) as
        C(<name>.tar.zst) and are kept until removed on purpose.
      - Letters, digits, C(.), C(_) and C(-) only. An existing backup of that name is never overwritten.
    type: str
  include:
    description:
      - Paths relative to O(app_root) to take. Defaults to everything for V(full) and to the guide's
        configuration set for V(config). Paths that do not exist are reported in RV(missing).
    type: list
    elements: str
  exclude:
    description:
      - Patterns to leave out, with tar's C(--exclude) meaning. A pattern with a C(/) matches paths from
        O(app_root) (C(logs/*.log.*)); one without matches any path component (C(__pycache__)).
      - O(backup_dir) is always left out when it lies inside O(app_root).
    type: list
    elements: str
    default: [backups, logs/*.log.*, venv, __pycache__]
  databases:
    description:
      - SQLite databases to snapshot, relative to O(app_root). Defaults to every SQLite file under C(data/),
        recognised by its header. Their C(-wal), C(-shm) and C(-journal) files are never archived.
    type: list
    elements: str
  compression:
    description:
      - V(zstd) (default, multi-threaded through the C(zstd) tool), V(gzip) (C(pigz) when present), or V(none).
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  integrity:
    description:
      - How each database snapshot is checked while the archive is written (in a thread beside compression). A
        snapshot that fails fails the backup.
      - V(auto) (the default) runs the full check (C(PRAGMA integrity_check), the guide's check) on every snapshot
        stored whole and C(PRAGMA quick_check) on one stored as a page delta (an incremental, or a database backup
        on its parent), recorded as C(integrity_level=quick). A restore always runs the full check on the database
        it rebuilds from the chain, so a full check of a delta at backup time would spare no restore; the quick
        check still reads every page, so a damaged page fails the backup.
      - V(full) runs C(PRAGMA integrity_check) on every snapshot, page deltas too (recorded as
        C(integrity_level=full)), so damage only the full check finds (an index out of step with its table) fails
        the backup itself rather than the restore. A full check of a whole snapshot spares every restore of these
        exact bytes a second check.
      - V(quick) runs C(PRAGMA quick_check) on every snapshot (cheaper at backup time; each restore runs the full
        check). V(none) checks nothing (recorded as C(integrity=skipped)).
      - Each database's C(integrity_level) in the manifest and in RV(databases) is the check that ran.
    type: str
    choices: [auto, full, quick, none]
    default: auto
  encryption_recipients:
    description:
      - age public keys (X25519 recipients, C(age1...), as C(age-keygen -y KEYFILE) prints them). With any, the
        archive is an age file encrypted to each of them, named C(<name>.tar.zst.age). It is encrypted as it is
        written (C(tar | zstd | age)), so no plaintext ever reaches the disk.
      - An app server needs only public keys, so a stolen server cannot read its old backups. Keep the private keys
        (identity files) elsewhere and give one to M(devops.reddit_backup.backup_verify) and
        M(devops.reddit_backup.backup_restore) as O(devops.reddit_backup.backup_restore#module:identity_file).
      - The C(.sha256) sidecar covers the ciphertext; C(.meta.json) holds the manifest's header (no file contents)
        and the recipients. C(.index.json) (chain types) stays on this host; see the collection's
        C(docs/encryption-and-sync.md) for what it holds.
      - Needs the C(age) tool on the host (Debian package C(age)).
    type: list
    elements: str
  encryption_recipients_file:
    description:
      - A file on the host with age public keys, one a line (C(#) comments allowed), used with or instead of
        O(encryption_recipients). A private key found there is refused.
    type: path
  wheelhouse:
    description:
      - A folder on the host of Python wheels for the application's requirements, carried by a V(full) backup under
        C(wheelhouse/), so a new server without internet can rebuild the venv with C(pip install --no-index
        --find-links APP_ROOT/wheelhouse -r apps/collector/requirements.txt).
      - Build it on the controller with C(pip wheel -r apps/collector/requirements.txt -w DIR) for the servers'
        Python and platform, and copy it to the host first. Only C(*.whl) files are taken. A requirement of
        C(apps/collector/requirements.txt) that no wheel provides is a warning.
      - The wheels are not part of the application's state, so incremental backups built on this one neither store
        them again nor delete them on restore. Only for O(type=full).
    type: path
  required:
    description:
      - Files (relative to O(app_root)) a V(config) backup must hold. When one is missing the backup is refused with
        a message naming it, and nothing is written, so a damaged configuration is never recorded as the newest
        configuration backup (which a configuration restore would then bring back).
      - By default the files M(devops.reddit_backup.backup_verify) requires of a configuration backup
        (C(config/production.env), C(config/logging.conf), C(config/monitoring.yml)). An empty list takes the
        backup without this check. Other backup types ignore it.
    type: list
    elements: str
  signing_key:
    description:
      - An OpenSSH private key on the host (ed25519, no passphrase, such as C(ssh-keygen -t ed25519 -N '' -f
        /etc/reddit-backup/signing_key) or the runner role with C(reddit_backup_signing) makes), with which the
        backup's C(.meta.json) catalog entry is signed (C(ssh-keygen -Y sign), namespace C(reddit-backup@devops))
        into C(<archive>.meta.json.sig), before the archive is committed. The entry names the archive's sha256, so
        the signature pins every byte of the backup, its name, type, time, host and parent (by the parent's sha256).
      - It must be a regular file (not a symlink), owned by root or the user running the backup, readable by its
        owner alone (C(0600)); anything else is refused, naming the path. Only ssh-keygen reads it; its content
        never enters a result or a log. Keep it root's, since a key the application user can read proves nothing.
      - M(devops.reddit_backup.backup_verify), M(devops.reddit_backup.backup_restore) and
        M(devops.reddit_backup.backup_sync) (pull) check the signature against the public keys they are given
        (O(devops.reddit_backup.backup_verify#module:trusted_signing_keys)).
    type: path
  chain_max:
    description:
      - The longest chain a new backup may extend (the base counts as one). Defaults to 24 for V(database)
        (a new base each day at the guide's hourly schedule) and 1000 for V(incremental) (the daily full backup
        starts new chains long before that).
    type: int
notes:
  - Runs on the host that holds the application; needs only Python 3.9+ and, for zstd, the C(zstd) tool.
seealso:
  - module: devops.reddit_backup.backup_info
  - module: devops.reddit_backup.sqlite_backup
"""

EXAMPLES = r"""
- name: The guide's daily full backup
  devops.reddit_backup.backup_create:
    app_root: /home/cayir/cicd_project
    backup_dir: /home/cayir/cicd_project/backups

- name: The pre-maintenance backup
  devops.reddit_backup.backup_create:
    app_root: /home/cayir/cicd_project
    backup_dir: /home/cayir/cicd_project/backups
    name: "pre-maintenance-{{ now(utc=true, fmt='%Y%m%d') }}"

- name: A configuration backup after a change, gzip for other tools
  devops.reddit_backup.backup_create:
    app_root: /home/cayir/cicd_project
    backup_dir: /home/cayir/cicd_project/backups
    type: config
    compression: gzip

- name: The six-hourly incremental backup
  devops.reddit_backup.backup_create:
    app_root: /home/cayir/cicd_project
    backup_dir: /home/cayir/cicd_project/backups
    type: incremental

- name: A full backup encrypted to two keys (an operator's and the offsite one), carrying the wheelhouse
  devops.reddit_backup.backup_create:
    app_root: /home/cayir/cicd_project
    backup_dir: /home/cayir/cicd_project/backups
    encryption_recipients:
      - age16a503myppachnh5sul07a327tfezam9svxfpfc8nfcrhnq3nzu8sl2eed4
      - age1uc39w0zxetnzjr6h95r45ws462zx9acfu34ds0e56eqj2d6kqclsd2mtds
    wheelhouse: /var/cache/reddit_backup/wheelhouse

- name: A signed full backup (the key only root can read)
  devops.reddit_backup.backup_create:
    app_root: /home/cayir/cicd_project
    backup_dir: /home/cayir/cicd_project/backups
    signing_key: /etc/reddit-backup/signing_key

- name: A database backup whose page delta gets the full integrity check too, not only quick_check
  devops.reddit_backup.backup_create:
    app_root: /home/cayir/cicd_project
    backup_dir: /home/cayir/cicd_project/backups
    type: database
    integrity: full
"""

RETURN = r"""
signed:
  description: Whether the backup was (in check mode, would be) signed with O(signing_key).
  returned: always
  type: bool
  sample: true
signature:
  description: The signature file, C(<archive>.meta.json.sig); null when not signed or in check mode.
  returned: always
  type: str
  sample: /home/cayir/cicd_project/backups/daily/backup_20250528_020000.tar.zst.meta.json.sig
signature_key:
  description: The fingerprint of the key that signed it (put its public key in the verifiers' trusted keys).
  returned: always
  type: str
  sample: SHA256:OCiUNplWSw/dqd438KgOjbMLsyeJzUPX+E0lq6TDgtc
archive:
  description: The archive (in check mode, the archive that would be written).
  returned: always
  type: str
  sample: /home/cayir/cicd_project/backups/daily/backup_20250528_020000.tar.zst
name:
  description: The backup's name (its file name without suffix).
  returned: always
  type: str
  sample: backup_20250528_020000
type:
  description: The backup type (V(full) when an incremental had nothing to build on).
  returned: always
  type: str
  sample: full
parent:
  description: The backup this one builds on; null for full and config backups and for chain bases.
  returned: always
  type: str
  sample: backup_20250528_020000
depth:
  description: How many links lie between this backup and the base of its chain (0 for a base).
  returned: always
  type: int
  sample: 2
deleted:
  description: Paths deleted since the parent (incremental backups); a restore of the chain removes them.
  returned: always
  type: list
  elements: str
  sample: [output/old_report.csv]
stored_files:
  description: Files whose content this archive stores (changed files and page deltas for incrementals).
  returned: success and not check mode
  type: int
  sample: 3
created:
  description: When the backup was started (UTC, ISO-8601).
  returned: always
  type: str
  sample: "2025-05-28T02:00:00Z"
size:
  description: Size of the archive in bytes; null in check mode.
  returned: always
  type: int
  sample: 73413020
sha256:
  description: SHA-256 of the archive, as in its C(.sha256) sidecar; null in check mode.
  returned: always
  type: str
  sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
files:
  description: Number of regular files in the backup (databases included).
  returned: always
  type: int
  sample: 42
bytes:
  description: Total size of the stored files (and page deltas) before compression.
  returned: always
  type: int
  sample: 401234567
databases:
  description:
    - Each database snapshot with its path, page size, page count, journal mode, integrity, integrity_level (the
      check that ran, see O(integrity)) and sha256.
    - For a page delta, C(delta) is true and C(changed_pages) counts the pages stored.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "data/reddit_sentiment.db", "integrity": "ok", "integrity_level": "full", "page_size": 4096,
            "page_count": 91234}]
missing:
  description: Included paths that do not exist under O(app_root).
  returned: always
  type: list
  elements: str
  sample: [monitoring/prometheus_config.yml]
encrypted:
  description: Whether the archive is encrypted with age (it then ends in C(.age)).
  returned: always
  type: bool
  sample: true
wheelhouse:
  description:
    - The wheelhouse carried (C(path), C(wheels), C(bytes), and C(missing), the requirements no wheel provides);
      null without O(wheelhouse).
  returned: always
  type: dict
  sample: {"path": "/var/cache/reddit_backup/wheelhouse", "wheels": 14, "bytes": 41234567, "missing": []}
unit_states:
  description:
    - The state of each of the application's systemd units when the backup was made (C(enabled), C(active),
      C(triggered_by)), by unit name, read with C(systemctl show) for the unit files the backup takes from
      C(systemd/) (a unit systemd does not know is left out). Also recorded in the manifest and the C(.meta.json)
      sidecar as C(units), so a restore onto a host without the units can put them back as they were.
    - Null when the backup takes no unit files, in check mode, or when C(systemctl) is missing or fails (the backup
      is made all the same; RV(unit_states_note) says why).
  returned: always
  type: dict
  sample: {"reddit-sentiment-monitor.service": {"enabled": true, "active": true, "triggered_by": []}}
unit_states_note:
  description: Why no unit states were recorded; null when they were.
  returned: always
  type: str
  sample: "unit states not recorded: systemctl is not installed on this host"
duration:
  description: Seconds the backup took.
  returned: always
  type: float
  sample: 3.2
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._option_specs import (
    BACKUP_DIR, LOCK_TIMEOUT, shared_options,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.selection import DEFAULT_EXCLUDES


def main():
    module = AnsibleModule(
        argument_spec=shared_options(
            BACKUP_DIR, LOCK_TIMEOUT,
            app_root=dict(type="path", required=True),
            type=dict(type="str", choices=["full", "incremental", "config", "database"], default="full"),
            name=dict(type="str"),
            include=dict(type="list", elements="str"),
            exclude=dict(type="list", elements="str", default=list(DEFAULT_EXCLUDES)),
            databases=dict(type="list", elements="str"),
            compression=dict(type="str", choices=["zstd", "gzip", "none"], default="zstd"),
            integrity=dict(type="str", choices=["auto", "full", "quick", "none"], default="auto"),
            chain_max=dict(type="int"),
            encryption_recipients=dict(type="list", elements="str"),
            encryption_recipients_file=dict(type="path"),
            wheelhouse=dict(type="path"),
            signing_key=dict(type="path", no_log=False),
            required=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    with guarded(module, "creating a backup"):
        run(module)


def run(module):
    params = module.params
    request = BackupRequest(app_root=params["app_root"], backup_dir=params["backup_dir"], type=params["type"],
                            name=params["name"], include=params["include"], exclude=params["exclude"],
                            databases=params["databases"], compression=params["compression"],
                            integrity=params["integrity"], lock_timeout=params["lock_timeout"],
                            chain_max=params["chain_max"], encryption_recipients=params["encryption_recipients"],
                            encryption_recipients_file=params["encryption_recipients_file"],
                            wheelhouse=params["wheelhouse"], signing_key=params["signing_key"],
                            required=params["required"])
    try:
        result = create_backup(request, check_mode=module.check_mode)
    except BackupError as error:
        module.fail_json(msg=str(error))
    for warning in result.pop("warnings"):
        module.warn(warning)  # also returned to the caller in the result's warnings
    module.exit_json(**result)


if __name__ == "__main__":
    main()
