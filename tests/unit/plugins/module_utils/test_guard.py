"""The modules' guard: path options are checked in words, and an unexpected exception is reported as a bug that
says what was being done and where to report it, without the exception's text (which may hold a secret)."""

from __future__ import annotations

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._guard import (
    ISSUES_URL, guarded, options_problem, path_problem)

SECRET = "tok-5ecret-1234"


class Failed(Exception):
    """What AnsibleModule.fail_json does (it exits), as an exception the test can catch."""


class FakeModule:
    """The three things the guard uses of an AnsibleModule."""

    _name = "backup_fake"

    def __init__(self, argument_spec: dict, params: dict) -> None:
        self.argument_spec, self.params = argument_spec, params

    def fail_json(self, **result):
        raise Failed(result)


def failure(module: FakeModule, error: BaseException = None) -> dict:
    with pytest.raises(Failed) as failed:
        with guarded(module, "doing the fake thing"):
            if error:
                raise error
    return failed.value.args[0]


@pytest.mark.parametrize("value,words", [
    ("", "backup_dir is empty"), ("/srv/b\x00x", "backup_dir holds a NUL byte"),
    ("/srv/backups\n", "backup_dir ends in or holds a line break"),
    ("/srv/\x1b[31m", "backup_dir holds a control character")])
def test_a_bad_path_is_named_by_option(value, words):
    assert path_problem("backup_dir", value).startswith(words)


def test_ordinary_paths_pass():
    for value in ["/srv/backups", "relative/dir", "..", "/", "/with space/ünï"]:
        assert path_problem("backup_dir", value) is None


def test_every_path_option_is_checked_lists_and_suboptions_too():
    spec = {"dest": {"type": "path"}, "name": {"type": "str"},
            "watch": {"type": "list", "elements": "path"},
            "jobs": {"type": "list", "elements": "dict", "options": {"workdir": {"type": "path"}}}}
    assert options_problem(spec, {"dest": "/ok", "name": "x\n", "watch": None, "jobs": None}) is None
    assert options_problem(spec, {"dest": "/ok", "watch": ["/a", "b\x00"]}).startswith("watch holds a NUL")
    assert options_problem(spec, {"jobs": [{"workdir": "w\n"}]}).startswith("jobs.workdir ends in")


def test_a_bad_path_stops_the_module_before_its_work():
    module = FakeModule({"backup_dir": {"type": "path"}}, {"backup_dir": "/srv/b\x00x"})
    assert failure(module, RuntimeError("must not run"))["msg"] == (
        "backup_dir holds a NUL byte, which no path can hold; remove it")


def test_a_backup_error_is_its_message():
    assert failure(FakeModule({}, {}), BackupError("backup_dir /x is not a directory"))["msg"] == (
        "backup_dir /x is not a directory")


def test_an_unexpected_exception_is_reported_as_a_bug_without_its_text():
    result = failure(FakeModule({}, {}), ValueError("embedded null byte in %s" % SECRET))
    assert result["msg"].startswith("a bug in devops.reddit_backup stopped backup_fake while doing the fake thing")
    assert ISSUES_URL in result["msg"] and "test_guard.py line" in result["msg"]
    assert SECRET not in str(result) and "embedded null byte" not in str(result)
    assert "raise error" in result["exception"]  # the frames, for -vvv


def test_exits_are_not_caught():
    with pytest.raises(SystemExit):
        with guarded(FakeModule({}, {}), "exiting"):
            raise SystemExit(0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_one_is_named(value):
    spec = {"lock_timeout": {"type": "float"}, "run": {"type": "dict", "options": {"duration": {"type": "float"}}}}
    assert options_problem(spec, {"lock_timeout": value}) == "lock_timeout must be a number, not %s" % value
    assert options_problem(spec, {"run": {"duration": value}}).startswith("run.duration must be a number")
    assert options_problem(spec, {"lock_timeout": 1e308, "run": {"duration": -1.0}}) is None
