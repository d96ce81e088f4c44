# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run into the backup metrics (where the monitoring role set them up) and a notification when the engine's
policy says so. Never fails the command: problems become warnings."""

from __future__ import annotations

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring import metrics as _metrics
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring import notify as _notify
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring import notify_policy as _notify_policy

# Only these become the "type" label: anything else would create a series nothing ever clears.
KNOWN_TYPES = tuple(_catalog.TYPES) + (_metrics.ANY_TYPE,)


def record_run(settings, output, run: dict, started: float, remote=None) -> None:
    """Write ``run`` into the metrics textfile and notify on failure (or recovery), as monitoring.json says."""
    monitoring = settings.monitoring
    if not monitoring or not monitoring.get("textfile"):
        return
    if run.get("type") not in KNOWN_TYPES:
        output.warn("not recorded in the metrics: %r is not a backup type" % run.get("type"))
        return
    try:
        state_file = monitoring.get("state_file") or _metrics.default_state_file(monitoring["textfile"])
        earlier = _metrics.last_run(state_file, run["operation"], run.get("type"))
        if earlier and earlier.get("finished", 0) >= started:
            return  # a playbook recorded (and notified about) this run itself
        recorded = _metrics.record(monitoring["textfile"], settings.backup_dir, run=run,
                                   labels=monitoring.get("labels") or {"app": settings.app}, state_file=state_file,
                                   remote=remote)
    except Exception as error:  # pylint: disable=broad-except  # metrics never fail a run
        output.warn("could not write the metrics: %s" % error)
        return
    previous = (recorded.get("previous") or {}).get("status")
    try:  # the engine decides, as for the playbooks' backup_notify
        status = _notify_policy.notification_for(run["status"], previous,
                                                 monitoring.get("notify_on") or ["failure", "recovery"])
    except Exception as error:  # pylint: disable=broad-except  # a notification never fails a run
        output.warn("could not decide on a notification: %s" % error)
        return
    if status:
        notify_run(settings, output, run, status)


def notify_run(settings, output, run: dict, status: str) -> None:
    channels = (settings.monitoring or {}).get("notify") or {}
    if not channels.get("enabled", True) or not (channels.get("webhook_url_file") or channels.get("mail_to")):
        return
    try:
        url = None
        if channels.get("webhook_url_file"):
            with open(channels["webhook_url_file"], encoding="utf-8") as handle:
                url = handle.readline().strip() or None
        details = {key: run.get(key) for key in ("duration", "size", "name") if run.get(key) is not None}
        details["log"] = settings.log_file
        event = _notify.build_event(settings.app, run["operation"], status, run.get("error") or "",
                                    backup_type=run.get("type"), details=details)
        result = _notify.notify(event, webhook_url=url, mail_to=channels.get("mail_to") or [],
                                mail_from=channels.get("mail_from"), smtp_host=channels.get("smtp_host", "localhost"),
                                smtp_port=channels.get("smtp_port", 25), timeout=channels.get("timeout", 10),
                                attempts=channels.get("attempts", 2))
    except Exception as error:  # pylint: disable=broad-except  # a notification never fails a run
        output.warn("could not notify: %s" % error)
        return
    if result["delivered"]:
        output.log_only("reddit-backup: notified (%s): %s" % (status, result["reason"]))
    else:
        output.warn("notification not delivered: %s" % result["reason"])
