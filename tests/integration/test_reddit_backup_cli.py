"""The reddit-backup command end to end: installed by the runner role, run as an operator would run it, against
the sample app, with the monitoring role's metrics and a webhook server on 127.0.0.1 receiving the notifications."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.metrics import parse
from tests.integration.runnerhost import apphost, run_on_a_terminal  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def series(host, name: str, **labels):
    wanted = ("reddit_backup_" + name, tuple(sorted(dict(labels, app="demo").items())))
    return parse(host.metrics()).get(wanted)


def new_requests(host, before: int, count: int = 1) -> list:
    return [body for _path, _headers, body in host.webhook.wait_for(before + count, timeout=15)[before:]]


def test_create_list_and_the_log(apphost):  # noqa: F811
    created = apphost.run("create")
    assert created.returncode == 0, created.stdout + created.stderr
    assert re.search(r"^archive:\s+%s/daily/backup_" % re.escape(apphost.backup_dir), created.stdout, re.M), \
        "what the engine made is shown"
    assert "PLAY RECAP" not in created.stdout, "no ansible-playbook on the scheduled path"
    summary = created.stdout.strip().splitlines()[-1]
    assert re.match(r"^reddit-backup: create --type full succeeded in [\d.]+ s: backup_\d{8}_\d{6}(-\d+)? "
                    r"\([\d.]+ KiB\) %s/daily/" % re.escape(apphost.backup_dir), summary), summary

    listing = apphost.run("list")
    assert listing.returncode == 0
    assert re.search(r"^full\s+backup_\d{8}_\d{6}", listing.stdout, re.M)
    assert "backups," in listing.stdout.splitlines()[-1]
    detailed = apphost.run("list", "--detailed")
    assert "database   data/reddit_sentiment.db (integrity ok)" in detailed.stdout
    assert any(backup["type"] == "full" for backup in apphost.catalog())

    log = open(apphost.log).read()
    assert re.search(r"^==== \S+Z reddit-backup create --type full \(demo, pid \d+\) ====$", log, re.M)
    assert summary in log
    assert "databases: data/reddit_sentiment.db (integrity ok)" in log, "the whole output is logged"
    assert "reddit-backup list" not in log, "listing changes nothing and is not logged"

    assert series(apphost, "last_run_success", operation="backup", type="full") == 1
    assert series(apphost, "last_run_size_bytes", operation="backup", type="full") > 0
    assert series(apphost, "backups", type="full") >= 1


def test_named_backup_then_verify_comprehensively(apphost):  # noqa: F811
    named = apphost.run("--quiet", "create", "--name", "pre-maintenance-cli")
    assert named.returncode == 0 and named.stdout == "", "--quiet prints nothing on success"
    verified = apphost.run("verify", "--comprehensive", "pre-maintenance-cli")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "pre-maintenance-cli.tar.zst: VALID" in verified.stdout
    assert re.search(r"passed\s+database:data/reddit_sentiment.db\s+PRAGMA integrity_check: ok", verified.stdout)
    listing = apphost.run("list", "--type", "full")
    assert re.search(r"^full\s+pre-maintenance-cli\s.*valid \(comprehensive, ", listing.stdout, re.M)
    assert series(apphost, "verification_success", type="full") == 1
    assert series(apphost, "last_run_success", operation="verify", type="full") == 1


def test_a_failed_backup_exits_1_notifies_and_a_recovery_notifies_again(apphost):  # noqa: F811
    before = len(apphost.webhook.requests)
    apphost.run("--quiet", "create", "--name", "twice")
    failed = apphost.run("--quiet", "create", "--name", "twice")
    assert failed.returncode == 1
    assert "already exists" in failed.stderr, "the tail of the output is printed on failure"
    assert failed.stderr.strip().splitlines()[-1].startswith(
        "reddit-backup: create --type full --name twice FAILED (a backup named twice already exists")
    event = new_requests(apphost, before, 1)[-1]
    assert (event["app"], event["operation"], event["type"], event["status"]) == ("demo", "backup", "full", "failed")
    assert "already exists" in event["message"] and event["details"]["log"] == apphost.log
    assert series(apphost, "last_run_success", operation="backup", type="full") == 0

    recovered = apphost.run("--quiet", "create")
    assert recovered.returncode == 0
    event = new_requests(apphost, before, 2)[-1]
    assert event["status"] == "recovered" and event["text"].startswith("reddit-backup: full backup of demo on ")
    assert series(apphost, "last_run_success", operation="backup", type="full") == 1
    path, headers, _body = apphost.webhook.requests[-1]
    assert path == "/hooks/s3cr3t-t0ken" and headers["Content-Type"] == "application/json"


def test_a_damaged_archive_fails_verification(apphost):  # noqa: F811
    assert apphost.run("--quiet", "create", "--type", "database").returncode == 0
    archive = [b for b in apphost.catalog() if b["type"] == "database"][-1]["archive"]
    with open(archive, "r+b") as handle:
        handle.seek(40)
        byte = handle.read(1)
        handle.seek(40)
        handle.write(bytes([byte[0] ^ 0xFF]))
    before = len(apphost.webhook.requests)
    verified = apphost.run("verify", archive)
    assert verified.returncode == 1
    assert "INVALID" in verified.stdout and "FAILED" in verified.stderr
    assert series(apphost, "last_run_success", operation="verify", type="database") == 0
    assert series(apphost, "verification_success", type="database") == 0
    assert new_requests(apphost, before)[-1]["operation"] == "verify"
    os.unlink(archive)  # the rest of the suite wants a sound catalog
    for sidecar in (".sha256", ".meta.json", ".verify.json"):
        if os.path.exists(archive + sidecar):
            os.unlink(archive + sidecar)


def test_restore_database_latest_through_the_restore_playbook(apphost):  # noqa: F811
    assert apphost.run("--quiet", "create", "--type", "database").returncode == 0
    database = os.path.join(apphost.app_root, "data", "reddit_sentiment.db")
    conn = sqlite3.connect(database)
    with conn:
        conn.execute("DELETE FROM posts")
    conn.close()  # the restore refuses a database that a process holds open
    restored = apphost.run("restore-database", "latest")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr
    conn = sqlite3.connect(database)
    assert conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0] > 0
    conn.close()
    assert "restore-database latest succeeded" in restored.stdout
    assert series(apphost, "last_run_success", operation="restore", type="all") == 1


def test_cleanup_and_dry_runs(apphost):  # noqa: F811
    count = len(apphost.catalog())
    dry = apphost.run("create", "--dry-run")
    assert dry.returncode == 0 and "check mode" in dry.stdout
    assert len(apphost.catalog()) == count
    cleanup = apphost.run("cleanup", "--dry-run")
    assert cleanup.returncode == 0 and "would remove" in cleanup.stdout
    cleanup = apphost.run("--quiet", "cleanup")
    assert cleanup.returncode == 0
    assert series(apphost, "last_run_success", operation="cleanup", type="all") == 1


def test_commands_whose_playbook_is_not_installed_say_so(apphost, tmp_path):  # noqa: F811
    """A collection without the playbook (as before its release): exit 3, a clear message, nothing run."""
    collection = tmp_path / "collections" / "ansible_collections" / "devops" / "reddit_backup"
    shutil.copytree(os.path.join(apphost.root, "opt", "reddit-backup", "collections", "ansible_collections",
                                 "devops", "reddit_backup"), str(collection))
    for playbook in ("recovery_test.yml", "verify_restore.yml"):
        if (collection / "playbooks" / playbook).exists():
            (collection / "playbooks" / playbook).unlink()
    settings = json.load(open(os.path.join(apphost.config, "runner.json")))
    settings["collections_path"] = str(tmp_path / "collections")
    (tmp_path / "config" / "demo").mkdir(parents=True)
    (tmp_path / "config" / "demo" / "runner.json").write_text(json.dumps(settings))
    for command in ("recovery-test", "verify-restore"):
        result = apphost.run("--config-dir", str(tmp_path / "config"), command)
        assert result.returncode == 3, (command, result.stderr)
        assert "is not installed yet" in result.stderr and "Nothing was done." in result.stderr
    assert "verify-restore: the playbook devops.reddit_backup.verify_restore is not installed yet" in \
        open(apphost.log).read()


def test_exit_codes_for_usage_and_configuration_errors(apphost, tmp_path):  # noqa: F811
    assert apphost.run("frobnicate").returncode == 2
    assert apphost.run("create", "--type", "weekly").returncode == 2
    unknown = apphost.run("--app", "nope", "list")
    assert unknown.returncode == 4 and "application 'nope' is not set up" in unknown.stderr
    empty = apphost.run("--config-dir", str(tmp_path), "list")
    assert empty.returncode == 4 and "no application is set up" in empty.stderr
    assert apphost.run("restore").returncode == 2


def test_operator_environment_does_not_leak_into_runs(apphost):  # noqa: F811
    """An ANSIBLE_* setting in the operator's shell must not change what a run does."""
    result = apphost.run("--quiet", "create", "--type", "config",
                         env={"ANSIBLE_COLLECTIONS_PATH": "/nonexistent", "ANSIBLE_STDOUT_CALLBACK": "nope"})
    assert result.returncode == 0, result.stderr


def test_on_a_terminal_the_commands_run_with_progress(apphost):  # noqa: F811
    """stdout and stderr a terminal: the progress display is wired into create and verify (a short run draws
    nothing, and the run's own lines come through)."""
    text = ""
    for args in (("create", "--type", "config"), ("verify", "--comprehensive")):
        code, screen = run_on_a_terminal([apphost.command, *args])
        assert code == 0, (args, screen[-2000:])
        text += screen
    assert "reddit-backup: create --type config succeeded" in text and "VALID" in text, text[-2000:]
    assert "Traceback" not in text


def test_safety_copies_listed_pruned_by_the_inventory_rule_and_removed_by_name(apphost):  # noqa: F811
    assert apphost.run("--quiet", "create", "--type", "database").returncode == 0
    restored = apphost.run("restore-database", "latest")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr
    data = os.path.join(apphost.app_root, "data")
    fresh = sorted(name for name in os.listdir(apphost.app_root) if name.startswith("data.pre-restore-"))
    assert fresh, "the restore moved the replaced database folder aside"
    # A copy an old restore left (its age is in its name, as restores stamp it): past the default 7 days.
    old = os.path.join(apphost.app_root, "data.pre-restore-20200101T000000Z")
    shutil.copytree(data, old)

    listing = apphost.run("safety-copies")
    assert listing.returncode == 0, listing.stderr
    assert old in listing.stdout and "the rule removes it: older than 7d" in listing.stdout
    assert all(os.path.join(apphost.app_root, name) in listing.stdout for name in fresh)
    as_json = json.loads(apphost.run("safety-copies", "--json").stdout)
    assert [copy["path"] for copy in as_json["would_remove"]] == [old]

    dry = apphost.run("safety-copies", "--prune", "--dry-run")
    assert dry.returncode == 0 and "would remove %s (older than 7d)" % old in dry.stdout
    assert os.path.isdir(old)
    pruned = apphost.run("safety-copies", "--prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert not os.path.exists(old)
    assert all(os.path.isdir(os.path.join(apphost.app_root, name)) for name in fresh), "the rule keeps the new ones"
    assert series(apphost, "last_run_success", operation="cleanup", type="all") == 1

    stranger = apphost.run("safety-copies", "--remove", data)
    assert stranger.returncode == 1
    assert "is not a safety copy" in stranger.stdout + stranger.stderr and os.path.isdir(data), \
        "only a listed safety copy is ever removed"
    newest = os.path.join(apphost.app_root, fresh[-1])
    removed = apphost.run("safety-copies", "--remove", newest)
    assert removed.returncode == 0 and not os.path.exists(newest)


def test_a_restore_shows_its_steps_on_a_terminal_and_one_line_with_its_rto_under_a_timer(apphost):  # noqa: F811
    assert apphost.run("--quiet", "create", "--type", "database").returncode == 0
    rto = (r"RTO database corruption: [\d.]+ s from start to restored \(health check off\); "
           r"target 1800 s \(30 min\): met")
    quiet = apphost.run("--quiet", "restore-database", "latest", env={"JOURNAL_STREAM": "8:1"})
    assert quiet.returncode == 0, quiet.stdout[-3000:] + quiet.stderr
    assert quiet.stderr == "" and quiet.stdout.count("\n") == 1, quiet.stdout[-3000:]
    assert re.match(r"^reddit-backup: restore-database latest succeeded in [\d.]+ s: %s$" % rto, quiet.stdout), \
        quiet.stdout
    code, screen = run_on_a_terminal([apphost.command, "restore-database", "latest"])
    assert code == 0, screen[-3000:]
    steps = [line for line in screen.splitlines() if line.startswith("TASK [")]
    assert any("Restore from the backup" in step for step in steps), screen[-3000:]  # each step as it starts
    assert re.search(r"^reddit-backup: restore-database latest succeeded in [\d.]+ s: %s\r?$" % rto, screen, re.M), \
        screen[-3000:]
