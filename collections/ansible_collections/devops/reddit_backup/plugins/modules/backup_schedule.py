#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_schedule
short_description: Write the systemd units or cron files that schedule an application's backup jobs
version_added: 0.1.0
description:
  - The files behind the C(devops.reddit_backup.runner) role's schedules. With O(scheduler=systemd), a
    C(Type=oneshot) service and a timer (C(Persistent=true)) per job, named C(reddit-backup-<app>-<job>), and,
    with O(config_watch), a C(.path) unit that starts a configuration backup on every change. With V(cron), one file
    per job in O(cron_dir). Each job runs C(reddit-backup --app <app> --quiet <command>).
  - A job's O(jobs[].schedule) is a cron expression; its timer fires at the same moments (C(OnCalendar=) is derived
    from it) unless O(jobs[].on_calendar) is given.
  - Files are written atomically and only when their content differs. The application's files that are no longer
    wanted (a job removed, the other scheduler, O(state=absent)) are removed; files of other applications never
    are, so several applications and their jobs coexist in one folder.
  - It does not talk to systemd. RV(stop) names the units whose files it removes (stop and disable them first, from
    a check-mode run), RV(enable) the timers and path unit to enable and start after a C(daemon-reload).
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  app:
    description: The application's name, part of every file name. Letters, digits, C(_) and C(-).
    type: str
    required: true
  state:
    description: V(absent) removes all of the application's files.
    type: str
    choices: [present, absent]
    default: present
  scheduler:
    description: V(systemd), V(cron), or V(none) (no files; the application's existing ones are removed).
    type: str
    choices: [systemd, cron, none]
    default: systemd
  jobs:
    description: The jobs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Lowercase letters, digits and C(_); not V(config).
        type: str
        required: true
      command:
        description: The C(reddit-backup) arguments, such as C([create, --type, full]).
        type: list
        elements: str
        required: true
      description:
        description: What the job does, for C(Description=) and comments.
        type: str
      schedule:
        description: A cron expression (or C(@daily) and the like). Required for cron.
        type: str
      on_calendar:
        description: The timer's C(OnCalendar=), instead of the one derived from O(jobs[].schedule).
        type: str
      timeout:
        description: C(TimeoutStartSec=) of the service.
        type: str
      randomized_delay:
        description: C(RandomizedDelaySec=) of the timer.
        type: str
  command:
    description: The C(reddit-backup) command the jobs run.
    type: path
    default: /usr/local/bin/reddit-backup
  user:
    description: The user the jobs run as.
    type: str
    required: true
  group:
    description: Its group (systemd only).
    type: str
    required: true
  systemd_dir:
    description: Where units go.
    type: path
    default: /etc/systemd/system
  cron_dir:
    description: Where cron files go.
    type: path
    default: /etc/cron.d
  config_watch:
    description: With systemd, the absolute paths whose changes start a configuration backup; empty for no C(.path) unit.
    type: list
    elements: path
    default: []
  config_settle_seconds:
    description: Seconds the configuration backup waits after a change, so a burst of edits is taken once.
    type: int
    default: 5
  cron_mailto:
    description: C(MAILTO) of the cron files; empty leaves cron's default.
    type: str
    default: ""
  spread_minutes:
    description:
      - Spreads the jobs of a fleet over this many minutes after their scheduled moment, each host at its own
        stable offset, so a hundred hosts do not start (and push) at the same second. V(0) turns it off.
      - With systemd, C(RandomizedDelaySec=) with C(FixedRandomDelay=true) (systemd 247 and later; Debian 12 has
        252). Systemd derives each timer's offset from the machine id and the unit name, so the interval between
        two runs stays the job's period. A job's own O(jobs[].randomized_delay) wins over it.
      - With cron, the line starts with C(sleep N) where N is the sha256 of C(/etc/machine-id) (the host name when
        it has none) and the cron file's name, modulo the window in seconds.
      - It must be shorter than the shortest period of every job it delays (an hourly job takes less than 60).
    type: int
    default: 0
seealso:
  - module: devops.reddit_backup.backup_create
"""

EXAMPLES = r"""
- name: The guide's daily full backup and hourly database backup as timers
  devops.reddit_backup.backup_schedule:
    app: reddit-sentiment
    user: cayir
    group: cayir
    jobs:
      - {name: full, schedule: "0 2 * * *", command: [create, --type, full], description: daily full backup}
      - {name: database, schedule: "0 * * * *", command: [create, --type, database]}
    config_watch: [/home/cayir/cicd_project/config]
  register: schedule

- name: Enable and start the timers
  ansible.builtin.systemd_service:
    name: "{{ item }}"
    enabled: true
    state: started
    daemon_reload: true
  loop: "{{ schedule.enable }}"
"""

RETURN = r"""
written:
  description: Files written (or that would be).
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/system/reddit-backup-reddit-sentiment-full.timer]
removed:
  description: Files removed (or that would be).
  returned: always
  type: list
  elements: str
  sample: [/etc/cron.d/reddit-backup-reddit-sentiment-full]
unchanged:
  description: Files that already had the right content.
  returned: always
  type: list
  elements: str
  sample: []
enable:
  description: Timers and path unit of the application to enable and start.
  returned: always
  type: list
  elements: str
  sample: [reddit-backup-reddit-sentiment-full.timer, reddit-backup-reddit-sentiment-config.path]
stop:
  description: Units whose files are (or would be) removed; stop and disable them before.
  returned: always
  type: list
  elements: str
  sample: [reddit-backup-reddit-sentiment-incremental.timer, reddit-backup-reddit-sentiment-incremental.service]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._runner.units import Schedule, apply, job_from, plan

JOB_SPEC = dict(
    name=dict(type="str", required=True),
    command=dict(type="list", elements="str", required=True),
    description=dict(type="str"),
    schedule=dict(type="str"),
    on_calendar=dict(type="str"),
    timeout=dict(type="str"),
    randomized_delay=dict(type="str"),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            scheduler=dict(type="str", choices=["systemd", "cron", "none"], default="systemd"),
            jobs=dict(type="list", elements="dict", options=JOB_SPEC, default=[]),
            command=dict(type="path", default="/usr/local/bin/reddit-backup"),
            user=dict(type="str", required=True),
            group=dict(type="str", required=True),
            systemd_dir=dict(type="path", default="/etc/systemd/system"),
            cron_dir=dict(type="path", default="/etc/cron.d"),
            config_watch=dict(type="list", elements="path", default=[]),
            config_settle_seconds=dict(type="int", default=5),
            cron_mailto=dict(type="str", default=""),
            spread_minutes=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    with guarded(module, "writing the schedule"):
        run(module)


def run(module):
    params = module.params
    try:
        schedule = Schedule(app=params["app"], scheduler=params["scheduler"], command=params["command"],
                            user=params["user"], group=params["group"], systemd_dir=params["systemd_dir"],
                            cron_dir=params["cron_dir"], jobs=[job_from(job) for job in params["jobs"]],
                            config_watch=params["config_watch"], config_settle_seconds=params["config_settle_seconds"],
                            cron_mailto=params["cron_mailto"], present=params["state"] == "present",
                            spread_minutes=params["spread_minutes"])
        planned = plan(schedule)
        if not module.check_mode:
            apply(planned)
    except BackupError as error:
        module.fail_json(msg=str(error))
    diff = []
    if module._diff:
        diff = [{"before_header": item["path"], "after_header": item["path"], "before": item["before"] or "",
                 "after": item["after"]} for item in planned["write"]]
        diff += [{"before_header": path, "after_header": path, "before": "(file)\n", "after": ""}
                 for path in planned["remove"]]
    module.exit_json(changed=bool(planned["write"] or planned["remove"]),
                     written=[item["path"] for item in planned["write"]], removed=planned["remove"],
                     unchanged=planned["unchanged"], enable=planned["enable"], stop=planned["stop"], diff=diff)


if __name__ == "__main__":
    main()
