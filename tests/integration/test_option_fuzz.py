"""Every option of every module, given wrong types and absurd values through a real ansible-playbook run: each
failure must say what is wrong (never a Python exception text, never a secret), and a failed task writes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._create import BackupRequest, create_backup
from tests.integration.runner import run_tasks
from tests.sampleapp import seed_app

TOKEN = "tok-5ecret-1234"
# What a Python exception leaking into a message looks like.
PYTHON_ERRORS = re.compile(r"Traceback|OverflowError|ValueError|KeyError|TypeError|AttributeError|IndexError|"
                           r"UnicodeError|invalid literal|MODULE FAILURE|^\[Errno \d+\][^;]*$|embedded null|"
                           r"object has no attribute|unsupported operand|not supported between")
HUGE = 99999999999999999999
STR = ["", "x\n", "..", "/", str(HUGE), "-1", "many", "bad\u0000byte", "\u202e\x1b[31m", "9999-99-99"]
PATH = ["", "..", "/", "x\n", "/nonexistent/\u0000x"]
INT = [HUGE, -1, "many", 0]
FLOAT = [1e308, -1, "nan", "inf", "many"]
LIST = [[""], [".."], ["/"], ["x\n"], "many", [HUGE]]
DICT = ["many", {"": ""}, {"x\n": HUGE}]
BOOL = ["many", HUGE]
TIME = ["99999999999999999999", "99999999 weeks ago", "0001-01-01T00:00:00+01:00", "10000-01-01", "1e400"]
POLICY = [{"full": {"keep_within": "99999999999999y"}}, {"full": {"keep_last": "many"}}, {"full": 5},
          {"full": {"keep_last": -1}}, {"full": {"keep_daily": 1e308}}, {"bogus": {}}, {"full": {"keep_within": ""}},
          {"full": {"bogus": 1}}]

REMOTE = {"remote": STR + ["ssh://u@127.0.0.1:99999999/x", "s3://", "ssh://u@h/../etc"], "ssh_key": PATH,
          "known_hosts": PATH, "ssh_host_key_checking": STR, "s3_endpoint_url": STR + ["http://h st/" + TOKEN],
          "s3_region": STR, "s3_access_key": STR, "s3_secret_key": STR, "s3_session_token": STR, "timeout": FLOAT}


def fuzz_table(sandbox: str) -> dict:
    """module: (base options, {option: bad values}); ``OUT`` in a base value is the task's own output folder."""
    app, backups = os.path.join(sandbox, "app"), os.path.join(sandbox, "backups")
    return {
        "sqlite_backup": ({"src": os.path.join(app, "data", "reddit_sentiment.db"), "dest": "OUT/snap.db"},
                          {"src": PATH, "dest": PATH, "integrity": STR}),
        "backup_create": ({"app_root": app, "backup_dir": "OUT/backups", "integrity": "none"},
                          {"app_root": PATH, "backup_dir": PATH, "lock_timeout": FLOAT, "type": STR, "name": STR,
                           "include": LIST, "exclude": LIST, "databases": LIST, "compression": STR,
                           "integrity": STR, "chain_max": INT, "encryption_recipients": LIST,
                           "encryption_recipients_file": PATH, "wheelhouse": PATH}),
        "backup_info": ({"backup_dir": backups},
                        {"backup_dir": PATH, "before": STR + TIME, "name": STR, "type": STR}),
        "backup_verify": ({"backup_dir": backups, "record": False, "temp_dir": "OUT"},
                          {"archive": PATH, "before": STR + TIME, "name": STR, "type": STR, "level": STR,
                           "required": LIST, "identity_file": PATH, "fail_on_invalid": BOOL, "record": BOOL,
                           "temp_dir": PATH}),
        "backup_restore": ({"backup_dir": backups, "dest": "OUT/restore", "temp_dir": "OUT"},
                           {"archive": PATH, "before": STR + TIME, "name": STR, "dest": PATH,
                            "scope": STR + [HUGE, {"x": 1}, ["..", "/"]], "verify_first": BOOL,
                            "safety_copy": BOOL, "owner": STR, "group": STR, "force": BOOL, "keep": LIST,
                            "required": LIST, "identity_file": PATH, "temp_dir": PATH, "lock_timeout": FLOAT}),
        "backup_prune": ({"backup_dir": "OUT/backups"},
                         dict({"backup_dir": PATH, "lock_timeout": FLOAT, "policy": DICT + POLICY,
                               "now": STR + TIME}, **REMOTE)),
        "backup_sync": ({"backup_dir": "OUT/backups", "remote": "ssh://u@127.0.0.1:1/srv", "timeout": 2},
                        dict({"backup_dir": PATH, "lock_timeout": FLOAT, "direction": STR, "select": STR,
                              "before": STR + TIME, "type": STR, "delete": BOOL, "now": STR + TIME}, **REMOTE)),
        "backup_metrics": ({"backup_dir": backups, "textfile": "OUT/m.prom", "state_file": "OUT/state.json"},
                           {"backup_dir": PATH, "textfile": PATH, "state_file": PATH, "labels": DICT,
                            "filesystem_path": PATH,
                            "run": DICT + [{"operation": "backup", "status": "success", "duration": 1e308,
                                            "size": HUGE, "finished": "99999999999999999999"},
                                           {"operation": "backup", "status": "failed", "finished": "x\n",
                                            "duration": "nan", "restore_seconds": -1}]}),
        "backup_notify": ({"operation": "backup", "webhook_url": "http://127.0.0.1:9/hook/" + TOKEN, "attempts": 1,
                           "timeout": 1},
                          {"app": STR, "operation": STR, "type": STR, "status": STR, "summary": STR,
                           "details": DICT, "webhook_url": STR + ["http://127.0.0.1:9/hook/%s x" % TOKEN,
                                                                  "http://user:%s@127.0.0.1:9/" % TOKEN,
                                                                  "http://127.0.0.1:9/?token=%s\n" % TOKEN],
                           "webhook_url_file": PATH,
                           "webhook_headers": DICT + [{"Authorization": "Bearer %s\n" % TOKEN},
                                                      {"X\n": TOKEN}],
                           "mail_to": LIST, "mail_from": STR, "smtp_host": STR, "smtp_port": INT,
                           "timeout": FLOAT, "attempts": INT}),
        "backup_schedule": ({"app": "fuzz", "user": "root", "group": "root", "scheduler": "cron",
                             "systemd_dir": "OUT/systemd", "cron_dir": "OUT/cron",
                             "jobs": [{"name": "full", "schedule": "0 2 * * *", "command": ["create"]}]},
                            {"app": STR, "state": STR, "scheduler": STR,
                             "jobs": ["many", [{"name": "x\n", "command": ["a"], "schedule": "99 99 * * *"}],
                                      [{"name": "..", "command": ["a\n"], "schedule": "x"}],
                                      [{"name": "j", "command": ["a"], "on_calendar": "\n"}],
                                      [{"name": "j", "command": ["a"], "timeout": str(HUGE)}]],
                             "command": PATH, "user": STR, "group": STR, "systemd_dir": PATH, "cron_dir": PATH,
                             "config_watch": LIST, "config_settle_seconds": INT, "cron_mailto": STR}),
    }


def tree(path: str) -> dict:
    """{relative path: (mode, sha256 or link target)} of everything under ``path``."""
    found = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(folder, name)
            info = os.lstat(full)
            if os.path.islink(full):
                content = os.readlink(full)
            elif os.path.isfile(full):
                content = hashlib.sha256(open(full, "rb").read()).hexdigest()
            else:
                content = None
            found[os.path.relpath(full, path)] = (info.st_mode, content)
    return found


def substitute(value, out: str):
    if isinstance(value, str):
        return value.replace("OUT", out) if value.startswith("OUT") else value
    if isinstance(value, list):
        return [substitute(item, out) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, out) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    seed_app(str(base / "app"), rows=50)
    create_backup(BackupRequest(str(base / "app"), str(base / "backups"), integrity="none"))
    return base


def test_every_option_of_every_module_fails_clearly_and_writes_nothing(sandbox, tmp_path):
    tasks, cases = [], []
    app_before, backups_before = tree(str(sandbox / "app")), tree(str(sandbox / "backups"))
    for module, (base, options) in sorted(fuzz_table(str(sandbox)).items()):
        for option, values in sorted(options.items()):
            for value in values:
                number = len(tasks)
                out = str(tmp_path / "out" / str(number))
                os.makedirs(out)
                if base.get("backup_dir") == "OUT/backups":  # prune and sync act on a copy of their own
                    shutil.copytree(str(sandbox / "backups"), os.path.join(out, "backups"))
                params = substitute(dict(base, **{option: value}), out)
                tasks.append({"name": "t%d" % number, "ignore_errors": True, "timeout": 60,
                              "devops.reddit_backup.%s" % module: params})
                cases.append((module, option, value, out, tree(out)))
    result = run_tasks(tmp_path, tasks, timeout=1800)
    problems = []
    for number, (module, option, value, out, before) in enumerate(cases):
        outcome = result.result("t%d" % number)
        text = json.dumps(outcome)
        where = "%s %s=%r" % (module, option, value)
        if "timed out" in str(outcome.get("msg")) and "task" in str(outcome.get("msg")):
            problems.append("%s: the module hung (the task timed out)" % where)
        if TOKEN in text:
            problems.append("%s: the token leaked: %s" % (where, text[:300]))
        messages = [outcome.get("msg") or "", outcome.get("reason") or "", outcome.get("exception") or ""]
        messages += [str(channel.get("reason")) for channel in (outcome.get("channels") or {}).values()]
        for message in messages:
            if PYTHON_ERRORS.search(message):
                problems.append("%s: %s" % (where, message[:300]))
        if outcome.get("failed") and tree(out) != before:
            problems.append("%s failed but wrote into its folder: %s" % (where, sorted(set(tree(out)) ^ set(before))))
    assert tree(str(sandbox / "app")) == app_before
    assert set(tree(str(sandbox / "backups"))) >= set(backups_before)
    assert not problems, "\n".join(problems)
