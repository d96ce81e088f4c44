# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The remote copy: push what the remote lacks, then apply the retention policy there, as the backup playbook's
push and backup_prune with a remote do; the newest backup left there goes into the metrics."""

from __future__ import annotations

import contextlib
import os

from ansible_collections.devops.reddit_backup.plugins.module_utils._remote import sync as _remote
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from .engine_job import run_engine_job
from .output import human_size
from .progress import Progress, ReadWatch, on_terminal
from .retention import retention_policy
from .settings import ConfigError


def remote_configured(settings) -> bool:
    """As the backup playbook decides: a push when reddit_backup_remote_sync is true and a remote is set."""
    return bool(settings.setting("remote_sync", False)) and bool(settings.setting("remote", ""))


def sync_request(settings) -> _remote.SyncRequest:
    return _remote.SyncRequest(
        backup_dir=settings.backup_dir, remote=settings.setting("remote"), direction="push", select="all",
        ssh_key=settings.setting("remote_ssh_key"), known_hosts=settings.setting("remote_known_hosts"),
        ssh_host_key_checking=settings.setting("remote_host_key_checking", "strict"),
        s3_endpoint_url=settings.setting("s3_endpoint_url"), s3_region=settings.setting("s3_region"),
        s3_access_key=settings.setting("s3_access_key"), s3_secret_key=settings.setting("s3_secret_key"))


def push_and_prune(settings, output, outcome, dry_run: bool = False, progress: Progress = None) -> tuple:
    """Push (drawing ``progress`` on a terminal), then remote retention; a failure of either is the run's failure
    (a BackupError naming the remote). Returns what the push and the retention did."""
    request = sync_request(settings)
    try:
        with transfer_watch(request, progress, dry_run):
            pushed = _remote.sync(request, check_mode=dry_run)
        pruned = _remote.prune_remote(request, retention_policy(settings), settings.setting("prune_now") or None,
                                      check_mode=dry_run)
    except BackupError as error:
        raise BackupError("pushing to the remote copy %s failed: %s" % (request.remote, error)) from None
    output.line("remote:    %s %d backups (%d bytes) to %s; %s %d there by the retention policy, %d kept"
                % ("would push" if dry_run else "pushed", len(pushed["transferred"]), pushed["bytes"],
                   pushed["remote"], "would remove" if dry_run else "removed", len(pruned["deleted"]),
                   len(pruned["kept"])))
    created = [item["created"] for item in pruned["kept"] if item.get("created")]
    outcome.remote = {"newest": max(created) if created else None}
    return pushed, pruned


def transfer_watch(request: _remote.SyncRequest, progress: Progress, dry_run: bool):
    """A watch on the files the push will send (asked of the remote first), or nothing without a terminal."""
    if progress is None or not progress.enabled or dry_run:
        return contextlib.nullcontext()
    planned = _remote.sync(request, check_mode=True)
    return ReadWatch([os.path.join(request.backup_dir, path) for item in planned["transferred"]
                      for path in item["files"]], progress)


def command_sync(settings, args) -> int:
    if not remote_configured(settings):
        raise ConfigError("no remote copy is configured for %s: set reddit_backup_remote (ssh:// or s3:// URL) and "
                          "reddit_backup_remote_sync: true in the inventory, then re-run the runner role"
                          % settings.app)

    def work(output, outcome):
        pushed, pruned = push_and_prune(settings, output, outcome, args.dry_run,
                                        Progress(on_terminal(args.quiet), "sync"))
        outcome.summary = ": %s %d backups (%s) to %s, %s %d there by the retention policy" % (
            "would push" if args.dry_run else "pushed", len(pushed["transferred"]), human_size(pushed["bytes"]),
            pushed["remote"], "would remove" if args.dry_run else "removed",
            len(pruned["deleted"]))
    return run_engine_job(settings, args, "sync", "all", work)
