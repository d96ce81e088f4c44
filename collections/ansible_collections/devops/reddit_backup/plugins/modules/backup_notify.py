#!/usr/bin/python
# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_notify
short_description: Tell people about a failed (or recovered) backup run by webhook and mail, without ever failing
version_added: 0.1.0
description:
  - The guide's C(BACKUP_NOTIFICATION). POSTs a JSON body to a webhook and, optionally, sends a mail through a
    local MTA (C(smtp_host), port 25, no authentication).
  - "The body: C(source), C(app), C(host), C(operation), C(type), C(status), C(message), C(time) (UTC),
    C(details) and C(text), a one-line summary that chat webhooks (Slack, Mattermost) show as it is."
  - A notification never blocks or fails the run it reports on. Each channel is bounded by O(timeout) and
    O(attempts); whatever goes wrong (no route, a refusal, an HTTP error, a redirect, a missing URL file) comes
    back as RV(delivered=false) with the RV(reason). The task itself does not fail.
author:
  - devops.reddit_backup developers (@devops)
extends_documentation_fragment:
  - devops.reddit_backup.attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is sent; RV(delivered) is false and RV(reason) says so.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every call sends a notification; C(changed) is true when one was delivered.
options:
  app:
    description: The application the run was for.
    type: str
    default: reddit-sentiment
  operation:
    description: What ran (V(backup), V(verify), V(cleanup), V(restore), V(recovery_test) ...).
    type: str
    required: true
  type:
    description: The backup type concerned, or V(all).
    type: str
  status:
    description:
      - V(failed), V(succeeded), V(recovered) (the first success after a failure) or V(warning).
      - V(failed) when neither this nor O(run_status) is given.
    type: str
    choices: [failed, succeeded, recovered, warning]
  run_status:
    description:
      - Instead of O(status), the status of the run being reported (V(success) or V(failed)); the module then
        decides, with O(previous_status) and O(notify_on), whether the run notifies and as what (the decision the
        C(reddit-backup) command makes too). A run that does not notify returns RV(notified=false).
    type: str
    choices: [success, failed]
  previous_status:
    description: With O(run_status), the status of the previous run of the same operation and type (from the metrics).
    type: str
  notify_on:
    description:
      - With O(run_status), which runs notify. V(failure) every failed run, V(recovery) the first success after a
        failure, V(success) every success.
    type: list
    elements: str
    choices: [failure, recovery, success]
    default: [failure, recovery]
  summary:
    description: What happened, in a sentence a person can act on (sent as C(message)).
    type: str
    default: ""
  details:
    description: Anything else worth sending (archive, duration, the failing task); sent under C(details).
    type: dict
    default: {}
  webhook_url:
    description:
      - The webhook to POST to (C(http) or C(https)). Often carries a token, so it is never logged; prefer
        O(webhook_url_file).
    type: str
  webhook_url_file:
    description: A file on the target whose first line is the webhook URL (kept out of inventories and logs).
    type: path
  webhook_headers:
    description: Extra HTTP headers, such as C(Authorization). Never logged.
    type: dict
    default: {}
  mail_to:
    description: Mail recipients. Mail goes only when this is set.
    type: list
    elements: str
    default: []
  mail_from:
    description: The sender address; C(reddit-backup@<host>) by default.
    type: str
  smtp_host:
    description: The MTA that relays the mail.
    type: str
    default: localhost
  smtp_port:
    description: Its port.
    type: int
    default: 25
  timeout:
    description: Seconds each connection attempt may take.
    type: float
    default: 10
  attempts:
    description:
      - Webhook attempts; connection errors, HTTP 5xx and 429 are retried after a second. The longest a call can
        take is about O(attempts) times O(timeout).
    type: int
    default: 2
notes:
  - The webhook request honours the usual C(https_proxy) and C(no_proxy) environment of the target.
seealso:
  - module: devops.reddit_backup.backup_metrics
"""

EXAMPLES = r"""
- name: Tell the team that the nightly backup failed
  devops.reddit_backup.backup_notify:
    app: reddit-sentiment
    operation: backup
    type: full
    status: failed
    summary: "{{ backup_result.msg | default('the backup failed') }}"
    webhook_url_file: /etc/reddit-backup/reddit-sentiment/webhook_url
    mail_to:
      - ops@example.com
  register: notified

- name: Say when the notification could not be delivered (the run goes on)
  ansible.builtin.debug:
    msg: "notification not delivered: {{ notified.reason }}"
  when: not notified.delivered
"""

RETURN = r"""
notified:
  description: Whether the run notifies at all (with O(run_status), V(false) when O(notify_on) does not ask for it).
  returned: always
  type: bool
  sample: true
delivered:
  description: Whether every configured channel delivered the notification.
  returned: always
  type: bool
  sample: true
reason:
  description: What each channel reported, or why nothing was sent.
  returned: always
  type: str
  sample: "webhook: HTTP 200 from https://hooks.example.com/…"
channels:
  description: Per channel (C(webhook), C(mail)), C(delivered) and C(reason); the webhook also C(status) and C(attempts).
  returned: always
  type: dict
  sample: {"webhook": {"delivered": true, "status": 200, "attempts": 1, "reason": "HTTP 200 from https://hooks.example.com/…"}}
event:
  description: The JSON body that was (or would have been) sent.
  returned: always
  type: dict
  sample: {"source": "devops.reddit_backup", "app": "reddit-sentiment", "operation": "backup", "type": "full",
           "status": "failed", "text": "reddit-backup: full backup of reddit-sentiment on app1 FAILED: no space left"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import guarded
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.notify import build_event, notify
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.notify_policy import notification_for


def read_url_file(path: str):
    """(url, problem): the first non-empty line of ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    return line.strip(), None
    except OSError as error:
        return None, "cannot read webhook_url_file %s: %s" % (path, error.strerror or error)
    return None, "webhook_url_file %s is empty" % path


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app=dict(type="str", default="reddit-sentiment"),
            operation=dict(type="str", required=True),
            type=dict(type="str"),
            status=dict(type="str", choices=["failed", "succeeded", "recovered", "warning"]),
            run_status=dict(type="str", choices=["success", "failed"]),
            previous_status=dict(type="str"),
            notify_on=dict(type="list", elements="str", choices=["failure", "recovery", "success"],
                           default=["failure", "recovery"]),
            summary=dict(type="str", default=""),
            details=dict(type="dict", default={}),
            webhook_url=dict(type="str", no_log=True),
            webhook_url_file=dict(type="path"),
            webhook_headers=dict(type="dict", default={}, no_log=True),
            mail_to=dict(type="list", elements="str", default=[]),
            mail_from=dict(type="str"),
            smtp_host=dict(type="str", default="localhost"),
            smtp_port=dict(type="int", default=25),
            timeout=dict(type="float", default=10),
            attempts=dict(type="int", default=2),
        ),
        mutually_exclusive=[("webhook_url", "webhook_url_file"), ("status", "run_status")],
        supports_check_mode=True,
    )
    with guarded(module, "sending a notification"):
        run(module)


def run(module):
    params = module.params
    status = params["status"] or "failed"
    if params["run_status"]:
        try:
            status = notification_for(params["run_status"], params["previous_status"], params["notify_on"])
        except BackupError as error:
            module.fail_json(msg=str(error))
        if status is None:
            module.exit_json(changed=False, notified=False, delivered=False, channels={},
                             reason="a %s run after a %s one does not notify (notify_on: %s)" % (
                                 params["run_status"], params["previous_status"] or "first",
                                 ", ".join(params["notify_on"])))
    event = build_event(params["app"], params["operation"], status, params["summary"],
                        backup_type=params["type"], details=params["details"])
    url, problem = params["webhook_url"], None
    if params["webhook_url_file"]:
        url, problem = read_url_file(params["webhook_url_file"])
    if problem:
        module.exit_json(changed=False, notified=True, delivered=False, reason=problem, channels={}, event=event)
    if module.check_mode:
        module.exit_json(changed=False, notified=True, delivered=False, reason="check mode: nothing sent", channels={},
                         event=event)
    result = notify(event, webhook_url=url, webhook_headers=params["webhook_headers"], mail_to=params["mail_to"],
                    mail_from=params["mail_from"], smtp_host=params["smtp_host"], smtp_port=params["smtp_port"],
                    timeout=params["timeout"], attempts=params["attempts"])
    module.exit_json(changed=result["delivered"], notified=True, event=event, **result)


if __name__ == "__main__":
    main()
