"""Incremental chains and retention through ansible-playbook: backup_create type incremental, backup_info's
chain view, backup_prune four times (check, real, check, real) and the cleanup playbook."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timedelta, timezone

from tests.integration.runner import REPO, run_playbook


def create(app, backups, task, **options):
    return {"name": task, "devops.reddit_backup.backup_create": dict(app_root=str(app), backup_dir=str(backups),
                                                                     **options)}


def add_posts(app, count):
    conn = sqlite3.connect(str(app / "data" / "reddit_sentiment.db"))
    conn.executemany("INSERT INTO posts (reddit_id, subreddit, title, body, score, created_utc, sentiment_score, "
                     "sentiment_label) VALUES (?, 'python', 't', 'b', 1, 0, 0.0, 'neutral')",
                     [("test_%d_%d" % (count, n),) for n in range(count)])
    conn.commit()
    conn.close()


def test_chain_then_prune_four_times(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    first = play([create(sample_app, backups, "full")])
    assert not first.failed, first.stderr
    add_posts(sample_app, 30)
    (sample_app / "output" / "posts_latest.csv").unlink()
    second = play([create(sample_app, backups, "inc1", type="incremental"),
                   {"name": "catalog", "devops.reddit_backup.backup_info": {"backup_dir": str(backups)}}])
    inc = second.result("inc1")
    assert inc["type"] == "incremental" and inc["parent"] == first.result("full")["name"] and inc["depth"] == 1
    assert inc["deleted"] == ["output/posts_latest.csv"] and inc["databases"][0]["delta"] is True
    assert inc["size"] < first.result("full")["size"] / 3
    catalog = second.result("catalog")
    assert [(b["type"], b["depth"], b["restorable"]) for b in catalog["backups"]] == [
        ("full", 0, True), ("incremental", 1, True)]
    assert len(catalog["recovery_points"]) == 2

    future = (datetime.now(timezone.utc) + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    prune = [{"name": "prune", "devops.reddit_backup.backup_prune": {"backup_dir": str(backups), "now": future}}]
    runs = [play(prune, check=True), play(prune), play(prune, check=True), play(prune)]
    results = [run.result("prune") for run in runs]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert [d["name"] for d in results[0]["deleted"]] == [inc["name"]] == [d["name"] for d in results[1]["deleted"]]
    assert results[1]["freed_bytes"] == inc["size"]
    assert not os.path.exists(inc["archive"]) and not os.path.exists(inc["archive"] + ".sha256")
    assert os.path.exists(first.result("full")["archive"])


def test_cleanup_playbook_uses_the_inventory_retention_days(sample_app, tmp_path, play):
    backups = tmp_path / "backups"
    assert not play([create(sample_app, backups, "full"), create(sample_app, backups, "config", type="config"),
                     create(sample_app, backups, "db", type="database")]).failed
    future = (datetime.now(timezone.utc) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run_playbook(tmp_path, os.path.join(REPO, "playbooks", "cleanup.yml"), extra_args=[
        "-e", "reddit_backup_hosts=localhost", "-e", "reddit_backup_backup_dir=%s" % backups,
        "-e", "reddit_backup_prune_now=%s" % future,
        "-e", '{"reddit_backup_retention_days": {"full": 30, "incremental": 7, "config": 2, "database": 1}}'])
    assert not result.failed, result.result("Apply the retention policy")
    pruned = result.result("Apply the retention policy")
    assert sorted(d["type"] for d in pruned["deleted"]) == ["config", "database"]
    assert [k["type"] for k in pruned["kept"]] == ["full"]
