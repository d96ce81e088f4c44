# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""reddit-backup: the guide's ``backup_manager.py`` on the app host (installed by the devops.reddit_backup.runner
role, which also writes its settings).

create, list, verify, cleanup and sync call the collection's engine directly, with exactly the settings the
playbooks honour; the restores and the recovery drill, which stop and start services, run the playbooks. Every
run except list is appended to the app's logs/backup.log, recorded in the backup metrics (notifying on failure
when the monitoring role configured that), and exits with a code a script can trust. Run as root, the commands
that only read or write backups first become the application's user, so what they create belongs to it.
Exit codes:

  0 success   1 the run failed   2 usage error   3 the playbook is not installed yet   4 configuration error
  130 interrupted

Standard library only; it runs with the runner venv's Python.
"""

from __future__ import annotations

import argparse
import os

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import TYPES
from .backups import command_cleanup, command_create
from .catalog import command_list, command_verify
from .offsite import command_sync
from .output import complain
from .playbooks import command_recovery_test, command_restore, command_restore_database, command_verify_restore
from .safety import command_safety_copies
from .settings import (DEFAULT_CONFIG_DIR, EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_NOT_INSTALLED, EXIT_OK, EXIT_USAGE,
                       ConfigError, NotInstalled, Settings, UsageError, become_app_user, runs_as_app_user)

OPTIONAL_ARGUMENTS = ("type", "name", "archive", "before", "dry_run", "comprehensive", "json", "detailed", "prune",
                      "remove")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reddit-backup",
        description="Backups of the application on this host, with the devops.reddit_backup collection.",
        epilog="Exit codes: 0 success, 1 the run failed, 2 usage error, 3 not installed yet, 4 configuration "
               "error, 130 interrupted. Every run except list is appended to the app's logs/backup.log.")
    parser.add_argument("--app", help="the application (needed when several are set up on this host)")
    parser.add_argument("--config-dir", default=os.environ.get("REDDIT_BACKUP_CONFIG_DIR", DEFAULT_CONFIG_DIR),
                        help="where the runner role wrote the settings (%(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing on success (for cron and timers); failures still print")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more Ansible output for the commands that run playbooks (-v, -vv ...)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    create = commands.add_parser("create", help="take a backup (and push it when a remote copy is configured)")
    create.add_argument("--type", default="full", choices=list(TYPES))
    create.add_argument("--name", help="a named backup kept in manual/, such as pre-maintenance-20250528")
    create.add_argument("--dry-run", action="store_true", help="say what would be written; write nothing")
    create.set_defaults(handler=command_create)

    listing = commands.add_parser("list", help="list the backups")
    listing.add_argument("--detailed", action="store_true", help="archive, host, files, databases of each")
    listing.add_argument("--type", choices=list(TYPES))
    listing.add_argument("--json", action="store_true", help="the catalog as JSON, for scripts")
    listing.set_defaults(handler=command_list)

    verify = commands.add_parser("verify", help="verify a backup (the newest when none is named)")
    verify.add_argument("--comprehensive", action="store_true",
                        help="every member's checksum, database integrity, required files, configuration")
    verify.add_argument("archive", nargs="?", help="an archive path or a backup name")
    verify.set_defaults(handler=command_verify)

    restore = commands.add_parser("restore", help="restore the whole application from a backup")
    restore.add_argument("archive", nargs="?", help="an archive path or a backup name")
    restore.add_argument("--before", help="instead: the newest backup made at or before this moment "
                                          "(2025-05-28T14:00:00Z, '6 hours ago')")
    restore.set_defaults(handler=command_restore)

    restore_database = commands.add_parser("restore-database", help="restore the database")
    restore_database.add_argument("archive", nargs="?", default="latest",
                                  help="'latest' (default), an archive path or a backup name")
    restore_database.set_defaults(handler=command_restore_database)

    commands.add_parser("verify-restore", help="check the restored application").set_defaults(
        handler=command_verify_restore)

    cleanup = commands.add_parser("cleanup", help="remove the backups the retention policy no longer keeps")
    cleanup.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    cleanup.set_defaults(handler=command_cleanup)

    sync = commands.add_parser("sync", help="push the backups the remote copy lacks, then apply retention there")
    sync.add_argument("--dry-run", action="store_true", help="say what would be pushed and removed; do nothing")
    sync.set_defaults(handler=command_sync)

    safety = commands.add_parser("safety-copies", help="list the copies restores moved aside; --prune applies the "
                                                       "inventory's rule, --remove removes one (as root)")
    safety.add_argument("--prune", action="store_true",
                        help="remove what reddit_backup_safety_copies_keep / _max_age no longer keep")
    safety.add_argument("--remove", action="append", metavar="PATH", help="remove this safety copy (as listed)")
    safety.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    safety.add_argument("--json", action="store_true", help="the list as JSON, for scripts")
    safety.set_defaults(handler=command_safety_copies)

    commands.add_parser("recovery-test", help="the weekly recovery drill").set_defaults(
        handler=command_recovery_test)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code not in (0, None) else EXIT_OK
    for attribute in OPTIONAL_ARGUMENTS:
        if not hasattr(args, attribute):
            setattr(args, attribute, None)
    try:
        settings = Settings(args.config_dir, args.app)
        if runs_as_app_user(settings, args.command):
            become_app_user(settings)
        return args.handler(settings, args)
    except UsageError as error:
        complain("reddit-backup: %s" % error)
        return EXIT_USAGE
    except ConfigError as error:
        complain("reddit-backup: %s" % error)
        return EXIT_CONFIG
    except NotInstalled as error:
        complain("reddit-backup: %s: %s" % (args.command, error))
        return EXIT_NOT_INSTALLED
    except KeyboardInterrupt:
        complain("reddit-backup: interrupted")
        return EXIT_INTERRUPTED
