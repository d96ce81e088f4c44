# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""reddit-backup: the guide's ``backup_manager.py`` on the app host, as thin calls of the devops.reddit_backup
playbooks and modules (installed by the devops.reddit_backup.runner role, which also writes its settings).

Each command runs ansible-playbook (or one module) against this host with the runner's own venv, collection,
inventory and ansible.cfg; prints what a person needs to read; appends everything to the app's logs/backup.log;
records the run in the backup metrics and notifies on failure when the monitoring role configured that; and
exits with a code a script can trust. Run as root, the commands that only read or write backups (create, list,
verify, cleanup, recovery-test) first become the application's user, so what they create belongs to it, as the
scheduled runs' files do; restores stay root (they stop services and set owners). Exit codes:

  0 success   1 the run failed   2 usage error   3 the playbook is not installed yet   4 configuration error
  130 interrupted

Standard library only; it runs with the runner venv's Python.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_INSTALLED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
DEFAULT_CONFIG_DIR = "/etc/reddit-backup"
COLLECTION = "devops.reddit_backup"
TAIL_LINES = 40
# Commands a root caller runs as the application's user.
AS_APP_USER = ("create", "list", "verify", "cleanup", "recovery-test")
# command -> (playbook, operation recorded in the metrics)
PLAYBOOKS = {
    "create": ("backup", "backup"),
    "cleanup": ("cleanup", "cleanup"),
    "restore": ("restore_full", "restore"),
    "restore-before": ("restore_point_in_time", "restore"),
    "restore-database": ("restore_database", "restore"),
    "verify-restore": ("verify_restore", "verify"),
    "recovery-test": ("recovery_test", "recovery_test"),
}


class ConfigError(Exception):
    """The runner's settings are missing or wrong: re-run the runner role."""


class NotInstalled(Exception):
    """The playbook or module a command needs is not in the installed collection (yet)."""


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_size(size) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % size


# --- settings -------------------------------------------------------------------------------------------------

class Settings:
    """runner.json (written by the runner role) and, when present, monitoring.json (the monitoring role)."""

    def __init__(self, config_dir: str, app: str = None) -> None:
        self.config_dir = config_dir
        self.app = app or os.environ.get("REDDIT_BACKUP_APP") or self._only_app()
        self.dir = os.path.join(config_dir, self.app)
        self.runner = self._load("runner.json", required=True)
        self.monitoring = self._load("monitoring.json", required=False)
        for key in ("app_root", "backup_dir", "venv", "collections_path", "ansible_cfg", "state_dir", "log_file"):
            if not self.runner.get(key):
                raise ConfigError("%s has no %r; re-run the devops.reddit_backup.runner role"
                                  % (os.path.join(self.dir, "runner.json"), key))

    def _only_app(self) -> str:
        try:
            apps = sorted(name for name in os.listdir(self.config_dir)
                          if os.path.isfile(os.path.join(self.config_dir, name, "runner.json")))
        except OSError:
            apps = []
        if len(apps) == 1:
            return apps[0]
        if not apps:
            raise ConfigError("no application is set up in %s; install one with the devops.reddit_backup.runner "
                              "role" % self.config_dir)
        raise ConfigError("several applications are set up here (%s): choose one with --app" % ", ".join(apps))

    def _load(self, name: str, required: bool):
        path = os.path.join(self.dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            if required:
                raise ConfigError("application %r is not set up: %s is missing; install it with the "
                                  "devops.reddit_backup.runner role" % (self.app, path)) from None
            return None
        except (OSError, ValueError) as error:
            raise ConfigError("cannot read %s: %s" % (path, error)) from None

    def __getattr__(self, key):
        try:
            return self.__dict__["runner"][key]
        except KeyError:
            raise AttributeError(key) from None

    @property
    def collection_root(self) -> str:
        return os.path.join(self.collections_path, "ansible_collections", "devops", "reddit_backup")

    def require_playbook(self, playbook: str) -> None:
        if not os.path.isfile(os.path.join(self.collection_root, "playbooks", playbook + ".yml")):
            raise NotInstalled("the playbook %s.%s is not installed yet (it is not in %s); update the collection "
                               "on this host once it is released (re-run the runner role). Nothing was done."
                               % (COLLECTION, playbook, self.collection_root))

    def require_module(self, module: str) -> None:
        if not os.path.isfile(os.path.join(self.collection_root, "plugins", "modules", module + ".py")):
            raise NotInstalled("the module %s.%s is not installed yet (it is not in %s); update the collection "
                               "on this host (re-run the runner role). Nothing was done."
                               % (COLLECTION, module, self.collection_root))

    def engine(self, name: str):
        """A module of the collection's engine (plain stdlib Python), imported from the installed collection."""
        if self.collections_path not in sys.path:
            sys.path.insert(0, self.collections_path)
        module = __import__("ansible_collections.devops.reddit_backup.plugins.module_utils." + name,
                            fromlist=[name])
        return module


# --- output and log ---------------------------------------------------------------------------------------------

class Output:
    """Everything goes to the log; the terminal gets it unless --quiet, which prints only failures."""

    def __init__(self, settings: Settings, quiet: bool, logged: bool = True) -> None:
        self.quiet = quiet
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.log = None
        self.log_path = settings.log_file
        if logged:
            try:
                os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
                # a new log is not world-readable: it names paths and errors of the application
                new = not os.path.exists(self.log_path)
                descriptor = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                if new and os.geteuid() == 0:
                    owner = settings.runner.get("user")
                    if owner:
                        account = pwd.getpwnam(owner)
                        os.fchown(descriptor, account.pw_uid, account.pw_gid)  # the jobs append to it too
                self.log = os.fdopen(descriptor, "a", encoding="utf-8")
            except (OSError, KeyError) as error:
                self.log = None
                self.warn("cannot write the log %s (%s); going on without it"
                          % (self.log_path, getattr(error, "strerror", None) or error))

    def line(self, text: str, to_terminal: bool = True) -> None:
        self.tail.append(text)
        if self.log:
            self.log.write(text + "\n")
            self.log.flush()
        if to_terminal and not self.quiet:
            print(text, flush=True)

    def log_only(self, text: str) -> None:
        if self.log:
            self.log.write(text + "\n")
            self.log.flush()

    def warn(self, text: str) -> None:
        message = "reddit-backup: warning: %s" % text
        print(message, file=sys.stderr, flush=True)
        self.log_only(message)

    def close(self) -> None:
        if self.log:
            self.log.close()


# --- running Ansible --------------------------------------------------------------------------------------------

def ansible_env(settings: Settings) -> dict:
    """The caller's environment without its ANSIBLE_* settings (an operator's shell must not change what a run
    does), pointed at the runner's ansible.cfg, with Ansible's own files in a folder per user (a run by hand as
    root must not leave root-owned temporary folders in the job user's way)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    ansible_home = os.path.join(settings.state_dir, "ansible-%d" % os.geteuid())
    env.update({
        "ANSIBLE_CONFIG": settings.ansible_cfg,
        "ANSIBLE_HOME": ansible_home,
        "ANSIBLE_LOCAL_TEMP": os.path.join(ansible_home, "tmp"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(ansible_home, "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": os.path.join(settings.venv, "bin") + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
    })
    return env


def stream(command: list, env: dict, output: Output) -> int:
    """Run ``command``; every line it prints goes to the output as it comes. Returns its exit code."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                               errors="replace", bufsize=1)
    try:
        for text in process.stdout:
            output.line(text.rstrip("\n"))
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


def run_module(settings: Settings, module: str, arguments: dict, verbose: int = 0) -> tuple:
    """(rc, result, text): one module on this host through ansible's ad-hoc mode; the result is parsed from the
    minimal callback's 'localhost | STATE => {json}'."""
    settings.require_module(module)
    env = ansible_env(settings)
    env.update({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal",
                "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"})
    command = [os.path.join(settings.venv, "bin", "ansible"), "localhost", "-m", "%s.%s" % (COLLECTION, module),
               "-a", json.dumps(arguments)] + (["-" + "v" * verbose] if verbose else [])
    completed = subprocess.run(command, capture_output=True, text=True, errors="replace", env=env, check=False)
    text = completed.stdout + completed.stderr
    marker = completed.stdout.find(" => {")
    result = {}
    if marker >= 0:
        try:
            result, _end = json.JSONDecoder().raw_decode(completed.stdout, marker + 4)
        except ValueError:
            result = {}
    if not result:
        result = {"failed": True, "msg": text.strip()[-2000:] or "ansible printed nothing"}
    return completed.returncode, result, text


def playbook_command(settings: Settings, playbook: str, extra_vars: dict, verbose: int, check: bool) -> list:
    command = [os.path.join(settings.venv, "bin", "ansible-playbook"), "%s.%s" % (COLLECTION, playbook)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if verbose:
        command.append("-" + "v" * verbose)
    if check:
        command.append("--check")
    return command


# --- metrics and notifications ----------------------------------------------------------------------------------

def record_run(settings: Settings, output: Output, run: dict, started: float) -> None:
    """Write the run into the metrics textfile and notify on failure (or recovery), as monitoring.json says.
    Never fails the command: problems become warnings."""
    monitoring = settings.monitoring
    if not monitoring or not monitoring.get("textfile"):
        return
    try:
        metrics = settings.engine("_metrics")
        state_file = monitoring.get("state_file") or metrics.default_state_file(monitoring["textfile"])
        earlier = metrics.last_run(state_file, run["operation"], run.get("type"))
        if earlier and earlier.get("finished", 0) >= started:
            return  # the playbook recorded (and notified about) this run itself
        recorded = metrics.record(monitoring["textfile"], settings.backup_dir, run=run,
                                  labels=monitoring.get("labels") or {"app": settings.app}, state_file=state_file)
    except Exception as error:  # pylint: disable=broad-except  # metrics never fail a run
        output.warn("could not write the metrics: %s" % error)
        return
    previous = (recorded.get("previous") or {}).get("status")
    try:  # the engine decides, as for the playbooks' backup_notify
        status = settings.engine("_notify_policy").notification_for(
            run["status"], previous, monitoring.get("notify_on") or ["failure", "recovery"])
    except Exception as error:  # pylint: disable=broad-except  # a notification never fails a run
        output.warn("could not decide on a notification: %s" % error)
        return
    if status:
        notify_run(settings, output, run, status)


def notify_run(settings: Settings, output: Output, run: dict, status: str) -> None:
    channels = (settings.monitoring or {}).get("notify") or {}
    if not channels.get("enabled", True) or not (channels.get("webhook_url_file") or channels.get("mail_to")):
        return
    try:
        notify = settings.engine("_notify")
        url = None
        if channels.get("webhook_url_file"):
            with open(channels["webhook_url_file"], encoding="utf-8") as handle:
                url = handle.readline().strip() or None
        details = {key: run.get(key) for key in ("duration", "size", "name") if run.get(key) is not None}
        details["log"] = settings.log_file
        event = notify.build_event(settings.app, run["operation"], status, run.get("error") or "",
                                   backup_type=run.get("type"), details=details)
        result = notify.notify(event, webhook_url=url, mail_to=channels.get("mail_to") or [],
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


# --- commands ---------------------------------------------------------------------------------------------------

def describe(args) -> str:
    words = [args.command]
    for option in ("type", "name", "before"):
        value = getattr(args, option, None)
        if value and not (option == "type" and args.command == "list"):
            words += ["--" + option, str(value)]
    for flag in ("comprehensive", "dry_run"):
        if getattr(args, flag, False):
            words.append("--" + flag.replace("_", "-"))
    if getattr(args, "archive", None):
        words.append(args.archive)
    return " ".join(words)


def archive_or_name(value: str) -> dict:
    """An archive path (contains '/' or exists) or a backup name / archive file name from the catalog."""
    if "/" in value or os.path.exists(value):
        return {"archive": os.path.abspath(value)}
    return {"name": value}


def run_job(settings: Settings, args, playbook_key: str, extra_vars: dict, backup_type: str = "all") -> int:
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
    rc, interrupted = EXIT_FAILED, False
    try:
        lock = settings.engine("_lock").DirectoryLock(settings.state_dir, float(settings.runner.get(
            "job_lock_timeout", 7200)), purpose="reddit-backup " + what)
        with lock:
            rc = stream(playbook_command(settings, playbook, extra_vars, args.verbose, getattr(args, "dry_run", False)),
                        ansible_env(settings), output)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as error:  # pylint: disable=broad-except  # reported, logged and recorded below
        output.line("reddit-backup: %s" % error, to_terminal=False)
        print("reddit-backup: %s" % error, file=sys.stderr)
    duration = time.time() - started
    ok = rc == 0 and not interrupted
    run = {"operation": operation, "type": backup_type, "status": "success" if ok else "failed",
           "duration": round(duration, 3), "finished": time.time()}
    if not ok:
        run["error"] = "interrupted" if interrupted else (
            failure_message(output.tail) or "ansible-playbook exited %d" % rc)
    made = None
    if ok and playbook_key == "create" and not getattr(args, "dry_run", False):
        made = find_new_backup(settings, output, args, started)
        if made:
            run.update(size=made.get("size"), name=made.get("name"))
    if not getattr(args, "dry_run", False):
        record_run(settings, output, run, started)
    if ok:
        summary = "reddit-backup: %s succeeded in %.1f s" % (what, duration)
        if made:
            summary += ": %s (%s) %s" % (made["name"], human_size(made.get("size")), made["archive"])
        output.line(summary)
        code = EXIT_OK
    else:
        reason = "interrupted" if interrupted else "ansible-playbook exited %d" % rc
        summary = "reddit-backup: %s FAILED (%s) after %.1f s; the whole output is in %s" % (
            what, reason, duration, settings.log_file)
        if args.quiet:
            print("\n".join(output.tail), file=sys.stderr)
        output.line(summary, to_terminal=False)
        print(summary, file=sys.stderr, flush=True)
        code = EXIT_INTERRUPTED if interrupted else EXIT_FAILED
    output.close()
    return code


def find_new_backup(settings: Settings, output: Output, args, started: float):
    """The backup this run made, from the catalog (for the summary and the metrics)."""
    try:
        catalog = settings.engine("_catalog")
        backups = catalog.list_backups(settings.backup_dir)
    except Exception as error:  # pylint: disable=broad-except
        output.warn("could not read the catalog: %s" % error)
        return None
    if args.name:
        named = [b for b in backups if b["name"] == args.name]
        return named[-1] if named else None
    fresh = [b for b in backups if b["type"] == args.type and b.get("created")
             and catalog.parse_time(b["created"]).timestamp() >= int(started) - 1]
    return fresh[-1] if fresh else None


def command_create(settings: Settings, args) -> int:
    extra = {"reddit_backup_type": args.type}
    if args.name:
        extra["reddit_backup_name"] = args.name
    return run_job(settings, args, "create", extra, backup_type=args.type)


def command_cleanup(settings: Settings, args) -> int:
    return run_job(settings, args, "cleanup", {})


def command_restore(settings: Settings, args) -> int:
    if args.before:
        if args.archive:
            print("reddit-backup: restore takes an ARCHIVE or --before, not both", file=sys.stderr)
            return EXIT_USAGE
        return run_job(settings, args, "restore-before", {"reddit_backup_restore_before": args.before})
    if not args.archive:
        print("reddit-backup: restore needs an ARCHIVE (a path or a backup name) or --before TIME", file=sys.stderr)
        return EXIT_USAGE
    return run_job(settings, args, "restore", restore_vars(args.archive))


def restore_vars(value: str) -> dict:
    chosen = archive_or_name(value)
    if "archive" in chosen:
        return {"reddit_backup_restore_archive": chosen["archive"]}
    return {"reddit_backup_restore_name": chosen["name"]}


def command_restore_database(settings: Settings, args) -> int:
    extra = {} if args.archive in (None, "latest") else restore_vars(args.archive)
    return run_job(settings, args, "restore-database", extra)


def command_verify_restore(settings: Settings, args) -> int:
    return run_job(settings, args, "verify-restore", {})


def command_recovery_test(settings: Settings, args) -> int:
    return run_job(settings, args, "recovery-test", {})


def verify_keys(settings: Settings) -> dict:
    """The keys the inventory gives verifications (the age identity, the trusted signing keys), as the playbooks
    pass them: only those that are set."""
    keys = settings.runner.get("verify_keys") or {}
    return {option: value for option, value in keys.items() if value}


def command_verify(settings: Settings, args) -> int:
    """backup_verify on one archive (the newest backup when none is named); the verdict is recorded beside it."""
    what = describe(args)
    output = Output(settings, args.quiet)
    output.line("==== %s reddit-backup %s (%s, pid %d) ====" % (utc_now(), what, settings.app, os.getpid()),
                to_terminal=False)
    started = time.time()
    arguments = {"level": "comprehensive" if args.comprehensive else "quick", "fail_on_invalid": False}
    arguments.update(verify_keys(settings))
    if args.archive:
        chosen = archive_or_name(args.archive)
        arguments.update(chosen if "archive" in chosen else {"backup_dir": settings.backup_dir, **chosen})
    else:
        arguments["backup_dir"] = settings.backup_dir
    try:
        rc, result, text = run_module(settings, "backup_verify", arguments, args.verbose)
    except NotInstalled:
        output.close()
        raise
    if args.verbose:
        for text_line in text.splitlines():
            output.line(text_line)
    valid = rc == 0 and result.get("valid") is True
    if "status" in result:
        output.line("%s: %s (%s)" % (result.get("archive"), result["status"].upper(), result.get("reason", "")))
        if result.get("authenticity"):
            output.line("  authenticity: %s" % result["authenticity"])
        checks = result.get("checks", [])
        width = min(40, max([len(str(check.get("name", "?"))) for check in checks] or [0]))
        for check in checks:
            output.line("  %-8s %-*s %s" % (check.get("status", "?"), width, check.get("name", "?"),
                                            check.get("detail") or ""))
    else:
        output.line("verification could not run: %s" % result.get("msg", "unknown error"))
    duration = time.time() - started
    record_run(settings, output, {"operation": "verify", "type": backup_type_of(settings, result.get("archive")),
                                  "status": "success" if valid else "failed", "duration": round(duration, 3),
                                  "name": os.path.basename(result.get("archive") or "") or None,
                                  "error": None if valid else (result.get("reason") or result.get("msg"))},
               started)
    if valid:
        output.line("reddit-backup: %s succeeded in %.1f s" % (what, duration))
        output.close()
        return EXIT_OK
    summary = "reddit-backup: %s FAILED: %s" % (what, result.get("reason") or result.get("msg") or "invalid")
    if args.quiet:
        print("\n".join(output.tail), file=sys.stderr)
    output.line(summary, to_terminal=False)
    print(summary, file=sys.stderr, flush=True)
    output.close()
    return EXIT_FAILED


def backup_type_of(settings: Settings, archive) -> str:
    if not archive:
        return "all"
    try:
        for backup in settings.engine("_catalog").list_backups(settings.backup_dir):
            if backup["archive"] == archive:
                return backup["type"]
    except Exception:  # pylint: disable=broad-except  # only a label
        pass
    return "all"


def command_list(settings: Settings, args) -> int:
    """backup_info, as a table (or JSON for scripts). Not logged: it changes nothing."""
    arguments = {"backup_dir": settings.backup_dir}
    if args.type:
        arguments["type"] = args.type
    rc, result, text = run_module(settings, "backup_info", arguments, args.verbose)
    if rc != 0 or result.get("failed"):
        print("reddit-backup: list FAILED: %s" % result.get("msg", text.strip()), file=sys.stderr)
        return EXIT_FAILED
    backups = result.get("backups", [])
    if args.json:
        print(json.dumps({"backups": backups, "totals": result.get("totals", {})}, indent=2, sort_keys=True))
        return EXIT_OK
    if not backups:
        print("no backups in %s" % settings.backup_dir)
        return EXIT_OK
    print("%-12s %-34s %-20s %10s  %s" % ("TYPE", "NAME", "CREATED (UTC)", "SIZE", "VERIFIED"))
    for backup in backups:
        print("%-12s %-34s %-20s %10s  %s" % (backup.get("type"), backup.get("name"),
                                              (backup.get("created") or "").replace("T", " ").rstrip("Z"),
                                              human_size(backup.get("size")), verified_text(backup)))
        if args.detailed:
            for label, value in detail_rows(backup):
                print("    %-10s %s" % (label, value))
    totals = result.get("totals", {})
    print("%d backups, %s in %s" % (totals.get("count", len(backups)), human_size(totals.get("bytes", 0)),
                                    settings.backup_dir))
    return EXIT_OK


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


# --- entry point ------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reddit-backup",
        description="Backups of the application on this host, through the devops.reddit_backup playbooks.",
        epilog="Exit codes: 0 success, 1 the run failed, 2 usage error, 3 not installed yet, 4 configuration "
               "error, 130 interrupted. Every run except list is appended to the app's logs/backup.log.")
    parser.add_argument("--app", help="the application (needed when several are set up on this host)")
    parser.add_argument("--config-dir", default=os.environ.get("REDDIT_BACKUP_CONFIG_DIR", DEFAULT_CONFIG_DIR),
                        help="where the runner role wrote the settings (%(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing on success (for cron and timers); failures still print")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more Ansible output (-v, -vv ...)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    create = commands.add_parser("create", help="take a backup")
    create.add_argument("--type", default="full", choices=["full", "incremental", "config", "database"])
    create.add_argument("--name", help="a named backup kept in manual/, such as pre-maintenance-20250528")
    create.add_argument("--dry-run", action="store_true", help="say what would be written; write nothing")
    create.set_defaults(handler=command_create)

    listing = commands.add_parser("list", help="list the backups")
    listing.add_argument("--detailed", action="store_true", help="archive, host, files, databases of each")
    listing.add_argument("--type", choices=["full", "incremental", "config", "database"])
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

    commands.add_parser("recovery-test", help="the weekly recovery drill").set_defaults(
        handler=command_recovery_test)
    return parser


def runs_as_app_user(settings: Settings, command: str) -> bool:
    """Commands that only touch backups drop root, unless backups are signed: the signing key is root's alone."""
    return command in AS_APP_USER and not settings.runner.get("signing_key")


def become_app_user(settings: Settings) -> None:
    """Run as the application's user when root calls a command that only touches backups."""
    user = settings.runner.get("user")
    if os.geteuid() != 0 or not user or user == "root":
        return
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError("the application's user %r does not exist on this host" % user) from None
    os.initgroups(user, account.pw_gid)
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.environ.update({"HOME": account.pw_dir, "USER": user, "LOGNAME": user})


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code not in (0, None) else EXIT_OK
    for attribute in ("type", "name", "archive", "before", "dry_run", "comprehensive", "json", "detailed"):
        if not hasattr(args, attribute):
            setattr(args, attribute, None)
    try:
        settings = Settings(args.config_dir, args.app)
        if runs_as_app_user(settings, args.command):
            become_app_user(settings)
        return args.handler(settings, args)
    except ConfigError as error:
        print("reddit-backup: %s" % error, file=sys.stderr)
        return EXIT_CONFIG
    except NotInstalled as error:
        print("reddit-backup: %s: %s" % (args.command, error), file=sys.stderr)
        return EXIT_NOT_INSTALLED
    except KeyboardInterrupt:
        print("reddit-backup: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
