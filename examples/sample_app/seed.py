#!/usr/bin/env python3
"""Seed a sample Reddit Sentiment Analysis Pipeline application directory.

Command line::

    seed.py --app-root DIR [--db-size-mb N | --rows N] [--seed S]
            [--user U] [--python PY] [--force]

Lays the skeleton (``skeleton/`` beside this file) into DIR, renders the
systemd units (@APP_ROOT@, @APP_USER@, @PYTHON@), fills
``data/reddit_sentiment.db`` with posts (default about 2 MiB), writes the CSV
outputs, a few current and rotated log files, a dummy ``venv/`` and compiled
``apps/collector/__pycache__`` files, then prints a one-line JSON summary.

Re-running converges: existing files are left alone, missing ones are
created, and the database only grows (to at least --rows / --db-size-mb).
``--force`` resets the directory to a freshly seeded state: skeleton files
are overwritten and the database is recreated.  Without it, a non-empty DIR
that does not look like a sample app is refused.

Importable: ``seed_app``, ``load_collector``, ``looks_like_sample_app``,
``parse_env_file``, ``render_template``, ``SeedError``, ``SKELETON_DIR``.
Stdlib only; Python 3.9+.
"""

import argparse
import gzip
import importlib.util
import json
import os
import py_compile
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SKELETON_DIR = os.path.join(HERE, "skeleton")
DB_RELPATH = os.path.join("data", "reddit_sentiment.db")
DEFAULT_DB_SIZE_MB = 2.0
MIB = 1024 * 1024

# Files that identify an existing sample app (any one is enough).
_MARKERS = (
    os.path.join("apps", "collector", "collector.py"),
    os.path.join("config", "production.env"),
    DB_RELPATH,
    os.path.join("systemd", "reddit-sentiment-pipeline.service"),
)
# Characters that cannot appear unquoted in a systemd unit line or that systemd expands.
_UNSAFE_UNIT_CHARS = re.compile(r"[\s%\"'\\$;`]")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_BLOCK = 4096            # posts per deterministic RNG block
_MAX_CHUNK = 50000       # posts per seeding transaction
_SKIP_NAMES = ("__pycache__",)


class SeedError(Exception):
    """A seeding problem with a message a person can act on."""


_COLLECTOR = None


def load_collector():
    """Import the skeleton's collector.py (without writing bytecode into the skeleton)."""
    global _COLLECTOR
    if _COLLECTOR is None:
        path = os.path.join(SKELETON_DIR, "apps", "collector", "collector.py")
        spec = importlib.util.spec_from_file_location("sample_app_collector", path)
        module = importlib.util.module_from_spec(spec)
        saved = sys.dont_write_bytecode
        sys.dont_write_bytecode = True
        try:
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = saved
        _COLLECTOR = module
    return _COLLECTOR


def parse_env_file(path):
    """Parse a KEY=VALUE file (comments and blank lines ignored, one level of quotes stripped).

    Raises SeedError naming the line on anything else.
    """
    env = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not _ENV_KEY_RE.match(key):
                raise SeedError("%s:%d: not a KEY=VALUE line: %r" % (path, lineno, raw.rstrip("\n")))
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            env[key] = value
    return env


def render_template(text, values):
    """Replace @NAME@ placeholders; values maps NAME -> replacement."""
    for name, value in values.items():
        text = text.replace("@%s@" % name, value)
    return text


def looks_like_sample_app(app_root):
    return any(os.path.exists(os.path.join(app_root, m)) for m in _MARKERS)


def _current_user():
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        import getpass

        return getpass.getuser()


def _default_python():
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _check_unit_value(what, value):
    bad = _UNSAFE_UNIT_CHARS.search(value)
    if bad:
        raise SeedError("%s %r contains %r, which the systemd units cannot hold safely; "
                        "choose a value without spaces, quotes, %%, $, ; or backslashes"
                        % (what, value, bad.group(0)))


def _write_bytes(path, data, mode):
    """Atomic write: temp file beside path, then rename."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _lay_skeleton(app_root, values, force, written):
    for src_dir, dirs, files in os.walk(SKELETON_DIR):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_NAMES)
        rel_dir = os.path.relpath(src_dir, SKELETON_DIR)
        dst_dir = app_root if rel_dir == "." else os.path.join(app_root, rel_dir)
        if not os.path.isdir(dst_dir):
            os.makedirs(dst_dir)
            os.chmod(dst_dir, 0o755)
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            src = os.path.join(src_dir, name)
            dst = os.path.join(dst_dir, name)
            if os.path.lexists(dst) and not force:
                continue
            with open(src, "rb") as fh:
                data = fh.read()
            if rel_dir == "systemd":
                data = render_template(data.decode("utf-8"), values).encode("utf-8")
            mode = 0o755 if os.stat(src).st_mode & 0o111 else 0o644
            if os.path.isdir(dst) and not os.path.islink(dst):
                raise SeedError("%s is a directory where the skeleton has a file; remove it" % dst)
            _write_bytes(dst, data, mode)
            written.append(os.path.relpath(dst, app_root))


# --------------------------------------------------------------------------- database
def _db_bytes(conn):
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return conn.execute("PRAGMA page_count").fetchone()[0] * page_size


def _posts(collector, seed, start, count):
    """Posts start..start+count-1; post n depends only on (seed, n)."""
    make = collector._post_tuple  # the tuple fast path behind make_post
    n = start
    end = start + count
    while n < end:
        block = (n - 1) // _BLOCK
        rng = random.Random("sample-app:%d:%d" % (seed, block))
        first = block * _BLOCK + 1
        for m in range(first, n):  # skip to n inside the block (only when resuming mid-block)
            make(rng, m)
        stop = min(end, first + _BLOCK)
        for m in range(n, stop):
            yield make(rng, m)
        n = stop


def _grow(conn, collector, seed, target_rows, target_bytes):
    """Append posts until the table has target_rows rows and the file target_bytes bytes."""
    rows = collector.count_posts(conn)
    next_n = collector.max_post_id(conn) + 1
    added = 0
    while True:
        size = _db_bytes(conn)
        need = max(0, target_rows - rows)
        if size < target_bytes:
            per_row = float(size) / rows if rows >= 1000 else 600.0
            need = max(need, int((target_bytes - size) / per_row) + 1)
        if need <= 0:
            return added
        chunk = min(need, _MAX_CHUNK if rows >= 1000 else 1000)
        conn.execute("BEGIN")
        try:
            conn.executemany(collector.INSERT_SQL, _posts(collector, seed, next_n, chunk))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        rows += chunk
        next_n += chunk
        added += chunk


def _remove_db_files(db):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(db + suffix)
        except FileNotFoundError:
            pass


def _build_db(db, collector, seed, target_rows, target_bytes):
    """Build a fresh database beside db and rename it into place (fast: no journal, no fsync)."""
    tmp = db + ".seeding"
    _remove_db_files(tmp)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-131072")
        collector.ensure_schema(conn)
        added = _grow(conn, collector, seed, target_rows, target_bytes)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise SeedError("could not switch %s to WAL mode (got %s)" % (tmp, mode))
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(tmp + suffix):
            raise SeedError("%s%s left behind after closing the seeding connection" % (tmp, suffix))
    os.chmod(tmp, 0o644)
    os.replace(tmp, db)
    return added


def _grow_db(db, collector, seed, target_rows, target_bytes):
    """Grow an existing database in place (WAL, synchronous=OFF while seeding)."""
    try:
        conn = collector.open_db(db)
    except sqlite3.Error as exc:
        raise SeedError("cannot open existing database %s: %s; pass --force to recreate it" % (db, exc))
    try:
        try:
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-131072")
            collector.ensure_schema(conn)
            added = _grow(conn, collector, seed, target_rows, target_bytes)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise SeedError("existing database %s is not usable: %s; pass --force to recreate it"
                            % (db, exc))
    finally:
        conn.close()
    return added


# --------------------------------------------------------------------------- logs and clutter
def _log_lines(seed, start_epoch, count, level_every=37):
    rng = random.Random("sample-app-logs:%d:%d" % (seed, start_epoch))
    lines = []
    t = start_epoch
    last_id = 1000 + (start_epoch // 60) % 5000
    for i in range(count):
        t += 900 + rng.randint(0, 30)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        if i % level_every == level_every - 1:
            lines.append("%s - pipeline.collector - WARNING - request to reddit API took %.1f s (retrying)"
                         % (stamp, 5 + rng.random() * 20))
            continue
        batch = 50
        lines.append("%s - pipeline.collector - INFO - collector started: db=data/reddit_sentiment.db "
                     "last_id=%d batch=%d" % (stamp, last_id, batch))
        last_id += batch
        lines.append("%s - pipeline.collector - INFO - collector finished: 1 batches, last_id=%d"
                     % (stamp, last_id))
        lines.append("%s - pipeline.collector - INFO - wrote output/posts_latest.csv, "
                     "output/sentiment_summary.csv" % stamp)
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _log_files(seed):
    day = 86400
    base = 1716854400  # 2024-05-28T00:00:00Z
    files = {
        "pipeline.log": _log_lines(seed, base, 96),
        "pipeline.log.1": _log_lines(seed, base - day, 96),
        "pipeline.log.2.gz": gzip.compress(_log_lines(seed, base - 2 * day, 96), mtime=0),
        "pipeline.log.3.gz": gzip.compress(_log_lines(seed, base - 3 * day, 96), mtime=0),
        "errors.log": (
            "2024-05-27 03:15:02 - pipeline.collector - ERROR - reddit API returned HTTP 503; batch skipped\n"
            "2024-05-28 01:45:11 - pipeline.collector - ERROR - database is locked (retry 1/3)\n"
        ).encode("utf-8"),
    }
    return files


def _write_clutter(app_root, seed, force, written):
    logs = os.path.join(app_root, "logs")
    for name, data in sorted(_log_files(seed).items()):
        path = os.path.join(logs, name)
        if force or not os.path.exists(path):
            _write_bytes(path, data, 0o644)
            written.append(os.path.relpath(path, app_root))
    venv = os.path.join(app_root, "venv")
    dummy = {
        "pyvenv.cfg": b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n",
        os.path.join("lib", "python3.11", "site-packages", "SAMPLE_PLACEHOLDER.txt"):
            b"Placeholder: a real deployment has its virtualenv here (excluded from backups).\n",
    }
    for rel, data in sorted(dummy.items()):
        path = os.path.join(venv, rel)
        if force or not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_bytes(path, data, 0o644)
            written.append(os.path.relpath(path, app_root))
    collector_dir = os.path.join(app_root, "apps", "collector")
    for name in ("collector.py", "health_server.py"):
        src = os.path.join(collector_dir, name)
        if not os.path.isfile(src):
            continue
        cfile = importlib.util.cache_from_source(src)
        if force or not os.path.exists(cfile):
            py_compile.compile(src, cfile=cfile, doraise=True)
            os.chmod(cfile, 0o644)
            written.append(os.path.relpath(cfile, app_root))


# --------------------------------------------------------------------------- entry points
def seed_app(app_root, db_size_mb=None, rows=None, seed=0, user=None, python=None, force=False):
    """Seed (or converge) a sample app in app_root; returns the summary dict.

    db_size_mb / rows: the database grows to at least this size / row count
    (default DEFAULT_DB_SIZE_MB when neither is given); it never shrinks.
    """
    started = time.monotonic()
    collector = load_collector()
    app_root = os.path.abspath(os.path.expanduser(str(app_root)))
    user = user or _current_user()
    python = python or _default_python()
    if not _USER_RE.match(user):
        raise SeedError("user %r is not a valid user name" % user)
    if not os.path.isabs(python):
        found = shutil.which(python)
        if not found:
            raise SeedError("python interpreter %r not found on PATH; give an absolute path" % python)
        python = found
    _check_unit_value("app root", app_root)
    _check_unit_value("python", python)
    if rows is not None and int(rows) < 0:
        raise SeedError("rows must be >= 0, got %r" % rows)
    if db_size_mb is not None and float(db_size_mb) < 0:
        raise SeedError("db_size_mb must be >= 0, got %r" % db_size_mb)
    if rows is None and db_size_mb is None:
        db_size_mb = DEFAULT_DB_SIZE_MB
    target_rows = int(rows or 0)
    target_bytes = int(float(db_size_mb or 0) * MIB)

    if os.path.lexists(app_root) and not os.path.isdir(app_root):
        raise SeedError("%s exists and is not a directory" % app_root)
    if os.path.isdir(app_root) and os.listdir(app_root) and not looks_like_sample_app(app_root) and not force:
        raise SeedError("%s is not empty and does not look like a sample app (none of %s); "
                        "choose an empty or new directory, or pass --force to seed into it anyway"
                        % (app_root, ", ".join(_MARKERS)))
    os.makedirs(app_root, exist_ok=True)

    written = []
    values = {"APP_ROOT": app_root, "APP_USER": user, "PYTHON": python}
    _lay_skeleton(app_root, values, force, written)

    db = os.path.join(app_root, DB_RELPATH)
    os.makedirs(os.path.dirname(db), exist_ok=True)
    if force:
        _remove_db_files(db)
    if os.path.exists(db):
        added = _grow_db(db, collector, seed, target_rows, target_bytes)
    else:
        added = _build_db(db, collector, seed, target_rows, target_bytes)
    if added:
        written.append(DB_RELPATH)

    out_dir = os.path.join(app_root, "output")
    csvs = [os.path.join(out_dir, n) for n in ("sentiment_summary.csv", "posts_latest.csv")]
    conn = collector.open_db(db)
    try:
        if added or force or not all(os.path.exists(p) for p in csvs):
            collector.write_csv_outputs(conn, out_dir)
            written.extend(os.path.relpath(p, app_root) for p in csvs)
        total_rows = collector.count_posts(conn)
        max_id = collector.max_post_id(conn)
    finally:
        conn.close()

    _write_clutter(app_root, seed, force, written)
    return {
        "app_root": app_root,
        "db": db,
        "rows": total_rows,
        "max_id": max_id,
        "db_bytes": os.path.getsize(db),
        "seed": seed,
        "user": user,
        "python": python,
        "changed": bool(written),
        "written": len(written),
        "seconds": round(time.monotonic() - started, 3),
    }


def build_parser():
    p = argparse.ArgumentParser(prog="seed.py", description="Seed a sample Reddit Sentiment Pipeline app.")
    p.add_argument("--app-root", required=True, help="application directory to create or converge")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--db-size-mb", type=float, default=None,
                      help="grow the database to at least this many MiB (default %g)" % DEFAULT_DB_SIZE_MB)
    size.add_argument("--rows", type=int, default=None, help="grow the database to at least this many posts")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--user", default=None, help="user for the systemd units (default: the current user)")
    p.add_argument("--python", default=None,
                   help="interpreter for the systemd units (default /usr/bin/python3 if present)")
    p.add_argument("--force", action="store_true",
                   help="seed into a non-empty foreign directory; reset skeleton files and recreate the database")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        summary = seed_app(args.app_root, db_size_mb=args.db_size_mb, rows=args.rows, seed=args.seed,
                           user=args.user, python=args.python, force=args.force)
    except SeedError as exc:
        print("seed.py: error: %s" % exc, file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print("seed.py: error: %s" % exc, file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
