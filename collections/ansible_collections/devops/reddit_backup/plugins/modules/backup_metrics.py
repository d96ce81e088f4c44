#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_metrics
short_description: Write the backup metrics as a Prometheus node_exporter textfile
version_added: 0.1.0
description:
  - Writes the guide's backup metrics for node_exporter's textfile collector, replacing the file atomically so the
    collector never reads half a file.
  - "From the catalog of O(backup_dir): per backup type, the creation time of the newest backup
    (C(reddit_backup_last_success_timestamp_seconds), 0 while there is none), the number of backups, the bytes
    they take, the size of the newest, and the verdict of the most recently verified backup
    (C(reddit_backup_verification_success), read from the C(verified) entry that
    M(devops.reddit_backup.backup_verify) records; absent while nothing was verified)."
  - "From the filesystem holding O(backup_dir): its size, available bytes and utilisation
    (C(reddit_backup_filesystem_utilisation_ratio), 0 to 1, as C(df) computes Use%)."
  - "From O(run), and kept in a state file between runs: whether the last run of each operation and type
    succeeded (C(reddit_backup_last_run_success)), when it ended, how long it took and, for backups, the size it
    made; for recovery tests also C(reddit_backup_recovery_test_success) and the measured
    C(reddit_backup_recovery_test_restore_seconds)."
  - The alerting rules shipped in the C(devops.reddit_backup.monitoring) role read these series.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
  - devops.reddit_backup.attributes.action_group
attributes:
  check_mode:
    support: full
    details: Check mode computes the metrics and reports whether the textfile would change; it writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Without O(run), the textfile changes only when the catalog, the state or the filesystem usage changed.
        The free space of a busy filesystem changes all the time, so a second run may still report a change.
      - With O(run), every call records a run and reports a change.
options:
  backup_dir:
    description: The backup directory whose catalog the metrics describe. A missing directory counts as empty.
    type: path
    required: true
  textfile:
    description:
      - The file to write, in node_exporter's C(--collector.textfile.directory); its name must end in C(.prom).
        Its directory must exist. Written with mode C(0644) so node_exporter can read it.
      - One file per application, such as C(/var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom).
    type: path
    required: true
  state_file:
    description:
      - Where the results of earlier runs are kept (JSON, mode C(0644), no secrets). Defaults to O(textfile) with
        C(.state.json) appended, which the textfile collector ignores.
    type: path
  labels:
    description:
      - Labels added to every series, such as C(app=reddit-sentiment), so several applications on one host
        stay apart. C(type), C(operation) and C(status) are set by the metrics themselves.
    type: dict
    default: {}
  filesystem_path:
    description: The path whose filesystem is measured; O(backup_dir) (or its nearest existing parent) by default.
    type: path
  run:
    description: The result of the run that just ended, to record before the textfile is written.
    type: dict
    suboptions:
      operation:
        description: What ran.
        type: str
        required: true
        choices: [backup, verify, cleanup, prune, restore, recovery_test, sync, dr_simulation, rto_report]
      type:
        description:
          - The backup type it concerned (V(full), V(incremental), V(config), V(database)), or V(all).
          - Only these become label values, so a misspelt type never leaves a series that nothing clears.
        type: str
        default: all
        choices: [full, incremental, config, database, all]
      status:
        description: How it ended.
        type: str
        required: true
        choices: [success, failed]
      duration:
        description: Seconds it took.
        type: float
      size:
        description: For a backup, the size of the archive it made in bytes.
        type: int
      name:
        description: The backup it made or used.
        type: str
      error:
        description: What went wrong, for a failed run (kept in the state, not in the textfile).
        type: str
      finished:
        description: When it ended (ISO-8601 or epoch seconds); now by default.
        type: str
      restore_seconds:
        description: For a recovery test, the restore time it measured.
        type: float
      replica_lag_seconds:
        description:
          - For a recovery test that also restored the Litestream replica, how far the replica was behind the live
            database's newest commit, in seconds (to the second), as
            C(reddit_backup_recovery_test_replica_lag_seconds).
        type: float
      rto_seconds:
        description:
          - The recovery time it measured (for a disaster-recovery simulation, from the start of the restore to the
            checked service), as C(reddit_backup_last_run_rto_seconds).
        type: float
      rto_target_seconds:
        description: The recovery time objective it was held to, as C(reddit_backup_last_run_rto_target_seconds).
        type: float
  schedule:
    description:
      - "The operations scheduled on this host and how old the last run of each may get, in seconds, such as
        C({verify: 93600, recovery_test: 691200}). Written as C(reddit_backup_schedule_max_age_seconds) and
        C(reddit_backup_schedule_since_timestamp_seconds) (when the operation was first declared), so the alerting
        rules tell a drill that never ran from one that is not due yet."
      - Replaces the schedule declared before; omit it to keep that one. An empty mapping declares none.
    type: dict
  rto_report:
    description:
      - Write the recovery time report of the drills recorded in the state (recovery tests and disaster-recovery
        simulations) to O(rto_report.path), and record it as an V(rto_report) run, V(failed) when no
        disaster-recovery simulation passed in the period or one exceeded the objective.
      - Mutually exclusive with O(run).
    type: dict
    suboptions:
      path:
        description: The report file (plain text, mode C(0644)); its folder must exist.
        type: path
        required: true
      days:
        description: The period the report covers, in days up to now.
        type: float
        default: 92
      rto_target_seconds:
        description: The recovery time objective.
        type: float
        required: true
notes:
  - Runs on the host that holds the backups, as a user that may write to the textfile's directory.
seealso:
  - module: devops.reddit_backup.backup_info
  - module: devops.reddit_backup.backup_notify
  - name: node_exporter textfile collector
    description: How node_exporter exposes the metrics in C(*.prom) files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
"""

EXAMPLES = r"""
- name: Refresh the metrics from the catalog
  devops.reddit_backup.backup_metrics:
    backup_dir: /home/cayir/cicd_project/backups
    textfile: /var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom
    labels:
      app: reddit-sentiment

- name: Record a failed full backup
  devops.reddit_backup.backup_metrics:
    backup_dir: /home/cayir/cicd_project/backups
    textfile: /var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom
    labels:
      app: reddit-sentiment
    run:
      operation: backup
      type: full
      status: failed
      duration: 12.5
      error: "no space left on the device holding /home/cayir/cicd_project/backups"

- name: Record the weekly recovery test
  devops.reddit_backup.backup_metrics:
    backup_dir: /home/cayir/cicd_project/backups
    textfile: /var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom
    run:
      operation: recovery_test
      status: success
      duration: 95.2
      restore_seconds: 41.7

- name: Declare the drill host's schedule, so a drill that never runs is alerted on
  devops.reddit_backup.backup_metrics:
    backup_dir: /srv/backups/app1
    textfile: /var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom
    schedule:
      verify: 93600
      recovery_test: 691200
      dr_simulation: 2764800
      rto_report: 8208000

- name: Write the quarterly RTO report
  devops.reddit_backup.backup_metrics:
    backup_dir: /srv/backups/app1
    textfile: /var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom
    rto_report:
      path: /var/lib/reddit-backup/reddit-sentiment/rto-report.txt
      rto_target_seconds: 14400
"""

RETURN = r"""
textfile:
  description: The textfile written (or that would be written in check mode).
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom
state_file:
  description: The state file holding earlier run results.
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/reddit_backup_reddit-sentiment.prom.state.json
series:
  description: Number of series in the textfile.
  returned: always
  type: int
  sample: 38
metrics:
  description: The textfile's content.
  returned: always
  type: str
  sample: "# HELP reddit_backup_backups Complete backups in the catalog, by type.\n..."
filesystem:
  description: The measured filesystem (C(path), C(size), C(avail), C(used) in bytes, C(utilisation) 0 to 1).
  returned: always
  type: dict
  sample: {"path": "/home/cayir/cicd_project/backups", "size": 107374182400, "avail": 53687091200,
           "used": 53687091200, "utilisation": 0.5}
previous:
  description:
    - The recorded result of the previous run of the same operation and type as O(run) (with its C(status)),
      or null. A caller tells a recovery (previous V(failed), now V(success)) from a plain success with it.
  returned: always
  type: dict
  sample: {"operation": "backup", "type": "full", "status": "failed", "finished": 1748397600.0}
state_changed:
  description:
    - Whether the state file changed (a run recorded, a different O(schedule) declared). The textfile alone is
      rewritten whenever the catalog or the free space moved; a role that only declares its schedule reports a
      change on this.
  returned: always
  type: bool
  sample: false
report:
  description:
    - With O(rto_report), the report (C(text), C(passed), C(rto_seconds) the worst measured recovery time of the
      passing disaster-recovery simulations, C(kinds) the figures per kind of drill, C(drills) every drill).
  returned: when O(rto_report) is given
  type: dict
  sample: {"passed": true, "rto_seconds": 41.7, "rto_target_seconds": 14400, "days": 92}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.metrics import (
    default_state_file, record, write_rto_report)

RUN_SPEC = dict(
    operation=dict(type="str", required=True,
                   choices=["backup", "verify", "cleanup", "prune", "restore", "recovery_test", "sync",
                            "dr_simulation", "rto_report"]),
    type=dict(type="str", default="all", choices=["full", "incremental", "config", "database", "all"]),
    status=dict(type="str", required=True, choices=["success", "failed"]),
    duration=dict(type="float"),
    size=dict(type="int"),
    name=dict(type="str"),
    error=dict(type="str"),
    finished=dict(type="str"),
    restore_seconds=dict(type="float"),
    replica_lag_seconds=dict(type="float"),
    rto_seconds=dict(type="float"),
    rto_target_seconds=dict(type="float"),
)
REPORT_SPEC = dict(
    path=dict(type="path", required=True),
    days=dict(type="float", default=92),
    rto_target_seconds=dict(type="float", required=True),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backup_dir=dict(type="path", required=True),
            textfile=dict(type="path", required=True),
            state_file=dict(type="path"),
            labels=dict(type="dict", default={}),
            filesystem_path=dict(type="path"),
            run=dict(type="dict", options=RUN_SPEC),
            schedule=dict(type="dict"),
            rto_report=dict(type="dict", options=REPORT_SPEC),
        ),
        mutually_exclusive=[("run", "rto_report")],
        supports_check_mode=True,
    )
    with guarded(module, "recording metrics"):
        run(module)


def run(module):
    params = module.params
    run_result, report = params["run"], None
    try:
        if params["rto_report"]:
            wanted = params["rto_report"]
            report = write_rto_report(wanted["path"], params["state_file"] or default_state_file(params["textfile"]),
                                      wanted["days"], wanted["rto_target_seconds"], check_mode=module.check_mode)
            run_result = report.pop("run")
        result = record(params["textfile"], params["backup_dir"], run=run_result, labels=params["labels"],
                        state_file=params["state_file"], filesystem_path=params["filesystem_path"],
                        check_mode=module.check_mode, schedule=params["schedule"])
    except BackupError as error:
        module.fail_json(msg=str(error))
    for warning in result["warnings"]:
        module.warn(warning)
    module.exit_json(changed=result["changed"], textfile=result["textfile"], state_file=result["state_file"],
                     series=result["series"], metrics=result["text"], filesystem=result["filesystem"],
                     previous=result["previous"], state_changed=result["state_changed"],
                     **({"report": report} if report else {}))


if __name__ == "__main__":
    main()
