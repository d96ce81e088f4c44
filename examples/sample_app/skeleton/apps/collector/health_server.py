#!/usr/bin/env python3
"""Reddit Sentiment Analysis Pipeline -- health endpoint (sample stand-in).

Command line::

    health_server.py --db PATH [--host 127.0.0.1] [--port 8001] [--verbose]

Endpoints (GET):

* ``/health``           200 ``{"status": "healthy", ...}`` while the process serves.
* ``/health/database``  runs ``SELECT COUNT(*) FROM posts`` and ``PRAGMA quick_check``:
  200 ``{"status": "healthy", "posts": N, "integrity": "ok", ...}``, or 503
  ``{"status": "unhealthy", "error": "..."}`` when the database is missing,
  corrupt or not a database.
* ``/metrics``          Prometheus text format (up, database healthy, posts, size).

Listens on 127.0.0.1 by default and refuses wildcard addresses (0.0.0.0, ::).
``--port 0`` picks a free port.  The first stdout line is always
``listening on HOST:PORT`` (flushed).  SIGTERM/SIGINT stop it cleanly (exit 0).
Defaults come from $DATABASE_PATH, $HEALTH_HOST and $HEALTH_PORT when set.
"""

import argparse
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit

__version__ = "1.0.0"
SERVICE = "reddit-sentiment-pipeline"
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]", "*")


def _connect_existing(path):
    """Open an existing database read-write without ever creating it."""
    uri = "file:%s?mode=rw" % quote(os.path.abspath(path))
    conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA query_only=1")
    return conn


def check_database(path, integrity=True):
    """Check the database: returns (http_status, body_dict)."""
    body = {"database": path, "checked_at": int(time.time())}
    if not path:
        body.update(status="unhealthy", error="no database path configured (--db or DATABASE_PATH)")
        return 503, body
    if not os.path.isfile(path):
        body.update(status="unhealthy", error="database file not found: %s" % path)
        return 503, body
    started = time.monotonic()
    try:
        conn = _connect_existing(path)
        try:
            posts = conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0]
            latest = conn.execute("SELECT MAX(created_utc) FROM posts").fetchone()[0]
            problems = []
            if integrity:
                problems = [r[0] for r in conn.execute("PRAGMA quick_check(20)")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        body.update(status="unhealthy", error="%s: %s" % (type(exc).__name__, exc))
        return 503, body
    body.update(posts=posts, latest_created_utc=latest, size_bytes=os.path.getsize(path),
                check_ms=int((time.monotonic() - started) * 1000))
    if integrity:
        if problems == ["ok"]:
            body["integrity"] = "ok"
        else:
            body.update(status="unhealthy", integrity="failed", error="quick_check failed",
                        problems=problems)
            return 503, body
    body["status"] = "healthy"
    return 200, body


def render_metrics(path, started_at):
    status, info = check_database(path, integrity=False)
    lines = [
        "# HELP reddit_pipeline_up The health endpoint is serving.",
        "# TYPE reddit_pipeline_up gauge",
        "reddit_pipeline_up 1",
        "# HELP reddit_pipeline_database_healthy The database answers queries.",
        "# TYPE reddit_pipeline_database_healthy gauge",
        "reddit_pipeline_database_healthy %d" % (1 if status == 200 else 0),
        "# HELP reddit_pipeline_uptime_seconds Seconds since the endpoint started.",
        "# TYPE reddit_pipeline_uptime_seconds gauge",
        "reddit_pipeline_uptime_seconds %.3f" % (time.time() - started_at),
    ]
    if status == 200:
        lines += [
            "# HELP reddit_pipeline_posts_total Posts stored in the database.",
            "# TYPE reddit_pipeline_posts_total gauge",
            "reddit_pipeline_posts_total %d" % info["posts"],
            "# HELP reddit_pipeline_database_size_bytes Size of the main database file.",
            "# TYPE reddit_pipeline_database_size_bytes gauge",
            "reddit_pipeline_database_size_bytes %d" % info["size_bytes"],
            "# HELP reddit_pipeline_last_post_timestamp_seconds created_utc of the newest post.",
            "# TYPE reddit_pipeline_last_post_timestamp_seconds gauge",
            "reddit_pipeline_last_post_timestamp_seconds %d" % (info["latest_created_utc"] or 0),
        ]
    return "\n".join(lines) + "\n"


class HealthHandler(BaseHTTPRequestHandler):
    server_version = "reddit-sentiment-health/" + __version__
    protocol_version = "HTTP/1.1"

    def _send(self, status, payload, content_type="application/json"):
        if isinstance(payload, dict):
            data = (json.dumps(payload, sort_keys=True) + "\n").encode("utf-8")
        else:
            data = payload.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server naming
        path = urlsplit(self.path).path.rstrip("/") or "/"
        srv = self.server
        if path == "/health":
            self._send(200, {
                "status": "healthy",
                "service": SERVICE,
                "version": __version__,
                "pid": os.getpid(),
                "uptime_seconds": round(time.time() - srv.started_at, 3),
                "database": srv.db_path,
            })
        elif path == "/health/database":
            status, body = check_database(srv.db_path)
            self._send(status, body)
        elif path == "/metrics":
            self._send(200, render_metrics(srv.db_path, srv.started_at),
                       "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/":
            self._send(200, {"service": SERVICE, "endpoints": ["/health", "/health/database", "/metrics"]})
        else:
            self._send(404, {"status": "error", "error": "not found: %s" % path})

    do_HEAD = do_GET

    def log_message(self, format, *args):  # noqa: A002 - http.server signature
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, db_path, verbose=False):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.db_path = db_path
        self.verbose = verbose
        self.started_at = time.time()
        ThreadingHTTPServer.__init__(self, address, HealthHandler)


def build_parser():
    p = argparse.ArgumentParser(prog="health_server.py", description="Pipeline health endpoint.")
    p.add_argument("--db", default=os.environ.get("DATABASE_PATH"),
                   help="database path (default: $DATABASE_PATH)")
    p.add_argument("--host", default=os.environ.get("HEALTH_HOST") or "127.0.0.1",
                   help="address to bind (default 127.0.0.1; wildcard addresses are refused)")
    p.add_argument("--port", type=int, default=int(os.environ.get("HEALTH_PORT") or 8001),
                   help="port (default 8001; 0 picks a free one)")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    host = args.host.strip()
    if host in WILDCARD_HOSTS:
        print("health_server.py: error: refusing to listen on wildcard address %r; "
              "give a specific address such as 127.0.0.1" % args.host, file=sys.stderr)
        return 2
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not 0 <= args.port <= 65535:
        print("health_server.py: error: --port must be 0..65535", file=sys.stderr)
        return 2
    try:
        db_path = os.path.abspath(args.db) if args.db else args.db
        server = HealthServer((host, args.port), db_path, verbose=args.verbose)
    except OSError as exc:
        print("health_server.py: error: cannot listen on %s:%d: %s" % (host, args.port, exc),
              file=sys.stderr)
        return 1

    def stop(signum, frame):  # noqa: ARG001
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    sys.stdout.write("listening on %s:%d\n" % (bound_host, bound_port))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
