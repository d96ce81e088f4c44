# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""create and cleanup: the engine called directly with the settings the backup and cleanup playbooks honour."""

from __future__ import annotations

import os

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup import create as _create
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from .engine_job import run_engine_job
from .offsite import push_and_prune, remote_configured
from .output import human_size
from .progress import Progress, on_terminal
from .retention import retention_policy
from .safety import prune_by_rule


def backup_request(settings, args) -> _create.BackupRequest:
    """The backup playbook's backup_create options, from the same settings."""
    encrypted = bool(settings.setting("encryption", False))
    recipients = settings.setting("encryption_recipients") or None
    recipients_file = settings.setting("encryption_recipients_file") or None
    if encrypted and not (recipients or recipients_file):
        raise BackupError("reddit_backup_encryption is true but neither reddit_backup_encryption_recipients nor "
                          "reddit_backup_encryption_recipients_file is set: give the age public keys in the "
                          "inventory (nothing was written)")
    return _create.BackupRequest(
        app_root=settings.app_root, backup_dir=settings.backup_dir, type=args.type, name=args.name or None,
        compression=settings.setting("compression", "zstd"), integrity=settings.setting("integrity", "auto"),
        encryption_recipients=recipients if encrypted else None,
        encryption_recipients_file=recipients_file if encrypted else None,
        signing_key=settings.setting("signing_key") or None,
        wheelhouse=wheelhouse(settings) if args.type == "full" else None)


def wheelhouse(settings):
    """The wheels a full backup carries: the inventory's folder (on this host it is the controller's), or the
    copy the backup playbook left at reddit_backup_wheelhouse_dest."""
    source = settings.setting("wheelhouse")
    if not source:
        return None
    for folder in (source, settings.setting("wheelhouse_dest")):
        if folder and os.path.isdir(folder):
            return folder
    raise BackupError("reddit_backup_wheelhouse %s is not a folder on this host, nor is reddit_backup_wheelhouse_dest "
                      "%s: run the backup playbook once (it copies the wheels there) or fix the path"
                      % (source, settings.setting("wheelhouse_dest")))


def command_create(settings, args) -> int:
    def work(output, outcome):
        request = backup_request(settings, args)
        progress = Progress(on_terminal(args.quiet), "create --type %s" % args.type)
        request.progress = progress.update
        try:
            created = _create.create_backup(request, check_mode=bool(args.dry_run))
        finally:
            progress.close()
        for warning in created.get("warnings") or []:
            output.warn(warning)
        show_created(output, created, request, args.dry_run)
        if not args.dry_run:
            outcome.run.update(size=created.get("size"), name=created.get("name"))
            outcome.summary = ": %s (%s) %s" % (created["name"], human_size(created.get("size")), created["archive"])
        if remote_configured(settings):
            push_and_prune(settings, output, outcome, bool(args.dry_run))
    return run_engine_job(settings, args, "backup", args.type, work)


def show_created(output, created: dict, request: _create.BackupRequest, dry_run) -> None:
    databases = created.get("databases") or []
    output.line("%s backup %s made in %s s%s" % (created.get("type"), created.get("name"), created.get("duration"),
                                                 " (check mode: nothing written)" if dry_run else ""))
    output.line("archive:   %s" % created.get("archive"))
    output.line("size:      %s from %s in %s files (%s)" % (
        human_size(created.get("size") or 0), human_size(created.get("bytes")), created.get("files"),
        request.compression))
    output.line("databases: %s (integrity %s)" % (
        ", ".join(d.get("path", "?") for d in databases) or "none",
        ", ".join(sorted({str(d.get("integrity", "not checked")) for d in databases})) or "n/a"))
    encrypted = request.encryption_recipients or request.encryption_recipients_file
    output.line("encrypted: %s" % ("yes (age)" if encrypted else "no"))


def command_cleanup(settings, args) -> int:
    def work(output, outcome):
        pruned = _retention.prune(settings.backup_dir, retention_policy(settings),
                                  settings.setting("prune_now") or None, check_mode=bool(args.dry_run))
        output.line("%s %d backups (%s), kept %d" % ("would remove" if args.dry_run else "removed",
                                                     len(pruned["deleted"]), human_size(pruned["freed_bytes"]),
                                                     len(pruned["kept"])))
        for backup in pruned["deleted"]:
            output.line("  %s %s" % ("would remove" if args.dry_run else "removed", backup.get("name")))
        safety_copies = prune_by_rule(settings, output, bool(args.dry_run))
        outcome.summary = ": %s %d backups%s" % ("would remove" if args.dry_run else "removed", len(pruned["deleted"]),
                                                 "; " + safety_copies if safety_copies else "")
    return run_engine_job(settings, args, "cleanup", "all", work)
