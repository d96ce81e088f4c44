"""Tests for examples/sample_app: the seeding tool, the collector and the health server."""

import ast
import configparser
import gzip
import hashlib
import importlib.util
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SAMPLE = os.path.join(REPO, "examples", "sample_app")
SKELETON = os.path.join(SAMPLE, "skeleton")
SEED_PY = os.path.join(SAMPLE, "seed.py")
PY = sys.executable
MIB = 1024 * 1024


def _load_seed():
    spec = importlib.util.spec_from_file_location("sample_app_seed", SEED_PY)
    module = importlib.util.module_from_spec(spec)
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # keep examples/sample_app free of __pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


seed = _load_seed()
collector = seed.load_collector()


# --------------------------------------------------------------------------- helpers
def _wait_for(predicate, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def _read_progress(path):
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def _db(app):
    return os.path.join(str(app), "data", "reddit_sentiment.db")


def _query(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _dump(db):
    rows = _query(db, "SELECT * FROM posts ORDER BY id")
    return hashlib.sha256(repr(rows).encode()).hexdigest(), len(rows)


def _get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class _Proc(object):
    """A subprocess the test started, always reaped (by pid) at teardown."""

    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, **kw)

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("process %d did not stop on SIGTERM" % self.p.pid)


@pytest.fixture
def procs():
    started = []

    def start(args, **kw):
        proc = _Proc(args, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.p.poll() is None:
            proc.p.kill()
            proc.p.wait()
        for stream in (proc.p.stdout, proc.p.stderr):
            if stream:
                stream.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One seeded app shared by read-only tests."""
    root = tmp_path_factory.mktemp("shared") / "app"
    seed.seed_app(str(root), db_size_mb=2, seed=3, user="appuser", python=PY)
    return root


@pytest.fixture
def fresh_app(tmp_path):
    root = tmp_path / "app"
    summary = seed.seed_app(str(root), rows=2000, seed=1, python=PY)
    return root, summary


def _start_health(procs, db, cwd=None):
    proc = procs([PY, os.path.join(SKELETON, "apps", "collector", "health_server.py"),
                  "--db", db, "--port", "0"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    line = proc.p.stdout.readline().strip()
    assert line.startswith("listening on 127.0.0.1:"), (line, proc.p.stderr.read() if proc.p.poll() else "")
    port = int(line.rsplit(":", 1)[1])
    return proc, "http://127.0.0.1:%d" % port


# --------------------------------------------------------------------------- seeding
def test_seed_creates_layout(app):
    expected = [
        "config/production.env", "config/logging.conf", "config/monitoring.yml",
        "monitoring/alerting_rules.yml", "monitoring/prometheus_config.yml",
        "systemd/reddit-sentiment-pipeline.service", "systemd/reddit-sentiment-pipeline.timer",
        "systemd/reddit-sentiment-monitor.service",
        "apps/collector/__init__.py", "apps/collector/collector.py", "apps/collector/health_server.py",
        "apps/collector/requirements.txt", "scripts/run_pipeline.sh", "scripts/health_check.sh",
        "logs/.keep", "data/.keep", "data/reddit_sentiment.db",
        "output/sentiment_summary.csv", "output/posts_latest.csv",
        "logs/pipeline.log", "logs/pipeline.log.1", "logs/pipeline.log.2.gz", "logs/errors.log",
        "venv/pyvenv.cfg",
    ]
    for rel in expected:
        assert (app / rel).is_file(), rel
    for rel in ("scripts/run_pipeline.sh", "scripts/health_check.sh"):
        assert os.stat(str(app / rel)).st_mode & stat.S_IXUSR, rel
    assert not os.stat(str(app / "config/production.env")).st_mode & 0o111
    assert list((app / "apps/collector/__pycache__").glob("*.pyc"))
    assert gzip.decompress((app / "logs/pipeline.log.2.gz").read_bytes()).startswith(b"2024-")
    # skeleton files are copied verbatim
    for rel in ("config/production.env", "config/logging.conf", "apps/collector/collector.py"):
        assert (app / rel).read_bytes() == open(os.path.join(SKELETON, rel), "rb").read(), rel
    with open(str(app / "output/sentiment_summary.csv")) as fh:
        header = fh.readline().strip()
    assert header.startswith("subreddit,posts,positive,negative,neutral")
    assert sum(1 for _ in open(str(app / "output/posts_latest.csv"))) == 101


def test_seed_database_is_wal_and_sized(app):
    db = _db(app)
    size = os.path.getsize(db)
    assert 2 * MIB <= size < 2.2 * MIB
    assert not os.path.exists(db + "-wal") or os.path.getsize(db + "-wal") == 0
    assert not os.path.exists(db + ".seeding")
    assert _query(db, "PRAGMA journal_mode") == [("wal",)]
    assert _query(db, "PRAGMA integrity_check") == [("ok",)]
    cols = [r[1] for r in _query(db, "PRAGMA table_info(posts)")]
    assert cols == ["id", "reddit_id", "subreddit", "title", "body", "score", "created_utc",
                    "sentiment_score", "sentiment_label"]
    idx = [r[0] for r in _query(db, "SELECT sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")]
    assert any("(subreddit, created_utc)" in s for s in idx)
    n, mx = _query(db, "SELECT COUNT(*), MAX(id) FROM posts")[0]
    assert n == mx > 1000
    labels = dict(_query(db, "SELECT sentiment_label, COUNT(*) FROM posts GROUP BY 1"))
    assert set(labels) == {"positive", "negative", "neutral"}


def test_seed_renders_units(app):
    for name in os.listdir(os.path.join(SKELETON, "systemd")):
        template = open(os.path.join(SKELETON, "systemd", name)).read()
        rendered = (app / "systemd" / name).read_text()
        assert "@" not in rendered, name
        cp = configparser.ConfigParser(strict=False, interpolation=None)
        cp.optionxform = str
        cp.read_string(rendered)
        if name.endswith(".service"):
            assert "@APP_ROOT@" in template and "@APP_USER@" in template and "@PYTHON@" in template
            svc = cp["Service"]
            assert svc["User"] == "appuser"
            assert svc["WorkingDirectory"] == str(app)
            exe, script = svc["ExecStart"].split()[:2]
            assert exe == PY and os.path.isfile(script)
            assert cp["Install"]["WantedBy"] == "multi-user.target"
    monitor = (app / "systemd/reddit-sentiment-monitor.service").read_text()
    assert "Restart=on-failure" in monitor and "0.0.0.0" not in monitor
    assert "Type=oneshot" in (app / "systemd/reddit-sentiment-pipeline.service").read_text()
    assert "Unit=reddit-sentiment-pipeline.service" in (app / "systemd/reddit-sentiment-pipeline.timer").read_text()


def test_seed_cli_summary_and_idempotence(tmp_path):
    root = tmp_path / "cli"
    cmd = [PY, SEED_PY, "--app-root", str(root), "--rows", "1500", "--seed", "2", "--python", PY]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["app_root"] == str(root) and summary["db"] == _db(root)
    assert summary["rows"] == 1500 and summary["db_bytes"] == os.path.getsize(_db(root))
    assert summary["changed"] is True
    before = {p: os.stat(p).st_mtime_ns for p in map(str, root.rglob("*")) if os.path.isfile(p)}
    again = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    assert again["changed"] is False and again["rows"] == 1500
    after = {p: os.stat(p).st_mtime_ns for p in map(str, root.rglob("*")) if os.path.isfile(p)}
    assert before == after
    grown = json.loads(subprocess.run(cmd[:4] + ["--rows", "2500", "--seed", "2", "--python", PY],
                                      capture_output=True, text=True, check=True).stdout)
    assert grown["changed"] is True and grown["rows"] == 2500
    assert _query(_db(root), "PRAGMA journal_mode") == [("wal",)]


def test_seed_grows_to_requested_size(tmp_path):
    root = tmp_path / "grow"
    seed.seed_app(str(root), rows=100, python=PY)
    summary = seed.seed_app(str(root), db_size_mb=3, python=PY)
    assert summary["db_bytes"] >= 3 * MIB and summary["db_bytes"] < 3.3 * MIB
    assert summary["rows"] == summary["max_id"]
    assert _query(_db(root), "PRAGMA integrity_check") == [("ok",)]


def test_seed_is_deterministic(tmp_path):
    a = seed.seed_app(str(tmp_path / "a"), rows=3000, seed=7, python=PY)
    b = seed.seed_app(str(tmp_path / "b"), rows=3000, seed=7, python=PY)
    c = seed.seed_app(str(tmp_path / "c"), rows=3000, seed=8, python=PY)
    assert _dump(a["db"]) == _dump(b["db"])
    assert _dump(a["db"])[0] != _dump(c["db"])[0]
    # seeding in two steps gives the same posts as seeding at once
    seed.seed_app(str(tmp_path / "d"), rows=1234, seed=7, python=PY)
    d = seed.seed_app(str(tmp_path / "d"), rows=3000, seed=7, python=PY)
    assert _dump(d["db"]) == _dump(a["db"])
    assert (tmp_path / "a/logs/pipeline.log").read_bytes() == (tmp_path / "b/logs/pipeline.log").read_bytes()


def test_seed_refuses_foreign_directory(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(seed.SeedError, match="does not look like a sample app"):
        seed.seed_app(str(foreign), rows=10, python=PY)
    assert sorted(os.listdir(str(foreign))) == ["precious.txt"]
    res = subprocess.run([PY, SEED_PY, "--app-root", str(foreign), "--rows", "10"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--force" in res.stderr and res.stdout == ""
    summary = seed.seed_app(str(foreign), rows=10, python=PY, force=True)
    assert summary["rows"] == 10 and (foreign / "precious.txt").read_text() == "keep me"
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(seed.SeedError, match="not a directory"):
        seed.seed_app(str(afile), rows=10, python=PY)
    with pytest.raises(seed.SeedError, match="systemd units"):
        seed.seed_app(str(tmp_path / "with space"), rows=10, python=PY)


def test_seed_force_resets(fresh_app):
    root, summary = fresh_app
    env = root / "config/production.env"
    env.write_text("BROKEN=1\n")
    (root / "logs/pipeline.log.2.gz").unlink()
    conn = collector.open_db(_db(root))
    collector.insert_posts(conn, [collector.make_post(random.Random(0), 10 ** 6)])
    conn.close()
    kept = seed.seed_app(str(root), rows=2000, seed=1, python=PY)  # converge: restores missing only
    assert env.read_text() == "BROKEN=1\n" and (root / "logs/pipeline.log.2.gz").is_file()
    assert kept["rows"] == 2001
    reset = seed.seed_app(str(root), rows=2000, seed=1, python=PY, force=True)
    assert env.read_bytes() == open(os.path.join(SKELETON, "config/production.env"), "rb").read()
    assert reset["rows"] == 2000 and reset["max_id"] == 2000


# --------------------------------------------------------------------------- collector
def test_make_post_and_sentiment():
    rng = random.Random(42)
    posts = [collector.make_post(rng, n) for n in range(1, 300)]
    assert len({p["reddit_id"] for p in posts}) == len(posts)
    assert [p["reddit_id"] for p in posts] == sorted(p["reddit_id"] for p in posts)
    for p in posts:
        assert set(p) == set(collector.COLUMNS)
        assert p["subreddit"] in collector.SUBREDDITS and p["title"] and p["body"]
        assert -1.0 <= p["sentiment_score"] <= 1.0
        assert collector.score_text(p["title"] + " " + p["body"]) == (p["sentiment_score"], p["sentiment_label"])
    again = [collector.make_post(random.Random(42), 1)]
    assert again[0] == posts[0]
    assert collector.score_text("I love this, it is great and fast")[1] == "positive"
    assert collector.score_text("terrible slow broken crash")[1] == "negative"
    assert collector.score_text("the table has rows")[1] == "neutral"


def test_collector_functions(tmp_path):
    db = str(tmp_path / "x.db")
    conn = collector.open_db(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        collector.ensure_schema(conn)
        collector.ensure_schema(conn)
        rng = random.Random(1)
        assert collector.insert_posts(conn, [collector.make_post(rng, n) for n in range(1, 51)]) == 50
        assert collector.insert_posts(conn, []) == 0
        with pytest.raises(sqlite3.IntegrityError):
            collector.insert_posts(conn, [collector.make_post(rng, 1)])  # duplicate reddit_id
        assert collector.count_posts(conn) == 50 and not conn.in_transaction
        paths = collector.write_csv_outputs(conn, str(tmp_path / "out"))
    finally:
        conn.close()
    assert sorted(os.path.basename(p) for p in paths.values()) == ["posts_latest.csv", "sentiment_summary.csv"]
    rows = open(paths["sentiment_summary"]).read().splitlines()
    assert sum(int(r.split(",")[1]) for r in rows[1:]) == 50


def test_collector_batches_and_outputs(fresh_app):
    root, summary = fresh_app
    out = root / "output"
    (out / "posts_latest.csv").unlink()
    res = subprocess.run([PY, "apps/collector/collector.py", "--db", "data/reddit_sentiment.db",
                          "--batch", "4", "--count", "3", "--seed", "9", "--output-dir", "output"],
                         cwd=str(root), capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""  # quiet by default
    assert _query(_db(root), "SELECT COUNT(*), MAX(id) FROM posts")[0] == (2012, 2012)
    assert (out / "posts_latest.csv").read_text().splitlines()[1].startswith("2012,")


def test_collector_live_writer_progress_and_sigterm(fresh_app, procs):
    root, summary = fresh_app
    db = _db(root)
    progress = str(root / "progress")
    w = procs([PY, os.path.join(SKELETON, "apps", "collector", "collector.py"), "--db", db,
               "--batch", "3", "--interval-ms", "5", "--forever", "--seed", "4",
               "--progress-file", progress], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start = _wait_for(lambda: _read_progress(progress), what="first progress")
    assert start == summary["max_id"]
    mid = _wait_for(lambda: (_read_progress(progress) or 0) >= start + 30 and _read_progress(progress),
                    what="progress to advance")
    # a concurrent reader sees committed rows while the writer runs
    assert _query(db, "SELECT COUNT(*) FROM posts")[0][0] >= mid
    assert w.stop() == 0
    assert w.p.stdout.read() == b"" and w.p.stderr.read() == b""
    final = _read_progress(progress)
    count, max_id = _query(db, "SELECT COUNT(*), MAX(id) FROM posts")[0]
    assert final == max_id == count
    assert (final - start) % 3 == 0  # only whole batches were committed
    assert _query(db, "PRAGMA integrity_check") == [("ok",)]
    assert not [f for f in os.listdir(str(root)) if f.startswith(".progress")]


def test_collector_sigterm_during_long_interval(fresh_app, procs):
    root, _ = fresh_app
    progress = str(root / "progress")
    w = procs([PY, os.path.join(SKELETON, "apps", "collector", "collector.py"), "--db", _db(root),
               "--interval-ms", "60000", "--count", "5", "--progress-file", progress])
    first = _wait_for(lambda: _read_progress(progress), what="first progress")
    _wait_for(lambda: (_read_progress(progress) or 0) > first, what="first batch")
    t0 = time.monotonic()
    assert w.stop() == 0
    assert time.monotonic() - t0 < 3


def test_collector_reports_bad_database(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 500)
    res = subprocess.run([PY, os.path.join(SKELETON, "apps", "collector", "collector.py"), "--db", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "database error" in res.stderr


# --------------------------------------------------------------------------- health server
def test_health_server_endpoints(fresh_app, procs):
    root, summary = fresh_app
    db = _db(root)
    progress = str(root / "progress")
    writer = procs([PY, os.path.join(SKELETON, "apps", "collector", "collector.py"), "--db", db,
                    "--interval-ms", "5", "--forever", "--progress-file", progress])
    _wait_for(lambda: _read_progress(progress), what="writer to start")
    server, base = _start_health(procs, db)
    status, body = _get(base + "/health")
    assert status == 200 and json.loads(body)["status"] == "healthy"
    status, body = _get(base + "/health/database")
    info = json.loads(body)
    assert status == 200, body
    assert info["status"] == "healthy" and info["integrity"] == "ok" and info["posts"] >= summary["rows"]
    status, body = _get(base + "/metrics")
    assert status == 200 and "reddit_pipeline_database_healthy 1" in body
    assert _get(base + "/nope")[0] == 404
    res = subprocess.run([str(root / "scripts/health_check.sh"), base + "/health/database"],
                         capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHON=PY))
    assert res.returncode == 0 and json.loads(res.stdout)["status"] == "healthy"
    assert writer.stop() == 0
    assert server.stop() == 0
    res = subprocess.run([str(root / "scripts/health_check.sh"), base + "/health"],
                         capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHON=PY))
    assert res.returncode == 2 and "unreachable" in res.stderr


def test_health_server_corrupt_and_missing_database(fresh_app, procs):
    root, _ = fresh_app
    db = _db(root)
    server, base = _start_health(procs, db)
    assert _get(base + "/health/database")[0] == 200
    # damage one page in the middle: header intact, quick_check must fail
    page = _query(db, "PRAGMA page_size")[0][0]
    with open(db, "r+b") as fh:
        fh.seek(page * 20)
        fh.write(b"\xa5" * page)
    status, body = _get(base + "/health/database")
    assert status == 503 and json.loads(body)["status"] == "unhealthy", body
    # overwrite the whole file: not a database any more
    size = os.path.getsize(db)
    with open(db, "r+b") as fh:
        fh.write(os.urandom(size))
    status, body = _get(base + "/health/database")
    info = json.loads(body)
    assert status == 503 and info["status"] == "unhealthy" and info["error"], body
    res = subprocess.run([str(root / "scripts/health_check.sh"), base + "/health/database"],
                         capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHON=PY))
    assert res.returncode == 1
    assert _get(base + "/health")[0] == 200  # the process itself is still fine
    assert _get(base + "/metrics")[1].count("reddit_pipeline_database_healthy 0") == 1
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    status, body = _get(base + "/health/database")
    assert status == 503 and "not found" in json.loads(body)["error"]
    assert not os.path.exists(db)  # the check never creates a database
    assert server.stop() == 0


def test_health_server_refuses_wildcard_and_binds_loopback(procs):
    script = os.path.join(SKELETON, "apps", "collector", "health_server.py")
    for host in ("0.0.0.0", "::"):
        res = subprocess.run([PY, script, "--host", host, "--port", "0", "--db", "x.db"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 2 and "wildcard" in res.stderr
    assert _health_parser().parse_args([]).host == "127.0.0.1"


def _health_parser():
    spec = importlib.util.spec_from_file_location(
        "sample_app_health", os.path.join(SKELETON, "apps", "collector", "health_server.py"))
    module = importlib.util.module_from_spec(spec)
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    env = {k: os.environ.pop(k) for k in ("HEALTH_HOST", "HEALTH_PORT") if k in os.environ}
    try:
        return module.build_parser()
    finally:
        os.environ.update(env)


# --------------------------------------------------------------------------- configuration
def test_logging_conf_loads_and_writes_logs(fresh_app):
    root, _ = fresh_app
    code = ("import logging, logging.config\n"
            "logging.config.fileConfig('config/logging.conf')\n"
            "log = logging.getLogger('pipeline.collector')\n"
            "log.info('hello-from-test')\n"
            "log.error('boom-from-test')\n")
    res = subprocess.run([PY, "-c", code], cwd=str(root), capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "hello-from-test" in (root / "logs/pipeline.log").read_text()
    errors = (root / "logs/errors.log").read_text()
    assert "boom-from-test" in errors and "hello-from-test" not in errors


def test_run_pipeline_script(fresh_app):
    root, summary = fresh_app
    res = subprocess.run([str(root / "scripts/run_pipeline.sh"), "--seed", "1"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHON=PY))
    assert res.returncode == 0, res.stderr
    assert _query(_db(root), "SELECT COUNT(*) FROM posts")[0][0] == summary["rows"] + 50
    assert "collector finished: 1 batches" in (root / "logs/pipeline.log").read_text()


def test_production_env_is_key_value(app):
    path = str(app / "config/production.env")
    env = seed.parse_env_file(path)
    assert env["BACKUP_SCHEDULE"] == "0 2 * * *"
    assert env["BACKUP_COMPRESSION"] == "gzip"
    assert env["BACKUP_ENCRYPTION"] == "true"
    assert env["BACKUP_REMOTE_SYNC"] == "false"
    assert env["BACKUP_NOTIFICATION"] == "true"
    assert env["BACKUP_RETENTION_DAYS"] == "30"
    assert env["DATABASE_PATH"] == "data/reddit_sentiment.db"
    assert env["HEALTH_PORT"] == "8001" and env["HEALTH_HOST"] == "127.0.0.1"
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            assert "=" in line and " #" not in line, line
    # the shell reads it the same way
    res = subprocess.run(["sh", "-c", "set -a; . ./config/production.env; set +a; exec env -0"],
                         cwd=str(app), capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    shell = dict(item.split("=", 1) for item in res.stdout.split("\0") if "=" in item)
    for key, value in env.items():
        assert shell[key] == value, key
    # configparser (the guide's check) needs a section header in front of it
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string("[env]\n" + open(path).read())
    assert cp["env"]["backup_retention_days"] == "30"


def test_yaml_files_parse(app):
    yaml = pytest.importorskip("yaml")
    prom = yaml.safe_load((app / "monitoring/prometheus_config.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:8001"]
    assert prom["rule_files"] == ["alerting_rules.yml"]
    rules = yaml.safe_load((app / "monitoring/alerting_rules.yml").read_text())
    names = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert "BackupMissing" in names and all(r.get("expr") for g in rules["groups"] for r in g["rules"])
    mon = yaml.safe_load((app / "config/monitoring.yml").read_text())
    assert mon["health"]["url"].startswith("http://127.0.0.1:8001/")


def test_sources_are_python39_compatible():
    for path in (SEED_PY, os.path.join(SKELETON, "apps", "collector", "collector.py"),
                 os.path.join(SKELETON, "apps", "collector", "health_server.py"),
                 os.path.join(SKELETON, "apps", "collector", "__init__.py")):
        with open(path) as fh:
            ast.parse(fh.read(), filename=path, feature_version=(3, 9))
