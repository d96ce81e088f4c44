"""Pieces of the reddit-backup command that the end-to-end tests cannot reach: dropping root for the application's
user, reading the failing task's message, telling archive paths from backup names."""

from __future__ import annotations

import io
import json
import os
import pwd
import subprocess
import sys
import types

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._command import cli as cli_module
from ansible_collections.devops.reddit_backup.plugins.module_utils._command import (
    backups, output, playbooks, progress, settings, words)


@pytest.fixture(scope="module")
def cli():
    """The command's pieces under one name, as the tests knew them when the command was one file."""
    parts = types.SimpleNamespace()
    for module in (settings, output, words, playbooks, cli_module):
        parts.__dict__.update({name: value for name, value in vars(module).items() if not name.startswith("_")})
    return parts


class FakeSettings:
    def __init__(self, user):
        self.runner = {"user": user}


@pytest.mark.needs_root  # drops privileges
def test_root_becomes_the_application_user(cli):
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child drops root and reports who it is; the test process stays root
        os.close(read)
        try:
            cli.become_app_user(FakeSettings("nobody"))
            os.write(write, ("%d %d %s" % (os.getuid(), os.getgid(), os.environ["HOME"])).encode())
        finally:
            os._exit(0)
    os.close(write)
    report = os.read(read, 200).decode()
    os.waitpid(child, 0)
    assert report == "%d %d %s" % (nobody.pw_uid, nobody.pw_gid, nobody.pw_dir)


def test_root_application_user_and_unknown_users(cli):
    cli.become_app_user(FakeSettings("root"))  # nothing to do
    cli.become_app_user(FakeSettings(None))
    assert os.geteuid() == os.getuid()
    if os.geteuid() == 0:
        with pytest.raises(cli.ConfigError, match="does not exist"):
            cli.become_app_user(FakeSettings("no-such-user-here"))


def test_failure_message_is_the_failed_tasks_msg(cli):
    output = ["TASK [Take the backup] ***", "fatal: [localhost]: FAILED! =>", "    changed: false",
              "    msg: 'a backup named x already exists (/b/manual/x.tar.zst); choose another name'", "",
              "PLAY RECAP ***"]
    assert cli.failure_message(output) == ("a backup named x already exists (/b/manual/x.tar.zst); "
                                           "choose another name")
    wrapped = ["fatal: [localhost]: FAILED! =>", "    changed: false", "    msg: 'refusing to restore over a database",
               "        in use: PID 42 holds data/x.db'", "", "PLAY RECAP"]
    assert cli.failure_message(wrapped) == "refusing to restore over a database in use: PID 42 holds data/x.db"
    assert cli.failure_message(["ERROR! the playbook could not be found"]) == "ERROR! the playbook could not be found"
    assert cli.failure_message(["nothing useful"]) == ""


def test_archive_paths_and_backup_names(cli, tmp_path):
    assert cli.archive_or_name("backup_20250528_020000") == {"name": "backup_20250528_020000"}
    assert cli.archive_or_name("daily/backup_20250528_020000.tar.zst") == {
        "archive": os.path.abspath("daily/backup_20250528_020000.tar.zst")}
    archive = tmp_path / "x.tar.zst"
    archive.write_bytes(b"")
    assert cli.archive_or_name(str(archive)) == {"archive": str(archive)}
    assert cli.restore_vars("pre-maintenance-20250528") == {"reddit_backup_restore_name": "pre-maintenance-20250528"}


def test_sizes_read_like_people_write_them(cli):
    assert [cli.human_size(size) for size in (None, 0, 1023, 1024, 1536 * 1024, 3 * 1024 ** 4)] == \
        ["?", "0 B", "1023 B", "1.0 KiB", "1.5 MiB", "3.0 TiB"]


def test_usage_errors_exit_2_and_help_exits_0(cli, capsys):
    assert cli.main(["frobnicate"]) == cli.EXIT_USAGE
    assert cli.main(["--help"]) == cli.EXIT_OK
    assert "Exit codes: 0 success" in capsys.readouterr().out.replace("\n", " ")


def test_with_a_signing_key_the_commands_stay_root(cli):
    """The signing key is root's alone: a create that dropped to the application's user could not sign."""
    plain, signing = FakeSettings("cayir"), FakeSettings("cayir")
    signing.runner["signing_key"] = "/etc/reddit-backup/signing_key"
    assert cli.runs_as_app_user(plain, "create") and cli.runs_as_app_user(plain, "cleanup")
    assert not cli.runs_as_app_user(plain, "restore")
    assert not any(cli.runs_as_app_user(signing, command) for command in cli.AS_APP_USER)


class KeySettings:
    def __init__(self, runner):
        self.runner = runner


def test_verify_gets_only_the_keys_the_inventory_sets(cli):
    assert cli.verify_keys(KeySettings({})) == {}  # a runner.json written before the keys were passed on
    keys = {"identity_file": "/etc/reddit_backup/age-identity.txt", "trusted_signing_keys": None,
            "allowed_signers": ""}
    assert cli.verify_keys(KeySettings({"verify_keys": keys})) == {
        "identity_file": "/etc/reddit_backup/age-identity.txt"}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_draws_after_a_few_seconds_and_clears_its_line(tmp_path):
    clock, screen = Clock(), io.StringIO()
    shown = progress.Progress(True, "verify", clock=clock, stream=screen)
    shown.update(10, 100)
    assert screen.getvalue() == "", "a short run draws nothing"
    clock.now += 4
    shown.update(40 << 20, 100 << 20)
    assert screen.getvalue() == "\rverify: 40.0 MiB of 100.0 MiB (40%), 10.0 MiB/s, 6 s left"
    clock.now += 0.1
    shown.update(41 << 20, 100 << 20)
    assert screen.getvalue().count("\r") == 1, "redrawn at most twice a second"
    shown.close()
    drawn = "verify: 40.0 MiB of 100.0 MiB (40%), 10.0 MiB/s, 6 s left"
    assert screen.getvalue().endswith("\r" + " " * len(drawn) + "\r")
    silent = io.StringIO()
    off = progress.Progress(False, "create", clock=clock, stream=silent)
    clock.now += 10
    off.update(1, 2)
    off.close()
    assert silent.getvalue() == "", "no terminal: nothing drawn"


def test_the_read_watch_follows_the_descriptor_reading_the_file(tmp_path):
    """As for a verify: this process reads the archive; done follows its descriptor, and counts whole once closed."""
    archive = tmp_path / "backup.tar.zst"
    archive.write_bytes(b"x" * 4096)
    seen = []

    class Recorder:
        enabled = True

        def update(self, done, total):
            seen.append((done, total))

        def close(self):
            seen.append("closed")

    watch = progress.ReadWatch([str(archive)], Recorder())
    assert watch.sample() == 0, "not open yet: nothing read"
    with open(str(archive), "rb", buffering=0) as handle:
        handle.read(1000)
        assert watch.sample() == 1000
    assert watch.sample() == 4096, "seen reading, closed since: read whole"
    with watch:
        pass
    assert seen[-1] == "closed"


def test_the_read_watch_follows_a_child_reading_the_files_it_sends(tmp_path):
    """As for a push: rsync (a child) reads the sidecar, then the archive; done grows with what it has read."""
    sidecar, archive = tmp_path / "backup.tar.zst.sha256", tmp_path / "backup.tar.zst"
    sidecar.write_bytes(b"s" * 100)
    archive.write_bytes(b"x" * 10000)
    reader = subprocess.Popen([sys.executable, "-c", "import sys\n"
                               "open(sys.argv[1], 'rb').read()\n"
                               "f = open(sys.argv[2], 'rb', buffering=0); f.read(4000); print('half', flush=True)\n"
                               "sys.stdin.readline()", str(sidecar), str(archive)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "half"
        assert str(reader.pid) in progress.descendants(os.getpid())
        watch = progress.ReadWatch([str(sidecar), str(archive)], progress.Progress(False, "sync"))
        assert watch.sample() == 4000, "the archive half read; the sidecar read and closed before it was seen"
        watch.read[os.path.realpath(str(sidecar))] = 1  # once seen reading it, a closed sidecar counts whole
        assert watch.sample() == 4100
    finally:
        reader.stdin.write("\n")
        reader.stdin.close()
        reader.wait(timeout=10)
    assert watch.sample() == 10100, "closed after it was seen reading: sent whole"
    assert str(reader.pid) not in progress.descendants(os.getpid())


def test_quiet_under_a_systemd_timer_prints_only_the_summary(tmp_path, monkeypatch, capsys):
    class LogSettings:
        log_file = str(tmp_path / "logs" / "backup.log")
        runner = {}

    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    quiet = output.Output(LogSettings(), quiet=True)
    quiet.line("archive: somewhere")
    quiet.succeeded("reddit-backup: create --type database succeeded in 0.2 s")
    quiet.close()
    assert capsys.readouterr().out == "reddit-backup: create --type database succeeded in 0.2 s\n"
    monkeypatch.delenv("JOURNAL_STREAM")
    cron = output.Output(LogSettings(), quiet=True)
    cron.succeeded("reddit-backup: cleanup succeeded in 0.1 s")
    cron.close()
    assert capsys.readouterr().out == "", "cron mails any output: --quiet stays quiet there"
    assert open(LogSettings.log_file).read().count("succeeded") == 2, "the log has both"


class ReplicaSettings(FakeSettings):
    def __init__(self, folder):
        super().__init__("cayir")
        self.dir = str(folder)

    def setting(self, name):
        assert name == "replica"


def test_with_a_replica_list_and_the_drill_stay_root(cli, tmp_path):
    """The replica's settings are root's alone: list and recovery-test read them, so they keep root there."""
    settings = ReplicaSettings(tmp_path)
    assert cli.runs_as_app_user(settings, "list") and cli.runs_as_app_user(settings, "recovery-test")
    (tmp_path / "replica.json").write_text("{}")
    assert not cli.runs_as_app_user(settings, "list") and not cli.runs_as_app_user(settings, "recovery-test")
    assert cli.runs_as_app_user(settings, "create"), "commands that do not read the replica still drop root"
    settings.setting = NoSettingsJson()
    assert not cli.runs_as_app_user(settings, "list"), "without settings.json, the litestream role's place"


class NoSettingsJson:
    def __call__(self, name):
        raise settings.ConfigError("cannot read settings.json")


@pytest.mark.parametrize("written, asked", [({}, "auto"), ({"reddit_backup_integrity": "full"}, "full")],
                         ids=["default", "full"])
def test_create_asks_the_integrity_the_inventory_sets_and_auto_when_unset(tmp_path, written, asked):
    """reddit-backup create: integrity full from the inventory stays full (page deltas too); unset, the default."""
    folder = tmp_path / "demo"
    folder.mkdir()
    runner = {key: str(tmp_path / key) for key in settings.REQUIRED_KEYS}
    (folder / "runner.json").write_text(json.dumps(dict(runner, app_root=str(tmp_path / "app"))))
    (folder / "settings.json").write_text(json.dumps(written))
    request = backups.backup_request(settings.Settings(str(tmp_path), "demo"),
                                     types.SimpleNamespace(type="incremental", name=None))
    assert request.integrity == asked
