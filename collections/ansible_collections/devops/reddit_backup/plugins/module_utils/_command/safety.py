# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""safety-copies: the copies restores moved aside (``<item>.pre-restore-<stamp>``), listed, pruned by the rule the
inventory sets (reddit_backup_safety_copies_keep / _max_age), or removed by name: the engine the cleanup playbook's
backup_safety_copies task calls. Run as root: a full restore leaves its copy beside the app root, in a folder
only root writes."""

from __future__ import annotations

import json
import os
import shlex

from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import safety as _safety
from .engine_job import run_engine_job
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from .output import complain, say
from .settings import DEFAULT_CONFIG_DIR, EXIT_FAILED, EXIT_OK


def safety_rule(settings) -> tuple:
    """(keep, max_age) as the cleanup playbook passes them."""
    keep = settings.setting("safety_copies_keep", _safety.DEFAULT_KEEP)
    return _safety.check_keep(keep), str(settings.setting("safety_copies_max_age", _safety.DEFAULT_MAX_AGE))


def command_safety_copies(settings, args) -> int:
    if not (args.prune or args.remove):
        return show(settings, args)

    def work(output, outcome):
        keep, max_age = safety_rule(settings) if args.prune else (None, None)
        result = _safety.prune_safety_copies(settings.app_root, keep, max_age, args.remove or (),
                                             check_mode=bool(args.dry_run), leave_unremovable=True)
        outcome.summary = ": " + report_pruned(settings, output, result, bool(args.dry_run))
    return run_engine_job(settings, args, "cleanup", "all", work)


def prune_by_rule(settings, output, dry_run: bool) -> str:
    """The safety copies' rule as the cleanup playbook applies it after the backups' retention (unless
    reddit_backup_safety_copies_prune is false); what it says, for the summary line."""
    if not settings.setting("safety_copies_prune", True):
        return ""
    keep, max_age = safety_rule(settings)
    result = _safety.prune_safety_copies(settings.app_root, keep, max_age, check_mode=dry_run,
                                         leave_unremovable=True)
    return report_pruned(settings, output, result, dry_run)


def report_pruned(settings, output, result: dict, dry_run: bool) -> str:
    """Each removal on its own line, the copies this user may not remove in a warning with the command that
    removes them (the scheduled cleanup runs as the app user; a full restore leaves its copy in a root-owned
    folder); returns the summary's words."""
    verb = "would remove" if dry_run else "removed"
    for copy in result["removed"]:
        output.line("  %s %s (%s)" % (verb, copy["path"], copy["reason"]))
    output.line("%s %d safety copies, kept %d" % (verb, len(result["removed"]), len(result["kept"])))
    left = result.get("left") or []
    if left:
        named = ", ".join("%s (%s)" % (copy["path"], copy["reason"]) for copy in left)
        output.warn("%d safety copies the rule removes are in a folder uid %d may not change: %s; run `%s` as root "
                    "to remove them" % (len(left), os.geteuid(), named, root_command(settings)))
    return "%s %d safety copies%s" % (verb, len(result["removed"]), ", %d left for root" % len(left) if left else "")


def root_command(settings) -> str:
    """The command line that applies the rule as root, for this application and configuration folder."""
    config = "" if settings.config_dir == DEFAULT_CONFIG_DIR else " --config-dir %s" % shlex.quote(settings.config_dir)
    return "reddit-backup%s --app %s safety-copies --prune" % (config, shlex.quote(settings.app))


def show(settings, args) -> int:
    """The safety copies and what the rule would do with them. Not logged: it changes nothing."""
    keep, max_age = safety_rule(settings)
    try:
        copies = _safety.list_safety_copies(settings.app_root)
    except BackupError as error:
        complain("reddit-backup: safety-copies FAILED: %s" % error)
        return EXIT_FAILED
    removed, kept = _safety.plan(copies, keep, max_age)
    if args.json:
        say(json.dumps({"would_remove": removed, "kept": kept}, indent=2, sort_keys=True))
        return EXIT_OK
    if not copies:
        say("no safety copies of %s" % settings.app_root)
        return EXIT_OK
    say("the rule: keep the %d newest of each item, none older than %s" % (keep, max_age))
    say("%-20s %-9s %-40s %s" % ("CREATED (UTC)", "KIND", "ITEM", "PATH"))
    for copy in sorted(removed + kept, key=lambda c: (c["created"], c["path"])):
        mark = "  <- the rule removes it: %s" % copy["reason"] if copy in removed else ""
        say("%-20s %-9s %-40s %s%s" % (copy["created"].replace("T", " ").rstrip("Z"), copy["kind"], copy["item"],
                                       copy["path"], mark))
    return EXIT_OK
