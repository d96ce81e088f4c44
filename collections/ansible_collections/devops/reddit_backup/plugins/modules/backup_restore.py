#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_restore
short_description: Restore a backup, or its databases, configuration, units or chosen paths, staged and swapped in
version_added: 0.1.0
description:
  - Restores one scope of a backup into O(dest), the application root, which may not exist yet. The guide's
    C(tar -x), C(mv ... .corrupted) and C(sqlite3 .restore) steps, done so that a hostile or damaged archive, a
    full disk or a kill at any moment cannot leave a half-restored item (but see below for filesystems without
    C(RENAME_EXCHANGE)).
  - The archive is never trusted. It is read once and staged in a hidden folder beside O(dest) (C(.reddit-restore-*),
    same filesystem); every member must match the manifest (path, type, size, mode, sha256); absolute paths,
    C(..), symlinks leading outside O(dest), hard links, devices, FIFOs and duplicate members are refused; files
    are created without following symlinks; setuid and setgid bits are dropped; staging stops at the size the
    archive's catalog entry announces and before the disk fills up. A refused archive leaves O(dest) unchanged.
  - With O(verify_first) (the default), the same read is a comprehensive verification (as
    M(devops.reddit_backup.backup_verify)), and an archive that fails it is refused.
  - Only then is each restored item swapped in with one atomic exchange of names (C(renameat2) with
    C(RENAME_EXCHANGE)), and what it replaced moved aside as C(<path>.pre-restore-<UTC stamp>) (for O(scope=full),
    one folder C(<dest>.pre-restore-<UTC stamp>) beside O(dest) holds everything replaced). A kill at any moment
    leaves each item either as it was or as restored; the next restore finishes the killed one's bookkeeping first.
    Where C(RENAME_EXCHANGE) is unavailable (some network and FUSE filesystems) an item is swapped with two renames,
    and one killed between them is missing until the next restore puts the old item back.
  - A database is restored by swapping its folder (the other files in it are carried over as hard links), so its
    old C(-wal), C(-shm) and C(-journal) files leave together with the old database, and SQLite can never replay
    a stale WAL onto the restored one. The replaced database and its WAL stay together in the safety copy.
  - Replacing a database that a running process holds open (found through C(/proc), as C(lsof) does) is refused
    unless O(force=true); the restore playbooks stop the service first.
  - A backup that builds on others (an incremental backup, or a database backup stored as page deltas) is
    restored with its whole chain, root first, into the same staging folder; each archive is verified as it is
    read, each page delta is checked against the snapshot it must rebuild, and (with O(verify_first)) every
    rebuilt database passes C(PRAGMA integrity_check) before anything is swapped in. A backup whose chain has a
    missing link is never picked.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.trusted_signers
  - devops.reddit_backup.selection
  - devops.reddit_backup.identity
  - devops.reddit_backup.lock_timeout
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
attributes:
  check_mode:
    support: full
    details:
      - The archive is read and verified the same way and the result says what would be restored; nothing is
        written beside or in O(dest) (databases are copied to O(temp_dir) for their integrity check).
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - An item whose content, type, mode (and owner, when given) already match the backup is left alone; a
        second run with nothing to restore reports no change and makes no safety copy.
options:
  archive:
    description:
      - The archive to restore from. Give this or O(backup_dir).
      - When it builds on other backups, they are found in its backup directory (two levels up).
    type: path
  backup_dir:
    description:
      - Pick the archive from this backup directory, by O(name) or O(before); the newest restorable backup that
        holds O(scope) by default (full or incremental backups for V(full); those or database backups for
        V(database); those or configuration backups for V(config) and V(systemd)).
    type: path
  replica:
    description:
      - Restore the databases from the Litestream replica instead of an archive, named by the settings file the
        C(devops.reddit_backup.litestream) role writes (C(/etc/reddit-backup/<app>/replica.json)). Give this, O(archive)
        or O(backup_dir).
      - Each database is restored by Litestream, as it was at O(before) (to the second) or at the latest moment the
        replica holds, into the same staging folder as an archive restore, checked with C(PRAGMA integrity_check),
        then swapped in the same way with its safety copy. O(scope) must be V(database) or a list of the replicated
        databases. RV(recovery_point) is the time of the newest transaction restored.
      - The settings file, the Litestream binary, its configuration and the SSH key it names must be root's regular
        files that only root can write, or the restore is refused (root runs that binary).
      - With O(backup_dir) too (and O(scope=full)), the whole service at O(before) in one restore (point-in-time
        recovery), the files from the newest full or incremental archive made at or before O(before), and each
        replicated database from the replica as it was at O(before), staged over the archive's copy before anything
        is swapped; one safety copy of the app root, as a full restore. RV(recovery_points) says what each part
        reached. A replica that cannot reach O(before), a damaged replica or no archive old enough fails the whole
        restore with nothing changed.
    type: path
  dest:
    description:
      - The application root to restore into (the guide's C(/home/cayir/cicd_project)). Created when missing,
        with its missing parents. A symlink is followed to the real folder.
    type: path
    required: true
  scope:
    description:
      - V(full) restores every top-level entry of a full backup and moves the other entries of O(dest) aside,
        except those named in O(keep).
      - V(database) restores the databases (from a full or database backup).
      - V(config) restores the guide's configuration set (C(config/), C(systemd/),
        C(monitoring/alerting_rules.yml), C(monitoring/prometheus_config.yml)); parts the backup lacks are
        reported in RV(missing).
      - V(systemd) restores C(systemd/) (the unit files kept in the app root).
      - A list of paths relative to the app root restores exactly those (each must be in the archive).
    type: raw
    default: full
  verify_first:
    description:
      - Verify the archive comprehensively (checksum sidecar, every member, database integrity, required paths,
        configuration files) while staging it, and refuse it if any check fails. With V(false), the members are
        still checked against the manifest (that is never skipped), but the sidecar, database integrity,
        required paths and configuration files are not.
    type: bool
    default: true
  safety_copy:
    description:
      - Move what is replaced aside as C(<path>.pre-restore-<UTC stamp>) (like the guide's C(.corrupted)) instead of
        deleting it. Backups never take safety copies; after the restore, O(safety_copies_keep) and
        O(safety_copies_max_age) decide which earlier ones stay (this restore's own are always kept).
    type: bool
    default: true
  newest_good:
    description:
      - When the backup picked from O(backup_dir) (the newest, or the newest at or before O(before)) fails
        verification, restore the newest older backup of the same kind that passes a comprehensive verification
        instead, and say so in a warning and RV(passed_over). V(false) refuses, naming that backup in the message.
      - A backup given by O(archive) or O(name) is never replaced by another.
    type: bool
    default: false
  safety_copies_keep:
    description:
      - After a restore, of each item's safety copies (C(data), C(config), the whole app root ...) the newest this
        many stay; older ones are removed (M(devops.reddit_backup.backup_safety_copies) applies the same rule).
    type: int
    default: 3
  safety_copies_max_age:
    description:
      - After a restore, safety copies older than this (by the restore time in their name) are removed, however few
        there are, except this restore's own. A duration such as C(7d); an empty string sets no age limit.
    type: str
    default: 7d
  owner:
    description:
      - User (name or uid) to own everything restored. By default, when run as root, restored items take the
        owner of what they replace (or of their nearest existing folder); otherwise the user running the task.
    type: str
  group:
    description: Group (name or gid) to own everything restored; defaults as O(owner).
    type: str
  force:
    description:
      - Replace a database even though a running process holds it open. That process keeps writing to the old
        file (now in the safety copy); stop it instead whenever you can.
    type: bool
    default: false
  keep:
    description:
      - Top-level entries of O(dest) that O(scope=full) leaves in place (never replaced, never moved aside), by
        default the ones full backups exclude. The archive must not lie inside an entry the restore replaces.
    type: list
    elements: str
    default: [backups, venv]
  require_same_root:
    description:
      - Refuse, before anything is read or changed, when O(dest) is not the application root the backup was made
        of (the C(app_root) its manifest and C(.meta.json) record), naming both paths. A typo in O(dest) would
        otherwise fill a new folder while the real application stays as it was.
      - V(false) restores into any folder (a scratch root for a drill, a new server with another layout). The
        collection's restore playbooks set V(true) unless C(reddit_backup_restore_to_other_root) is V(true).
    type: bool
    default: false
  required:
    description:
      - Paths that must be in the archive for O(verify_first) to pass; see M(devops.reddit_backup.backup_verify).
    type: list
    elements: str
  temp_dir:
    description:
      - In check mode, where databases are copied for their integrity check (the system's temporary folder by default).
    type: path
notes:
  - Needs Python 3.9+ on the target (no C(tarfile) extraction filters are used; Debian 12's 3.11.2 works) and, for
    zstd archives, the C(zstd) tool. Staging needs free space beside O(dest) for what the scope restores.
  - Symlinks are checked against the archive's own tree; absolute symlinks are refused, as they lead outside O(dest).
  - On filesystems without C(RENAME_EXCHANGE) (some network and FUSE filesystems) an item is swapped with two
    renames; a kill between them leaves it missing until the next restore puts the old one back.
seealso:
  - module: devops.reddit_backup.backup_verify
  - module: devops.reddit_backup.backup_info
"""

EXAMPLES = r"""
- name: The guide's database recovery (the service is stopped first)
  devops.reddit_backup.backup_restore:
    backup_dir: /home/cayir/cicd_project/backups
    dest: /home/cayir/cicd_project
    scope: database
    owner: cayir
    group: cayir

- name: Restore the configuration from a given archive
  devops.reddit_backup.backup_restore:
    archive: /home/cayir/cicd_project/backups/config/config_20250528_120000.tar.zst
    dest: /home/cayir/cicd_project
    scope: config

- name: Point-in-time recovery of everything, as it was 6 hours ago
  devops.reddit_backup.backup_restore:
    backup_dir: /home/cayir/cicd_project/backups
    before: 6 hours ago
    dest: /home/cayir/cicd_project
    scope: full

- name: The whole service as it was at 14:00:00 UTC, its databases from the Litestream replica (to the sync)
  devops.reddit_backup.backup_restore:
    backup_dir: /home/cayir/cicd_project/backups
    replica: /etc/reddit-backup/reddit-sentiment/replica.json
    before: "2025-05-28T14:00:00Z"
    dest: /home/cayir/cicd_project
    scope: full
  register: restored_at_14

- name: Restore only a backup this host's key signed (the public key comes from the inventory, never the store)
  devops.reddit_backup.backup_restore:
    backup_dir: /home/cayir/cicd_project/backups
    dest: /home/cayir/cicd_project
    identity_file: /root/keys/operator.key
    trusted_signing_keys: "{{ reddit_backup_trusted_signing_keys }}"

- name: Restore two files only
  devops.reddit_backup.backup_restore:
    backup_dir: /home/cayir/cicd_project/backups
    dest: /home/cayir/cicd_project
    scope:
      - config/production.env
      - monitoring/alerting_rules.yml
"""

RETURN = r"""
authenticated:
  description:
    - Whether a trusted key's signature was checked for every link restored, and each archive read was the one its
      signed catalog entry names. V(false) when no O(allowed_signers) or O(trusted_signing_keys) were given; then
      nothing says who made the backup.
  returned: always
  type: bool
  sample: true
signed_by:
  description: The trusted key that signed the backup restored, as C(principal) and C(key) (its fingerprint); null when not checked.
  returned: always
  type: dict
  sample: {"principal": "trusted-1", "key": "SHA256:OCiUNplWSw/dqd438KgOjbMLsyeJzUPX+E0lq6TDgtc"}
authenticity:
  description: In words, whether authenticity was checked and by which keys.
  returned: always
  type: str
  sample: "checked: every link signed by a trusted key (SHA256:OCiUNplWSw/dqd438KgOjbMLsyeJzUPX+E0lq6TDgtc)"
source:
  description:
    - Where the restored data came from, V(archive) or V(replica) (O(replica)), or V(archive+replica) for the whole
      service at a moment (O(replica) with O(backup_dir)).
  returned: always
  type: str
  sample: replica
recovery_point:
  description:
    - With O(replica), the time (UTC, to the second) of the newest transaction restored, for the oldest of the
      databases; the data committed after it is what the restore could not bring back.
  returned: when restored from the replica
  type: str
  sample: "2025-05-28T14:00:00Z"
recovery_points:
  description:
    - For the whole service at a moment (O(replica) with O(backup_dir)), each part restored, its source and the
      point it reached. C(files) (code, configuration, units) come from the archive, whose C(recovery_point) is the
      time it was made; each database comes from the replica, whose C(recovery_point) is the time of the newest
      Litestream sync at or before O(before) (Litestream restores whole syncs), to the second, with its C(txid).
  returned: when the whole service was restored at a moment
  type: list
  elements: dict
  sample: [{"part": "files", "source": "archive", "from": "/srv/backups/daily/backup_20250528_020000.tar.zst",
            "recovery_point": "2025-05-28T02:00:00Z"},
           {"part": "data/reddit_sentiment.db", "source": "replica", "from": "litestream replica",
            "txid": "00000000000004d2", "recovery_point": "2025-05-28T13:59:59Z"}]
reached:
  description: For the whole service at a moment, RV(recovery_points) in words (the restore playbooks' RTO line ends with it).
  returned: when the whole service was restored at a moment
  type: str
  sample: "files at 2025-05-28T02:00:00Z (archive); data/reddit_sentiment.db at 2025-05-28T13:59:59Z (replica)"
archive_created:
  description: For the whole service at a moment, when the archive the files came from was made (its manifest).
  returned: when the whole service was restored at a moment
  type: str
  sample: "2025-05-28T02:00:00Z"
before:
  description: The moment asked for (UTC, to the second), with O(replica); null for the latest.
  returned: when restored from the replica
  type: str
  sample: "2025-05-28T14:00:00Z"
replica:
  description:
    - With O(replica) (also with O(backup_dir)), per database, the newest transaction restored (C(txid)) and its
      C(recovery_point).
    - C(lag_seconds), how far that recovery point was behind the newest commit of the database at the app root (the
      last write of its WAL) when the restore began, to the second; null without a live database there.
  returned: when restored from the replica
  type: dict
  sample: {"data/reddit_sentiment.db": {"path": "data/reddit_sentiment.db", "txid": "00000000000004d2",
                                        "recovery_point": "2025-05-28T13:59:59Z", "lag_seconds": 1.0}}
replica_lag_seconds:
  description:
    - With O(replica), the largest C(lag_seconds) of RV(replica); the recovery test records it.
  returned: when restored from the replica
  type: float
  sample: 1.0
archive:
  description: The archive restored from; null when restored from the replica.
  returned: always
  type: str
  sample: /home/cayir/cicd_project/backups/daily/backup_20250528_020000.tar.zst
chain:
  description: Every archive read, root first; just RV(archive) for a backup that stands alone.
  returned: always
  type: list
  elements: str
  sample: [/srv/backups/daily/backup_20250528_020000.tar.zst, /srv/backups/incremental/incremental_20250528_080000.tar.zst]
dest:
  description: The real path restored into.
  returned: always
  type: str
  sample: /home/cayir/cicd_project
scope:
  description: The scope restored (a list for a list of paths).
  returned: always
  type: raw
  sample: database
restored:
  description:
    - The items swapped in (absolute paths). A database is restored with its folder, so this names the folder.
      Empty when everything already matched the backup.
  returned: always
  type: list
  elements: str
  sample: [/home/cayir/cicd_project/data]
safety_copies:
  description: Where the replaced items were moved (empty with O(safety_copy=false) or when nothing existed).
  returned: always
  type: list
  elements: str
  sample: [/home/cayir/cicd_project/data.pre-restore-20250528T140312Z]
passed_over:
  description: With O(newest_good), the newer backup that failed verification and was not restored.
  returned: always
  type: list
  elements: str
  sample: [/home/cayir/cicd_project/backups/config/config_20250528_140000.tar.zst]
safety_copies_removed:
  description: Earlier safety copies the retention rule (O(safety_copies_keep), O(safety_copies_max_age)) removed
    after this restore.
  returned: always
  type: list
  elements: str
  sample: [/home/cayir/cicd_project/data.pre-restore-20250501T020000Z]
databases:
  description: The databases restored (paths relative to O(dest)).
  returned: always
  type: list
  elements: str
  sample: [data/reddit_sentiment.db]
missing:
  description: Paths of the scope that the backup does not hold (for V(config), such as a missing Prometheus file).
  returned: always
  type: list
  elements: str
  sample: []
not_restored:
  description:
    - What this restore left as it was, in words, so a summary never implies the whole application came back.
    - For V(full), the entries named in O(keep) (C(venv/) is never in a backup; rebuild it from the wheelhouse),
      what backups never hold (C(logs/*.log.*), C(__pycache__)) and earlier safety copies; for another scope,
      everything outside it; and the paths of the scope the backup lacks.
  returned: always
  type: list
  elements: str
  sample: ["venv/: never in a backup, left as it is (rebuild it from the wheelhouse when it is missing)"]
unit_states:
  description:
    - The application's systemd units as they were when the backup was made (the units whose files it holds under
      C(systemd/) and that systemd knew then), by unit name, each with C(enabled), C(active) and C(triggered_by) (the
      timers that start it).
    - The restore playbooks put a unit back in this state when the host does not know the unit (a new server, unit
      files removed); the host's own state wins when it knows the unit.
    - Null for a backup made before states were recorded, without unit files, or where C(systemctl) could not tell
      (M(devops.reddit_backup.backup_create) says why in
      RV(devops.reddit_backup.backup_create#module:unit_states_note)).
  returned: always
  type: dict
  sample: {"reddit-sentiment-monitor.service": {"enabled": true, "active": true, "triggered_by": []},
           "reddit-sentiment-pipeline.service": {"enabled": false, "active": false,
                                                 "triggered_by": ["reddit-sentiment-pipeline.timer"]}}
members:
  description: Number of members the archive holds (the manifest not counted).
  returned: always
  type: int
  sample: 31
bytes:
  description: Bytes of file data staged; null in check mode.
  returned: always
  type: int
  sample: 401234567
verification:
  description:
    - The verification done while staging, as M(devops.reddit_backup.backup_verify) returns it (C(status),
      C(valid), C(reason), C(checks), C(errors), C(level) V(comprehensive), or V(members) with O(verify_first=false)).
  returned: always
  type: dict
  sample: {"status": "valid", "valid": true, "reason": "all 15 checks passed"}
recovered:
  description: What this run finished for a restore that was killed before it (its safety copies, its staging folder).
  returned: always
  type: list
  elements: str
  sample: []
duration:
  description: Seconds the restore took.
  returned: always
  type: float
  sample: 4.1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._option_specs import (
    IDENTITY, LOCK_TIMEOUT, SELECTION, TRUSTED_SIGNERS, shared_options)
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import (
    DEFAULT_KEEP, RestoreRequest, restore)
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.restore import (
    request_from_settings, restore_from_replica)
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.whole import restore_whole_service


def main():
    module = AnsibleModule(
        argument_spec=shared_options(
            SELECTION, IDENTITY, LOCK_TIMEOUT, TRUSTED_SIGNERS,
            archive=dict(type="path"),
            backup_dir=dict(type="path"),
            dest=dict(type="path", required=True),
            scope=dict(type="raw", default="full"),
            verify_first=dict(type="bool", default=True),
            safety_copy=dict(type="bool", default=True),
            newest_good=dict(type="bool", default=False),
            safety_copies_keep=dict(type="int", default=3),
            safety_copies_max_age=dict(type="str", default="7d"),
            owner=dict(type="str"),
            group=dict(type="str"),
            force=dict(type="bool", default=False),
            keep=dict(type="list", elements="str", default=list(DEFAULT_KEEP)),
            required=dict(type="list", elements="str"),
            temp_dir=dict(type="path"),
            require_same_root=dict(type="bool", default=False),
            replica=dict(type="path"),
        ),
        mutually_exclusive=[("archive", "backup_dir"), ("archive", "replica"), ("before", "name"), ("replica", "name")],
        required_one_of=[("archive", "backup_dir", "replica")],
        supports_check_mode=True,
    )
    with guarded(module, "restoring a backup"):
        run(module)


def run(module):
    params = module.params
    if params["replica"] and not params["backup_dir"]:
        return run_from_replica(module)
    request = RestoreRequest(dest=params["dest"], archive=params["archive"], backup_dir=params["backup_dir"],
                             before=params["before"], name=params["name"], scope=params["scope"],
                             verify_first=params["verify_first"], safety_copy=params["safety_copy"],
                             newest_good=params["newest_good"], safety_copies_keep=params["safety_copies_keep"],
                             safety_copies_max_age=params["safety_copies_max_age"] or None,
                             owner=params["owner"], group=params["group"], force=params["force"],
                             keep=params["keep"], required=params["required"], temp_dir=params["temp_dir"],
                             lock_timeout=params["lock_timeout"], identity_file=params["identity_file"],
                             allowed_signers=params["allowed_signers"],
                             trusted_signing_keys=params["trusted_signing_keys"],
                             require_same_root=params["require_same_root"])
    try:
        if params["replica"]:
            result = restore_whole_service(request, replica_request(params), check_mode=module.check_mode)
        else:
            result = dict(restore(request, check_mode=module.check_mode), source="archive")
    except BackupError as error:
        module.fail_json(msg=str(error))
    finish(module, result)


def replica_request(params):
    """The replica of the whole-service restore, as the litestream role's settings name it."""
    return request_from_settings(params["replica"], dest=params["dest"], before=params["before"])


def run_from_replica(module):
    params = module.params
    scope = params["scope"]
    if scope != "database" and not isinstance(scope, list):
        module.fail_json(msg="replica restores databases only: set scope to database (or a list of the replicated "
                             "databases), or restore scope %s from an archive (archive or backup_dir)" % scope)
    try:
        request = request_from_settings(
            params["replica"], databases=scope if isinstance(scope, list) else None, dest=params["dest"],
            before=params["before"], safety_copy=params["safety_copy"],
            safety_copies_keep=params["safety_copies_keep"],
            safety_copies_max_age=params["safety_copies_max_age"] or None, owner=params["owner"],
            group=params["group"], force=params["force"], lock_timeout=params["lock_timeout"])
        result = restore_from_replica(request, check_mode=module.check_mode)
    except BackupError as error:
        module.fail_json(msg=str(error))
    finish(module, result)


def finish(module, result: dict):
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
