# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""list and verify: the catalog and the verifier of the engine, called directly."""

from __future__ import annotations

import contextlib
import json
import os
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import signing as _signing
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify import verify as _verify
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.window import recovery_window
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import bug_report
from .output import Output, complain, human_size, say, utc_now
from .progress import Progress, ReadWatch, on_terminal
from .recording import record_run
from .settings import EXIT_FAILED, EXIT_OK, UsageError, replica_settings, verify_keys
from .words import archive_or_name, describe


def command_list(settings, args) -> int:
    """The catalog, as a table (or JSON for scripts). Not logged: it changes nothing."""
    try:
        backups = [b for b in _catalog.list_backups(settings.backup_dir) if args.type in (None, b["type"])]
    except BackupError as error:
        complain("reddit-backup: list FAILED: %s" % error)
        return EXIT_FAILED
    totals = _catalog.summarize(backups)["totals"]
    replica = replica_window(settings)
    if args.json:
        listed = {"backups": backups, "totals": totals}
        if replica:
            listed["replica"] = replica
        say(json.dumps(listed, indent=2, sort_keys=True, default=str))
        return EXIT_OK
    if not backups:
        say("no backups in %s" % settings.backup_dir)
        say_replica(replica)
        return EXIT_OK
    say("%-12s %-34s %-20s %10s  %s" % ("TYPE", "NAME", "CREATED (UTC)", "SIZE", "VERIFIED"))
    for backup in backups:
        say("%-12s %-34s %-20s %10s  %s" % (backup.get("type"), backup.get("name"),
                                            (backup.get("created") or "").replace("T", " ").rstrip("Z"),
                                            human_size(backup.get("size")), verified_text(backup)))
        if args.detailed:
            for label, value in detail_rows(backup):
                say("    %-10s %s" % (label, value))
    say("%d backups, %s in %s" % (totals.get("count", len(backups)), human_size(totals.get("bytes", 0)),
                                  settings.backup_dir))
    say_replica(replica)
    return EXIT_OK


def replica_window(settings) -> dict:
    """The Litestream replica's recovery window where the litestream role set one up, else None."""
    path = replica_settings(settings)
    return recovery_window(path) if os.path.lexists(path) else None


def say_replica(replica: dict) -> None:
    """The replica's window under the archives: the oldest and newest second each database can be restored to."""
    if not replica:
        return
    if not replica["reachable"]:
        say("replica: UNREACHABLE (%s); the archives above are listed all the same" % replica["error"])
        return
    for path, window in sorted(replica["databases"].items()):
        if window["oldest"] is None:
            say("replica: %s: nothing restorable yet (%d files)" % (path, window["files"]))
        else:
            say("replica: %s: any second from %s to %s (Litestream, %d files)" % (
                path, window["oldest"].replace("T", " ").rstrip("Z"), window["newest"].replace("T", " ").rstrip("Z"),
                window["files"]))


def verified_text(backup: dict) -> str:
    verified = backup.get("verified")
    if not verified:
        return "-"
    text = "%s (%s, %s)" % (verified.get("status", "?"), verified.get("level", "?"),
                            (verified.get("at") or "?").replace("T", " ").rstrip("Z"))
    return text if verified.get("current", True) else text + " [archive changed since]"


def detail_rows(backup: dict) -> list:
    rows = [("archive", backup.get("archive")), ("host", backup.get("host")),
            ("files", "%s files, %s before compression" % (backup.get("files"), human_size(backup.get("bytes")))),
            ("sha256", backup.get("sha256"))]
    if backup.get("parent"):
        rows.append(("parent", backup["parent"]))
    for database in backup.get("databases") or []:
        rows.append(("database", "%s (integrity %s)" % (database.get("path"), database.get("integrity"))))
    return [(label, value) for label, value in rows if value is not None]


def chosen_archive(settings, args) -> str:
    """The archive to verify; a name or path that names no backup is the caller's mistake (exit 2, no metrics)."""
    if not args.archive:
        return _catalog.pick_archive(backup_dir=settings.backup_dir)
    chosen = archive_or_name(args.archive)
    try:
        if "archive" in chosen:
            if not os.path.lexists(chosen["archive"]):
                raise BackupError("there is no file at %s; give an archive's path or a backup name (reddit-backup "
                                  "list shows them)" % chosen["archive"])
            return _catalog.pick_archive(archive=chosen["archive"])
        return _catalog.pick_archive(backup_dir=settings.backup_dir, name=chosen["name"])
    except BackupError as error:
        raise UsageError("verify %s: %s" % (args.archive, error)) from None


def verify(settings, archive: str, level: str, progress: Progress) -> dict:
    keys = verify_keys(settings)
    trust = _signing.trust_from(keys.get("allowed_signers"), keys.get("trusted_signing_keys"))
    with trust or contextlib.nullcontext(), ReadWatch([archive], progress):
        return _verify.verify_archive(archive, level, record=True, identity_file=keys.get("identity_file"),
                                      trust=trust)


def command_verify(settings, args) -> int:
    """One archive (the newest backup when none is named) verified; the verdict is recorded beside it."""
    archive = chosen_archive(settings, args) if args.archive else None
    what = describe(args)
    output = Output(settings, args.quiet)
    output.line("==== %s reddit-backup %s (%s, pid %d) ====" % (utc_now(), what, settings.app, os.getpid()),
                to_terminal=False)
    started = time.time()
    try:
        archive = archive or chosen_archive(settings, args)
        result = verify(settings, archive, "comprehensive" if args.comprehensive else "quick",
                        Progress(on_terminal(args.quiet), "verify"))
        show_verdict(output, result)
    except BackupError as error:
        result = {"archive": archive, "valid": False, "reason": str(error)}
        output.line("verification could not run: %s" % error)
    except Exception as error:  # pylint: disable=broad-except  # a bug: said in words, recorded and notified
        result = {"archive": archive, "valid": False, "reason": bug_report("reddit-backup", what, error)}
        output.line("verification could not run: %s" % result["reason"])
    valid = result.get("valid") is True
    duration = time.time() - started
    record_run(settings, output, {"operation": "verify", "type": backup_type_of(settings, result.get("archive")),
                                  "status": "success" if valid else "failed", "duration": round(duration, 3),
                                  "name": os.path.basename(result.get("archive") or "") or None,
                                  "error": None if valid else result.get("reason")}, started)
    if valid:
        output.succeeded("reddit-backup: %s succeeded in %.1f s" % (what, duration))
        output.close()
        return EXIT_OK
    output.failed("reddit-backup: %s FAILED: %s" % (what, result.get("reason") or "invalid"))
    output.close()
    return EXIT_FAILED


def show_verdict(output, result: dict) -> None:
    for warning in result.get("warnings") or []:
        output.warn(warning)
    output.line("%s: %s (%s)" % (result.get("archive"), result["status"].upper(), result.get("reason", "")))
    if result.get("authenticity"):
        output.line("  authenticity: %s" % result["authenticity"])
    checks = result.get("checks", [])
    width = min(40, max([len(str(check.get("name", "?"))) for check in checks] or [0]))
    for check in checks:
        output.line("  %-8s %-*s %s" % (check.get("status", "?"), width, check.get("name", "?"),
                                        check.get("detail") or ""))


def backup_type_of(settings, archive) -> str:
    if not archive:
        return "all"
    try:
        for backup in _catalog.list_backups(settings.backup_dir):
            if backup["archive"] == archive:
                return backup["type"]
    except BackupError:  # only a label
        pass
    return "all"
