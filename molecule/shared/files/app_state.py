#!/usr/bin/python3
"""What the molecule scenarios compare: the posts of the sample app's database, as one line of JSON.

    app_state.py DB [--upto ID]            the live database (read-only; the app may keep writing)
    app_state.py --archive ARCHIVE [--upto ID]   the database snapshot inside a backup archive
    app_state.py DB --mark NAME             first insert the marker row "molecule-NAME" (as the app writes)

Prints {"posts": N, "max_id": M, "digest": sha256 of every row (all columns, in id order), "markers": [...],
"sha256": sha256 of the database file's bytes} for the rows with id <= ID when --upto is given. "markers" lists the reddit_id of the marker rows the scenarios
insert (reddit_id starting with "molecule-"), so a test can tell which moment a database comes from.
Standard library only: it runs with the container's /usr/bin/python3.
"""

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

DB_MEMBER = "data/reddit_sentiment.db"


def state(db, upto=None):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        where, args = ("WHERE id <= ?", (upto,)) if upto is not None else ("", ())
        digest = hashlib.sha256()
        posts = 0
        max_id = 0
        for row in conn.execute("SELECT * FROM posts %s ORDER BY id" % where, args):
            digest.update(json.dumps(row, separators=(",", ":")).encode("utf-8"))
            digest.update(b"\n")
            posts += 1
            max_id = row[0]
        markers = [r[0] for r in conn.execute(
            "SELECT reddit_id FROM posts WHERE reddit_id LIKE 'molecule-%' ORDER BY id")]
        with open(db, "rb") as handle:
            file_sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        return {"posts": posts, "max_id": max_id, "digest": digest.hexdigest(), "markers": markers,
                "sha256": file_sha256}
    finally:
        conn.close()


def mark(db, name):
    """Insert one post whose reddit_id is molecule-NAME: a moment in the data a later check can look for."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        with conn:
            conn.execute(
                "INSERT INTO posts (reddit_id, subreddit, title, body, score, created_utc, sentiment_score,"
                " sentiment_label) VALUES (?, 'molecule', ?, '', 0, strftime('%s', 'now'), 0.0, 'neutral')",
                ("molecule-" + name, "marker " + name))
    finally:
        conn.close()


def from_archive(archive, upto=None):
    with tempfile.TemporaryDirectory(prefix="app-state-") as scratch:
        # GNU tar recognises gzip and zstd by their magic on extraction.
        subprocess.run(["tar", "-xf", archive, "-C", scratch, DB_MEMBER], check=True)
        return state(os.path.join(scratch, DB_MEMBER), upto)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", nargs="?")
    parser.add_argument("--archive")
    parser.add_argument("--upto", type=int)
    parser.add_argument("--mark")
    args = parser.parse_args()
    if bool(args.db) == bool(args.archive):
        parser.error("give a database or --archive, not both")
    if args.mark:
        if not args.db:
            parser.error("--mark needs the live database")
        mark(args.db, args.mark)
    result = from_archive(args.archive, args.upto) if args.archive else state(args.db, args.upto)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
