# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of an engine call on the hot path (create, cleanup, sync): the log header, the app's job lock, the
engine's own error message on failure, the metrics, the notification and the one summary line."""

from __future__ import annotations

import os
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils import _lock
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import bug_report
from .output import Output, utc_now
from .recording import record_run
from .settings import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .words import describe


class Outcome:
    """What the work reports back: the run's extra metrics fields, the summary's tail, the remote's state."""

    def __init__(self) -> None:
        self.run = {}
        self.summary = ""
        self.remote = None
        self.recorded = True


def run_engine_job(settings, args, operation: str, backup_type: str, work) -> int:
    """``work(output, outcome)`` under the job lock; a BackupError it raises is the run's failure message."""
    what = describe(args)
    output = Output(settings, args.quiet)
    started = time.time()
    output.line("==== %s reddit-backup %s (%s, pid %d) ====" % (utc_now(), what, settings.app, os.getpid()),
                to_terminal=False)
    outcome, error, interrupted = Outcome(), None, False
    try:
        with _lock.DirectoryLock(settings.state_dir, float(settings.runner.get("job_lock_timeout", 7200)),
                                 purpose="reddit-backup " + what):
            work(output, outcome)
    except KeyboardInterrupt:
        interrupted, error = True, "interrupted"
    except BackupError as failure:
        error = str(failure)
        output.line("reddit-backup: %s" % error, to_terminal=False)
    except Exception as failure:  # pylint: disable=broad-except  # a bug: said in words, recorded and notified
        error = bug_report("reddit-backup", what, failure)
        output.line("reddit-backup: %s" % error, to_terminal=False)
    duration = time.time() - started
    run = dict(outcome.run, operation=operation, type=backup_type, duration=round(duration, 3),
               status="failed" if error else "success", finished=time.time())
    if error:
        run["error"] = error
    if not getattr(args, "dry_run", False) and outcome.recorded:
        record_run(settings, output, run, started, remote=outcome.remote)
    if not error:
        output.succeeded("reddit-backup: %s succeeded in %.1f s%s" % (what, duration, outcome.summary))
        output.close()
        return EXIT_OK
    output.failed("reddit-backup: %s FAILED (%s) after %.1f s; the whole output is in %s"
                  % (what, error, duration, settings.log_file))
    output.close()
    return EXIT_INTERRUPTED if interrupted else EXIT_FAILED
