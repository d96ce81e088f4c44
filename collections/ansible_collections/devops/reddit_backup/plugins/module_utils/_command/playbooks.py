# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The commands that stop and start services (restores, the restore check, the recovery drill): they run the
collection's playbooks with the runner's venv, inventory and ansible.cfg, and stream their output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils import _lock
from .output import Output, utc_now
from .recording import record_run
from .settings import COLLECTION, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, NotInstalled, UsageError
from .words import archive_or_name, describe

# command -> (playbook, operation recorded in the metrics)
PLAYBOOKS = {
    "restore": ("restore_full", "restore"),
    "restore-before": ("restore_point_in_time", "restore"),
    "restore-database": ("restore_database", "restore"),
    "verify-restore": ("verify_restore", "verify"),
    "recovery-test": ("recovery_test", "recovery_test"),
}


def ansible_settings(config: str, home: str) -> dict:
    """The ANSIBLE_* values every run of ansible-playbook gets, here and in the project's tests and benchmarks:
    this ansible.cfg, Ansible's own files under HOME (never in ~), plain text."""
    return {
        "ANSIBLE_CONFIG": config,
        "ANSIBLE_HOME": home,
        "ANSIBLE_LOCAL_TEMP": os.path.join(home, "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


def clean_environment(environ: dict, config: str, home: str, bin_dir: str) -> dict:
    """ENVIRON without its ANSIBLE_* settings (a caller's shell must not change what a run does), with
    ansible_settings() and BIN_DIR (where ansible-playbook is) first on PATH."""
    env = {key: value for key, value in environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ansible_settings(config, home))
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    return env


def ansible_env(settings) -> dict:
    """The runner's ansible.cfg and venv, with Ansible's own files in a folder per user (a run by hand as root
    must not leave root-owned temporary folders in the job user's way)."""
    ansible_home = os.path.join(settings.state_dir, "ansible-%d" % os.geteuid())
    env = clean_environment(dict(os.environ), settings.ansible_cfg, ansible_home, os.path.join(settings.venv, "bin"))
    env["ANSIBLE_REMOTE_TEMP"] = os.path.join(ansible_home, "tmp")
    return env


def stream(command: list, env: dict, output: Output, rto: "RtoLine" = None) -> int:
    """Run ``command``; every line it prints goes to the output as it comes (and to ``rto``). Returns its exit
    code."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                               errors="replace", bufsize=1)
    try:
        for text in process.stdout:
            output.line(text.rstrip("\n"))
            if rto is not None:
                rto.feed(text.rstrip("\n"))
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


def playbook_argv(ansible_playbook: str, playbook: str, extra_vars: dict = None, verbose: int = 0,
                  check: bool = False, inventory: str = None, extra_args=()) -> list:
    """The ansible-playbook command line: PLAYBOOK (a path or a FQCN), the inventory (ansible.cfg's when None),
    extra variables as JSON, verbosity, check mode."""
    command = [ansible_playbook] + (["-i", inventory] if inventory else []) + [playbook, *extra_args]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if verbose:
        command.append("-" + "v" * verbose)
    if check:
        command.append("--check")
    return command


def playbook_command(settings, playbook: str, extra_vars: dict, verbose: int, check: bool) -> list:
    return playbook_argv(os.path.join(settings.venv, "bin", "ansible-playbook"), "%s.%s" % (COLLECTION, playbook),
                         extra_vars, verbose, check)


class RtoLine:
    """The recovery-time line a restore playbook reports (its debug task's ``msg: 'RTO ...'``, folded over
    several lines by the YAML result format), for the run's one summary line."""

    def __init__(self) -> None:
        self.words, self.indent, self.text = [], None, ""

    def feed(self, line: str) -> None:
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if stripped.startswith(("msg: 'RTO ", 'msg: "RTO ', "msg: RTO ")):
            self.indent, self.words = indent, [stripped[4:].strip()]
        elif self.indent is not None and stripped and indent > self.indent:
            self.words.append(stripped)
        else:
            self.indent = None
            return
        self.text = " ".join(self.words).strip("'\"")


def failure_message(lines) -> str:
    """What the failed task said (the 'msg:' of Ansible's YAML result, with its continuation lines), or Ansible's
    own error line, for notifications and the metrics state."""
    lines = list(lines)
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if stripped.startswith("msg:"):
            indent = len(lines[index]) - len(lines[index].lstrip())
            words = [stripped[4:].strip()]
            for following in lines[index + 1:]:
                if not following.strip() or len(following) - len(following.lstrip()) <= indent:
                    break
                words.append(following.strip())
            return " ".join(words).strip("'\"")[:500]
        if stripped.startswith("ERROR!") or stripped.startswith("[ERROR]"):
            return stripped[:500]
    return ""


def run_job(settings, args, playbook_key: str, extra_vars: dict) -> int:
    """A playbook run under the app's job lock, logged, recorded in the metrics."""
    playbook, operation = PLAYBOOKS[playbook_key]
    what = describe(args)
    output = Output(settings, args.quiet)
    started = time.time()
    output.line("==== %s reddit-backup %s (%s, pid %d) ====" % (utc_now(), what, settings.app, os.getpid()),
                to_terminal=False)
    try:
        settings.require_playbook(playbook)
    except NotInstalled as error:
        output.log_only("reddit-backup: %s: %s" % (args.command, error))
        output.close()
        raise
    rc, interrupted, rto = EXIT_FAILED, False, RtoLine()
    try:
        with _lock.DirectoryLock(settings.state_dir, float(settings.runner.get("job_lock_timeout", 7200)),
                                 purpose="reddit-backup " + what):
            rc = stream(playbook_command(settings, playbook, extra_vars, args.verbose, False),
                        ansible_env(settings), output, rto)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as error:  # pylint: disable=broad-except  # reported, logged and recorded below
        output.line("reddit-backup: %s" % error, to_terminal=False)
        output.warn(str(error))
    duration = time.time() - started
    ok = rc == 0 and not interrupted
    run = {"operation": operation, "type": "all", "status": "success" if ok else "failed",
           "duration": round(duration, 3), "finished": time.time()}
    if not ok:
        run["error"] = "interrupted" if interrupted else (
            failure_message(output.tail) or "ansible-playbook exited %d" % rc)
    record_run(settings, output, run, started)
    if ok:
        output.succeeded("reddit-backup: %s succeeded in %.1f s%s"
                         % (what, duration, ": " + rto.text if rto.text else ""))
        output.close()
        return EXIT_OK
    reason = "interrupted" if interrupted else "ansible-playbook exited %d" % rc
    output.failed("reddit-backup: %s FAILED (%s) after %.1f s; the whole output is in %s"
                  % (what, reason, duration, settings.log_file))
    output.close()
    return EXIT_INTERRUPTED if interrupted else EXIT_FAILED


def restore_vars(value: str) -> dict:
    chosen = archive_or_name(value)
    if "archive" in chosen:
        return {"reddit_backup_restore_archive": chosen["archive"]}
    return {"reddit_backup_restore_name": chosen["name"]}


def command_restore(settings, args) -> int:
    if args.before:
        if args.archive:
            raise UsageError("restore takes an ARCHIVE or --before, not both")
        return run_job(settings, args, "restore-before", {"reddit_backup_restore_before": args.before})
    if not args.archive:
        raise UsageError("restore needs an ARCHIVE (a path or a backup name) or --before TIME")
    return run_job(settings, args, "restore", restore_vars(args.archive))


def command_restore_database(settings, args) -> int:
    extra = {} if args.archive in (None, "latest") else restore_vars(args.archive)
    return run_job(settings, args, "restore-database", extra)


def command_verify_restore(settings, args) -> int:
    return run_job(settings, args, "verify-restore", {})


def command_recovery_test(settings, args) -> int:
    return run_job(settings, args, "recovery-test", {})
