#!/usr/bin/env python3
"""Reddit Sentiment Analysis Pipeline -- collector (sample stand-in).

A small, stdlib-only stand-in for the real collector: it "collects" posts
(generated locally from word lists, no network), scores them with a toy
lexicon and stores them in the SQLite database the backup collection protects.

Command line::

    collector.py --db PATH [--batch N] [--interval-ms MS] [--count N | --forever]
                 [--seed S] [--progress-file F] [--output-dir DIR] [--log-config FILE]

* One transaction per batch (``--batch`` posts, default 10); ``--count`` batches
  (default 1) or ``--forever``; ``--interval-ms`` sleeps between commits.
* ``--progress-file F``: after every commit the last committed post ``id`` is
  written to F atomically (temp file + rename); the starting ``id`` is written
  before the first batch.
* SIGTERM / SIGINT: the current transaction is finished, then exit 0.
* ``--output-dir DIR``: write the CSV outputs when done.
* Quiet by default; ``--log-config`` loads a ``logging.config.fileConfig`` file.

Importable: ``open_db``, ``ensure_schema``, ``make_post``, ``insert_posts``,
``write_csv_outputs`` (and ``score_text``, ``label_for``, ``max_post_id``,
``count_posts``, ``reddit_id_for``, ``COLUMNS``).
"""

import argparse
import csv
import logging
import os
import random
import re
import signal
import sqlite3
import sys
import tempfile
import time

__version__ = "1.0.0"

LOG = logging.getLogger("pipeline.collector")

SUBREDDITS = (
    "python", "datascience", "MachineLearning", "learnpython", "dataengineering",
    "statistics", "programming", "devops", "sysadmin", "linux", "sqlite",
    "artificial", "LanguageTechnology", "analytics",
)

COLUMNS = (
    "reddit_id", "subreddit", "title", "body", "score", "created_utc",
    "sentiment_score", "sentiment_label",
)

SCHEMA_SQL = (
    """CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY,
    reddit_id TEXT UNIQUE NOT NULL,
    subreddit TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    score INTEGER NOT NULL,
    created_utc INTEGER NOT NULL,
    sentiment_score REAL NOT NULL,
    sentiment_label TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS idx_posts_subreddit_created ON posts (subreddit, created_utc)",
)

INSERT_SQL = "INSERT INTO posts (%s) VALUES (%s)" % (", ".join(COLUMNS), ", ".join("?" * len(COLUMNS)))

# 2024-01-01T00:00:00Z; post n is created about 45 s after post n-1.
BASE_EPOCH = 1704067200
SECONDS_PER_POST = 45
# reddit ids are 7 base36 digits; the offset keeps them fixed-width (so they sort like n).
REDDIT_ID_OFFSET = 36 ** 6 * 10

# --------------------------------------------------------------------------- lexicon
POSITIVE_WORDS = frozenset("""
love loved great awesome amazing excellent helpful useful fast faster clean elegant
happy glad impressed recommend solid reliable brilliant fantastic nice easy easier
improved improvement works win wins wonderful thanks thank enjoy enjoyed perfect
stable smooth intuitive powerful best better good
""".split())

NEGATIVE_WORDS = frozenset("""
hate hated terrible awful bad worse worst slow slower broken bug bugs buggy crash
crashes crashed confusing painful frustrating frustrated annoying useless fail
failed fails failure error errors leak leaks wrong ugly flaky unstable disappointed
regression outage corrupt corrupted
""".split())

_TOKEN_RE = re.compile(r"[a-z']+")


def _counts(text):
    """Return (positive, negative) lexicon hits in text."""
    pos = neg = 0
    for tok in _TOKEN_RE.findall(text.lower()):
        if tok in POSITIVE_WORDS:
            pos += 1
        elif tok in NEGATIVE_WORDS:
            neg += 1
    return pos, neg


def _score_from_counts(pos, neg):
    return round((pos - neg) / float(pos + neg + 2), 4)


def label_for(score):
    """Sentiment label for a score in [-1, 1]."""
    if score >= 0.05:
        return "positive"
    if score <= -0.05:
        return "negative"
    return "neutral"


def score_text(text):
    """Toy lexicon sentiment: returns (score in [-1, 1], label)."""
    score = _score_from_counts(*_counts(text))
    return score, label_for(score)


# --------------------------------------------------------------------------- text generator
_TOOLS = (
    "pandas", "numpy", "scikit-learn", "PyTorch", "TensorFlow", "SQLite", "PostgreSQL",
    "Airflow", "Spark", "Docker", "Kubernetes", "Ansible", "FastAPI", "Flask", "Django",
    "Jupyter", "polars", "DuckDB", "Kafka", "Terraform", "systemd", "cron", "asyncio",
    "the requests library", "VS Code", "vim", "GitHub Actions", "Prometheus", "Grafana",
)
_TOPICS = (
    "data pipeline", "sentiment model", "ETL job", "feature store", "training loop",
    "backup script", "dashboard", "REST API", "batch job", "web scraper", "test suite",
    "deployment", "database migration", "notebook", "CI pipeline", "logging setup",
    "monitoring stack", "recommendation engine", "time series forecast", "text classifier",
)
_POS_ADJ = ("great", "fast", "clean", "reliable", "elegant", "helpful", "smooth", "solid",
            "intuitive", "powerful", "excellent", "easy")
_NEG_ADJ = ("slow", "broken", "confusing", "flaky", "painful", "buggy", "frustrating",
            "unstable", "annoying", "terrible", "useless", "awful")
_NEU_ADJ = ("different", "large", "small", "new", "old", "remote", "local", "default",
            "custom", "internal", "similar", "typical")
_NUMBERS = ("two", "three", "five", "ten", "twenty", "a hundred", "a few", "several")
_UNITS = ("hours", "days", "weeks", "minutes", "runs", "commits", "releases", "sprints")

_SENTENCE_TEMPLATES = (
    "I have been using {tool} for my {topic} and it feels {adj}.",
    "Our {topic} runs on {tool} now and the results look {adj} so far.",
    "Has anyone else noticed that {tool} gets {adj} when the {topic} grows?",
    "After {num} {unit} of work the {topic} is finally {adj}.",
    "Honestly {tool} is {adj} for this kind of {topic}.",
    "We moved the {topic} from {tool} to {tool2} last month.",
    "The documentation for {tool} is {adj} and the examples are {adj2}.",
    "My {topic} keeps failing with an error after {num} {unit}.",
    "Thanks to everyone who helped, the {topic} works now.",
    "I would recommend {tool} if your {topic} is {adj}.",
    "Is it worth learning {tool} in 2024 for a {adj} {topic}?",
    "The {adj} part is that {tool} handles the {topic} out of the box.",
    "Our team spent {num} {unit} debugging a {adj} {topic}.",
    "You can read the logs, check the config and restart the {topic}.",
    "Benchmarks show {tool} is {adj} compared to {tool2} on a {topic}.",
    "I love how {tool} makes the {topic} feel {adj}.",
    "I hate that the {topic} crashes whenever {tool} updates.",
    "Edit: the {topic} is stable again after the {tool} upgrade.",
    "Not sure if this is a bug in {tool} or in my {topic}.",
    "The {topic} processes about {num} thousand rows every {unit}.",
)
_TITLE_TEMPLATES = (
    "{tool} vs {tool2} for a {topic}?",
    "How do you structure a {adj} {topic}?",
    "My {topic} with {tool} is {adj}",
    "[Help] {topic} keeps failing after {tool} upgrade",
    "Finally shipped our {topic} on {tool}",
    "What is your favourite way to test a {topic}?",
    "PSA: {tool} is {adj} for a {topic}",
    "Lessons from {num} {unit} running a {topic} in production",
    "Is {tool} still worth it for a {topic}?",
    "Show and tell: a {adj} {topic} built with {tool}",
)

_POOL_SEED = 20240528
_SENTENCE_POOL_SIZE = 4096
_TITLE_POOL_SIZE = 1024
_POOLS = None


def _fill(rng, template):
    tone = rng.random()
    adjs = _POS_ADJ if tone < 0.4 else (_NEG_ADJ if tone < 0.7 else _NEU_ADJ)
    tool = rng.choice(_TOOLS)
    tool2 = rng.choice(_TOOLS)
    if tool2 == tool:
        tool2 = _TOOLS[(_TOOLS.index(tool) + 1) % len(_TOOLS)]
    return template.format(
        tool=tool, tool2=tool2, topic=rng.choice(_TOPICS), adj=rng.choice(adjs),
        adj2=rng.choice(adjs), num=rng.choice(_NUMBERS), unit=rng.choice(_UNITS),
    )


def _pools():
    """Sentence and title pools (fixed, independent of the caller's seed).

    Each entry is (text, positive_hits, negative_hits) so that a post's score is a
    sum, not a re-tokenisation: make_post stays cheap enough to seed 400 MB.
    """
    global _POOLS
    if _POOLS is None:
        rng = random.Random(_POOL_SEED)
        sentences = []
        for _ in range(_SENTENCE_POOL_SIZE):
            text = _fill(rng, rng.choice(_SENTENCE_TEMPLATES))
            sentences.append((text,) + _counts(text))
        titles = []
        for _ in range(_TITLE_POOL_SIZE):
            text = _fill(rng, rng.choice(_TITLE_TEMPLATES))
            titles.append((text,) + _counts(text))
        _POOLS = (tuple(sentences), tuple(titles))
    return _POOLS


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TAILS = None          # the 36**3 three-digit base36 strings, built on first use
_HEADS = {}


def _base36(v):
    out = []
    while v:
        v, r = divmod(v, 36)
        out.append(_B36[r])
    return "".join(reversed(out)) or "0"


def reddit_id_for(n):
    """Deterministic 7-character base36 reddit id for post number n (n >= 1)."""
    global _TAILS
    if _TAILS is None:
        _TAILS = tuple(a + b + c for a in _B36 for b in _B36 for c in _B36)
    head, tail = divmod(REDDIT_ID_OFFSET + int(n), 46656)
    prefix = _HEADS.get(head)
    if prefix is None:
        prefix = _HEADS[head] = _base36(head)
    return prefix + _TAILS[tail]


_SCORES = {}


def _scored(pos, neg):
    """(score, label) for lexicon counts, memoised: the counts are small integers."""
    key = (pos, neg)
    hit = _SCORES.get(key)
    if hit is None:
        score = _score_from_counts(pos, neg)
        hit = _SCORES[key] = (score, label_for(score))
    return hit


def _post_tuple(rng, n):
    """Post number n as a tuple in COLUMNS order (the fast path used by seeding)."""
    sentences, titles = _POOLS or _pools()
    rnd = rng.random
    title, pos, neg = titles[int(rnd() * _TITLE_POOL_SIZE)]
    parts = []
    for _ in range(1 + int(rnd() * 8)):
        text, p, q = sentences[int(rnd() * _SENTENCE_POOL_SIZE)]
        parts.append(text)
        pos += p
        neg += q
    score, label = _SCORES.get((pos, neg)) or _scored(pos, neg)
    votes = int(rng.paretovariate(1.3) * 4.0) - 5
    return (
        reddit_id_for(n),
        SUBREDDITS[int(rnd() * len(SUBREDDITS))],
        title,
        " ".join(parts),
        votes if votes < 25000 else 25000,
        BASE_EPOCH + int(n) * SECONDS_PER_POST + int(rnd() * SECONDS_PER_POST),
        score,
        label,
    )


def make_post(rng, n):
    """Post number n (n >= 1) generated with rng: a dict keyed by COLUMNS.

    The result depends only on n and the state of rng, so a seeded
    random.Random gives reproducible posts.  sentiment_score/label equal
    score_text(title + " " + body).
    """
    return dict(zip(COLUMNS, _post_tuple(rng, n)))


# --------------------------------------------------------------------------- database
def open_db(path, timeout=5.0):
    """Open (creating if needed) the database: WAL, synchronous=NORMAL, busy_timeout 5000.

    The connection is in autocommit mode (isolation_level=None): callers use
    explicit BEGIN/COMMIT, or insert_posts which opens its own transaction.
    """
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=NORMAL")
    except Exception:
        conn.close()
        raise
    return conn


def ensure_schema(conn):
    """Create the posts table and its (subreddit, created_utc) index if absent."""
    for stmt in SCHEMA_SQL:
        conn.execute(stmt)


def _as_row(post):
    if isinstance(post, dict):
        return tuple(post[c] for c in COLUMNS)
    return tuple(post)


def insert_posts(conn, posts):
    """Insert posts (dicts from make_post, or tuples in COLUMNS order).

    Runs in the caller's transaction if one is open, else in its own
    (BEGIN IMMEDIATE ... COMMIT).  Returns the number of rows inserted.
    """
    rows = [_as_row(p) for p in posts]
    if not rows:
        return 0
    if conn.in_transaction:
        conn.executemany(INSERT_SQL, rows)
        return len(rows)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(INSERT_SQL, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(rows)


def max_post_id(conn):
    """Highest post id (0 for an empty table)."""
    return conn.execute("SELECT COALESCE(MAX(id), 0) FROM posts").fetchone()[0]


def count_posts(conn):
    return conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0]


def _atomic_write_text(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _Lines(object):
    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)

    def text(self):
        return "".join(self.parts)


def write_csv_outputs(conn, out_dir):
    """Write sentiment_summary.csv and posts_latest.csv into out_dir (atomically).

    Returns {"sentiment_summary": path, "posts_latest": path}.
    """
    os.makedirs(out_dir, exist_ok=True)
    summary = _Lines()
    w = csv.writer(summary, lineterminator="\n")
    w.writerow(["subreddit", "posts", "positive", "negative", "neutral",
                "avg_sentiment", "avg_score", "latest_created_utc"])
    for row in conn.execute(
        "SELECT subreddit, COUNT(*),"
        " SUM(sentiment_label = 'positive'), SUM(sentiment_label = 'negative'),"
        " SUM(sentiment_label = 'neutral'),"
        " ROUND(AVG(sentiment_score), 4), ROUND(AVG(score), 2), MAX(created_utc)"
        " FROM posts GROUP BY subreddit ORDER BY subreddit"
    ):
        w.writerow(row)
    latest = _Lines()
    w = csv.writer(latest, lineterminator="\n")
    w.writerow(["id", "reddit_id", "subreddit", "created_utc", "score",
                "sentiment_score", "sentiment_label", "title"])
    for row in conn.execute(
        "SELECT id, reddit_id, subreddit, created_utc, score, sentiment_score,"
        " sentiment_label, title FROM posts ORDER BY id DESC LIMIT 100"
    ):
        w.writerow(row)
    paths = {
        "sentiment_summary": os.path.join(out_dir, "sentiment_summary.csv"),
        "posts_latest": os.path.join(out_dir, "posts_latest.csv"),
    }
    _atomic_write_text(paths["sentiment_summary"], summary.text())
    _atomic_write_text(paths["posts_latest"], latest.text())
    return paths


# --------------------------------------------------------------------------- command line
class _Stop(object):
    requested = False


def _install_signal_handlers(stop):
    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        stop.requested = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _sleep(seconds, stop):
    deadline = time.monotonic() + seconds
    while not stop.requested:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1, got %s" % text)
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0, got %s" % text)
    return value


def build_parser():
    p = argparse.ArgumentParser(
        prog="collector.py",
        description="Collect (generate) posts into the pipeline's SQLite database.",
    )
    p.add_argument("--db", default=os.environ.get("DATABASE_PATH"),
                   help="database path (default: $DATABASE_PATH)")
    p.add_argument("--batch", type=_positive_int, default=10, help="posts per transaction (default 10)")
    p.add_argument("--interval-ms", type=_non_negative_int, default=0,
                   help="sleep between commits, in milliseconds (default 0)")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--count", type=_positive_int, default=1, help="number of batches (default 1)")
    runs.add_argument("--forever", action="store_true", help="run until SIGTERM/SIGINT")
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible posts)")
    p.add_argument("--progress-file", default=None,
                   help="write the last committed post id here (atomically) after every commit")
    p.add_argument("--output-dir", default=None, help="write the CSV outputs here when done")
    p.add_argument("--log-config", default=None, help="logging.config.fileConfig file")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.db:
        print("collector.py: error: --db is required (or set DATABASE_PATH)", file=sys.stderr)
        return 2
    if args.log_config:
        import logging.config

        logging.config.fileConfig(args.log_config, disable_existing_loggers=False)
    stop = _Stop()
    _install_signal_handlers(stop)
    rng = random.Random(args.seed) if args.seed is not None else random.Random()
    progress = args.progress_file
    try:
        conn = open_db(args.db)
        try:
            ensure_schema(conn)
            last = max_post_id(conn)
            if progress:
                _atomic_write_text(progress, "%d\n" % last)
            LOG.info("collector started: db=%s last_id=%d batch=%d", args.db, last, args.batch)
            batches = 0
            while not stop.requested and (args.forever or batches < args.count):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    start = max_post_id(conn) + 1
                    insert_posts(conn, [_post_tuple(rng, start + i) for i in range(args.batch)])
                    last = max_post_id(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                batches += 1
                if progress:
                    _atomic_write_text(progress, "%d\n" % last)
                LOG.debug("committed batch %d: last_id=%d", batches, last)
                if args.interval_ms and (args.forever or batches < args.count):
                    _sleep(args.interval_ms / 1000.0, stop)
            LOG.info("collector finished: %d batches, last_id=%d%s", batches, last,
                     " (stopped by signal)" if stop.requested else "")
            if args.output_dir:
                paths = write_csv_outputs(conn, args.output_dir)
                LOG.info("wrote %s", ", ".join(sorted(paths.values())))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        LOG.error("database error on %s: %s", args.db, exc)
        print("collector.py: database error on %s: %s" % (args.db, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
