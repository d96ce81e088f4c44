"""Every option of every module, given wrong types and absurd values through a real ansible-playbook run: each
failure must say what is wrong (never a Python exception text, never a secret), and a failed task writes nothing.

The cases come from each module's own argument_spec (read by calling its ``main()`` with AnsibleModule replaced),
so an option added later is fuzzed without touching this file. Per option a few hostile values are picked by type,
not a cartesian product, and the cases run as tasks of one playbook spread over a few local hosts (strategy free,
pipelining) so that the whole run stays within about three minutes on two cores.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import re
import shutil
import subprocess
import time

import pytest
import yaml

from ansible_collections.devops.reddit_backup.plugins import modules as collection_modules
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import REMOTE_ARGUMENT_SPEC
from tests.integration.runner import TARGET_PYTHON, ansible_env, harness_argv
from tests.sampleapp import seed_app

TOKEN = "tok-5ecret-1234"
HOSTS = 4
TASK_TIMEOUT = 60
# What a Python exception (or the guard's report of one) leaking into a message looks like.
PYTHON_ERRORS = re.compile(r"Traceback|OverflowError|ValueError|KeyError|TypeError|AttributeError|IndexError|"
                           r"UnicodeError|OSError|invalid literal|MODULE FAILURE|^\[Errno \d+\][^;]*$|embedded null|"
                           r"object has no attribute|unsupported operand|not supported between|"
                           r"<class |<built-in|object at 0x|a bug in devops\.reddit_backup", re.MULTILINE)
HUGE = 99999999999999999999
TIMES = ["99999999999999999999", "99999999 weeks ago", "0001-01-01T00:00:00+01:00"]
# By type: a few values each, hostile in a different way (wrong type, absurd size, sign, control characters).
BY_TYPE = {
    "path": ["", "nul\u0000byte", "x\n", "/nonexistent/fuzz/x"],
    "str": ["", "x\n", "nul\u0000byte"],
    "choice": ["bogus\n"],
    "int": ["many", HUGE, -1],
    "float": [1e308, -1, "nan"],
    "bool": ["many"],
    "list": [[""], ["..", "/", "x\n"], ["nul\u0000byte"]],
    "dict": ["many", {"x\n": HUGE, "": ""}],
    "raw": ["", "x\n", HUGE, {"x": 1}, ["..", "/"]],
}
# Options naming a file that is only read: a directory ("/") given for them is hostile too, and harmless.
READ_ONLY_FILES = {"archive", "identity_file", "encryption_recipients_file", "webhook_url_file", "ssh_key",
                   "known_hosts", "allowed_signers", "signing_key", "src", "wheelhouse", "command"}
# Values that only make sense for one option, on top of those its type gives.
BY_OPTION = {
    "before": TIMES, "now": TIMES,
    "name": ["..", "a/../../b"],
    "remote": ["ssh://u@127.0.0.1:99999999/x", "s3://", "ssh://u@127.0.0.1/../etc"],
    "webhook_url": ["http://127.0.0.1:9/hook/%s x" % TOKEN, "http://user:%s@127.0.0.1:9/" % TOKEN,
                    "http://127.0.0.1:9/?token=%s\n" % TOKEN],
    "webhook_headers": [{"Authorization": "Bearer %s\n" % TOKEN}, {"X\n": TOKEN}],
    "s3_endpoint_url": ["http://h st/" + TOKEN],
    "policy": [{"full": {"keep_within": "99999999999999y"}}, {"full": {"keep_last": "many"}}, {"full": 5},
               {"full": {"keep_daily": 1e308}}, {"bogus": {}}, {"full": {"bogus": 1}}],
    "scope": ["config\n"],
    "run": [{"operation": "backup", "status": "success", "duration": 1e308, "size": HUGE,
             "finished": "99999999999999999999"},
            {"operation": "backup", "status": "failed", "finished": "x\n", "duration": "nan", "restore_seconds": -1}],
    "jobs": [[{"name": "x\n", "command": ["a"], "schedule": "99 99 * * *"}],
             [{"name": "..", "command": ["a\n"], "schedule": "x"}],
             [{"name": "j", "command": ["a"], "on_calendar": "\n"}],
             [{"name": "j", "command": ["a"], "timeout": str(HUGE)}]],
}


# backup_sync fuzzes the remote options in full; backup_prune shares them, and gets one value each.
SHARED = {("backup_prune", option) for option in REMOTE_ARGUMENT_SPEC if option != "remote"}
# The S3 options act only on an S3 remote.
S3_REMOTE = {"remote": "s3://fuzz/backups", "s3_endpoint_url": "http://127.0.0.1:1", "s3_region": "us-east-1"}


class Captured(Exception):
    """Raised by the stand-in AnsibleModule to hand the test a module's spec."""


def module_specs() -> dict:
    """{module name: the keyword arguments its main() gives AnsibleModule (argument_spec, mutually_exclusive...)}."""
    specs = {}
    for info in pkgutil.iter_modules(collection_modules.__path__):
        module = importlib.import_module("%s.%s" % (collection_modules.__name__, info.name))

        def capture(**kwargs):
            raise Captured(kwargs)

        real, module.AnsibleModule = module.AnsibleModule, capture
        try:
            module.main()
        except Captured as captured:
            specs[info.name] = captured.args[0]
        finally:
            module.AnsibleModule = real
    return specs


def hostile_values(option: str, spec: dict) -> list:
    kind = "choice" if spec.get("choices") else spec.get("type", "str")
    values = list(BY_TYPE[kind]) + BY_OPTION.get(option, [])
    if kind == "path" and option in READ_ONLY_FILES:
        values.append("/")
    if spec.get("no_log") and kind in ("str", "path"):
        values.append(TOKEN + "\n")  # a secret with a line break: refused, and never quoted
    return values


def suboption_cases(option: str, spec: dict, base: dict) -> list:
    """(option.suboption, value of the option) for each suboption of a dict (or list of dicts) option."""
    cases = []
    for name, sub in sorted(spec["options"].items()):
        for value in hostile_values(name, sub)[:2]:
            if spec.get("type") == "list":
                cases.append(("%s.%s" % (option, name), [dict(base[option][0], **{name: value})]))
            else:
                cases.append(("%s.%s" % (option, name), dict(base[option], **{name: value})))
    return cases


def bases(sandbox: str) -> dict:
    """module: options that work; ``OUT`` at the start of a value is the case's own output folder."""
    app, backups = os.path.join(sandbox, "app"), os.path.join(sandbox, "backups")
    return {
        "sqlite_backup": {"src": os.path.join(app, "data", "reddit_sentiment.db"), "dest": "OUT/snap.db"},
        "app_verify": {"app_root": app, "required": ["config/production.env"], "fail_on_invalid": False},
        "backup_create": {"app_root": app, "backup_dir": "OUT/backups", "integrity": "none", "type": "config"},
        "backup_info": {"backup_dir": backups},
        "backup_verify": {"backup_dir": backups, "record": False, "temp_dir": "OUT", "level": "quick"},
        "backup_restore": {"backup_dir": "OUT/backups", "dest": "OUT/restore", "temp_dir": "OUT", "scope": "config"},
        "backup_prune": {"backup_dir": "OUT/backups"},
        "backup_safety_copies": {"app_root": app, "now": "2025-05-28T14:00:00Z"},
        "backup_sync": {"backup_dir": "OUT/backups", "remote": "ssh://u@127.0.0.1:1/srv", "timeout": 2},
        "backup_metrics": {"backup_dir": backups, "textfile": "OUT/m.prom", "state_file": "OUT/state.json",
                           "run": {"operation": "backup", "status": "success"}},
        "backup_notify": {"operation": "backup", "webhook_url": "http://127.0.0.1:9/hook/" + TOKEN, "attempts": 1,
                          "timeout": 1},
        "backup_schedule": {"app": "fuzz", "user": "root", "group": "root", "scheduler": "cron",
                            "systemd_dir": "OUT/systemd", "cron_dir": "OUT/cron",
                            "jobs": [{"name": "full", "schedule": "0 2 * * *", "command": ["create"]}]},
    }


def fuzz_cases(sandbox: str) -> list:
    """[(module, option, params)] covering every option of every module."""
    cases = []
    for module, kwargs in sorted(module_specs().items()):
        base = bases(sandbox)[module]
        exclusive = [set(pair) for pair in kwargs.get("mutually_exclusive", [])]
        for option, spec in sorted(kwargs["argument_spec"].items()):
            others = {key: value for key, value in base.items()
                      if key != option and {key, option} not in exclusive}
            if option.startswith("s3_") and module == "backup_sync":
                others.update({key: value for key, value in S3_REMOTE.items() if key != option})
            values = hostile_values(option, spec)
            for value in values[:1] if (module, option) in SHARED else values:
                cases.append((module, option, dict(others, **{option: value})))
            if spec.get("options") and option in base:
                cases += [(module, name, dict(base, **{option: value}))
                          for name, value in suboption_cases(option, spec, base)]
    return cases


def tree(path: str, verdicts: bool = True) -> dict:
    """{relative path: (mode, sha256 or link target)} of everything under ``path`` (without verdicts: a restore
    that verified an archive records that true verdict even when it then refuses to go on)."""
    found = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            if not verdicts and name.endswith(".verify.json"):
                continue
            full = os.path.join(folder, name)
            info = os.lstat(full)
            if os.path.islink(full):
                content = os.readlink(full)
            elif os.path.isfile(full):
                with open(full, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
            else:
                content = None
            found[os.path.relpath(full, path)] = (info.st_mode, content)
    return found


def substitute(value, out: str):
    if isinstance(value, str):
        return out + value[3:] if value.startswith("OUT") else value
    if isinstance(value, list):
        return [substitute(item, out) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, out) for key, item in value.items()}
    return value


def run_fuzz_play(workdir, tasks: list) -> dict:
    """Run ``tasks`` spread over HOSTS local hosts, each including its own share (no skipped tasks to pay for);
    {task name: result}. The playbook runs in ``workdir`` so that relative paths (``x\\n``, ``..``) land in the
    sandbox."""
    for number in range(HOSTS):
        (workdir / ("cases-fuzz%d.yml" % number)).write_text(yaml.safe_dump(tasks[number::HOSTS]))
    play = [{"name": "fuzz", "hosts": "all", "gather_facts": False, "strategy": "free",
             "tasks": [{"name": "cases", "ansible.builtin.include_tasks": "cases-{{ inventory_hostname }}.yml"}]}]
    inventory = {"all": {"hosts": {"fuzz%d" % number: {"ansible_connection": "local",
                                                        "ansible_python_interpreter": TARGET_PYTHON}
                                   for number in range(HOSTS)}}}
    (workdir / "fuzz.yml").write_text(yaml.safe_dump(play))
    (workdir / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(ansible_env(workdir), ANSIBLE_STDOUT_CALLBACK="results_by_task", ANSIBLE_FORKS=str(HOSTS),
               ANSIBLE_PIPELINING="1")
    completed = subprocess.run(harness_argv("fuzz.yml", inventory="hosts.yml"), capture_output=True, text=True,
                               env=env, cwd=str(workdir), timeout=900)
    try:
        results = json.loads(completed.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON:\n%s\n%s" % (completed.stdout, completed.stderr))
    return {name: next(iter(by_host.values())) for name, by_host in results.items()}


def problems_of(where: str, outcome: dict) -> list:
    if outcome is None:
        return ["%s: no result (the task never ran)" % where]
    # The invocation echoes the options as given (Ansible masks the no_log ones): only what the module says counts.
    problems, text = [], json.dumps({key: value for key, value in outcome.items() if key != "invocation"})
    if "expected time frame" in str(outcome.get("msg")):
        problems.append("%s: the module hung (the task timed out)" % where)
    if TOKEN in text:
        problems.append("%s: the token leaked: %s" % (where, text[:300]))
    messages = [outcome.get("msg") or "", outcome.get("reason") or "", outcome.get("module_stderr") or ""]
    messages += [str(channel.get("reason")) for channel in (outcome.get("channels") or {}).values()]
    for message in messages:
        if PYTHON_ERRORS.search(str(message)):
            problems.append("%s: %s" % (where, str(message)[:300]))
    return problems


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    seed_app(str(base / "app"), rows=20)
    create_backup(BackupRequest(str(base / "app"), str(base / "backups"), integrity="none", compression="gzip"))
    create_backup(BackupRequest(str(base / "app"), str(base / "backups"), type="config", integrity="none",
                                compression="gzip"))
    return base


def test_the_cases_cover_every_option_of_every_module(sandbox):
    covered = {(module, option) for module, option, _params in fuzz_cases(str(sandbox))}
    for module, kwargs in module_specs().items():
        for option in kwargs["argument_spec"]:
            assert (module, option) in covered, (module, option)


def test_every_option_of_every_module_fails_clearly_and_writes_nothing(sandbox, tmp_path):
    tasks, cases = [], []
    app_before, backups_before = tree(str(sandbox / "app")), tree(str(sandbox / "backups"))
    workdir = tmp_path / "cwd" / "below"
    workdir.mkdir(parents=True)
    for number, (module, option, params) in enumerate(fuzz_cases(str(sandbox))):
        out = str(tmp_path / "out" / str(number))
        os.makedirs(out)
        if params.get("backup_dir", "").startswith("OUT"):  # prune, sync and create act on backups of their own
            shutil.copytree(str(sandbox / "backups"), os.path.join(out, "backups"))
        tasks.append({"name": "t%d" % number, "ignore_errors": True, "timeout": TASK_TIMEOUT,
                      "devops.reddit_backup.%s" % module: substitute(params, out)})
        cases.append((module, option, params[option] if option in params else params, out, tree(out, False)))
    started = time.monotonic()
    results = run_fuzz_play(workdir, tasks)
    print("%d cases in %.0f s" % (len(tasks), time.monotonic() - started))
    problems = []
    for number, (module, option, value, out, before) in enumerate(cases):
        where = "%s %s=%r" % (module, option, value)
        outcome = results.get("t%d" % number)
        problems += problems_of(where, outcome)
        after = tree(out, False)
        if outcome and outcome.get("failed") and after != before:
            problems.append("%s failed but changed its folder: %s" % (where, sorted(set(after) ^ set(before))))
    assert tree(str(sandbox / "app")) == app_before
    assert tree(str(sandbox / "backups")) == backups_before
    assert not problems, "%d problems:\n%s" % (len(problems), "\n".join(problems))
