# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How far the Litestream replica is behind its databases, as node_exporter textfile metrics beside the backup
metrics (a file of its own, ``reddit_backup_<app>_replica.prom``, so the backup metrics' writer leaves it alone).

Per database: the last successful sync (the time of the newest transaction the replica holds), and the lag: 0
while the replica holds the newest transaction Litestream has taken from the database and nothing was committed
since (the WAL, which only commits write, is not newer than that sync by more than SLACK_SECONDS), else the
seconds since that last sync: the replica has been falling behind at least that long, whether Litestream cannot
reach it or is not running at all."""

from __future__ import annotations

import os
import time
from datetime import datetime

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._monitoring.metrics import PREFIX, check_labels, escape_label, format_value
from ansible_collections.devops.reddit_backup.plugins.module_utils._publish import write_public
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica import settings as _settings
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.litestream import Litestream

SLACK_SECONDS = 5.0  # a commit reaches the replica within the sync interval (1 s by default)
FAMILIES = {
    "replica_last_sync_timestamp_seconds": "Time of the newest transaction the Litestream replica holds (0: none).",
    "replica_lag_seconds": "0 while the replica holds the newest transaction taken from the database, else the "
                           "seconds since its last sync.",
    "replica_txid": "Newest transaction (TXID) the replica holds.",
    "replica_local_txid": "Newest transaction (TXID) Litestream has taken from the database.",
    "replica_status_timestamp_seconds": "When the replica's status was last measured.",
}


def textfile_name(app: str) -> str:
    """The textfile of ``app``'s replica metrics, beside its backup metrics (reddit_backup_<app>.prom)."""
    return "reddit_backup_%s_replica.prom" % app


def replica_status(settings_path: str, now: float = None) -> dict:
    """{database: {last_sync, lag_seconds, txid, local_txid}} for every database the replica settings name."""
    now = time.time() if now is None else now
    settings = _settings.load(settings_path)
    litestream = Litestream(settings["binary"], settings["config"], settings.get("credentials", {}),
                            settings.get("replica_path"))
    status = {}
    for path in settings["databases"]:
        live = "%s/%s" % (settings["app_root"].rstrip("/"), path)
        local = litestream.local_txid(live)
        files = [(txid, _epoch(stamp)) for txid, stamp in litestream.replica_files(live) if stamp]
        txid, last_sync = max(files) if files else (0, 0.0)
        caught_up = files and txid >= local and last_commit(live) <= last_sync + SLACK_SECONDS
        lag = 0.0 if caught_up else round(now - last_sync, 3) if files else None
        status[path] = {"last_sync": last_sync, "lag_seconds": lag, "txid": txid, "local_txid": local}
    return status


def samples(status: dict, labels: dict, now: float) -> list:
    """The metric samples of ``status`` (what _metrics.render writes)."""
    found = []
    for path, entry in sorted(status.items()):
        tagged = dict(labels, database=path)
        found += [("replica_last_sync_timestamp_seconds", tagged, entry["last_sync"]),
                  ("replica_txid", tagged, entry["txid"]), ("replica_local_txid", tagged, entry["local_txid"])]
        if entry["lag_seconds"] is not None:  # no replica yet: no lag to tell, the last sync (0) says so
            found.append(("replica_lag_seconds", tagged, entry["lag_seconds"]))
    found.append(("replica_status_timestamp_seconds", dict(labels), round(now, 3)))
    return found


def record(settings_path: str, textfile: str, labels=None, now: float = None) -> dict:
    """Measure the replica and replace ``textfile`` (see textfile_name) atomically."""
    now = time.time() if now is None else now
    checked = check_labels(labels or {})
    status = replica_status(settings_path, now)
    write_public(textfile, render_replica(samples(status, checked, now)).encode())
    return status


def render_replica(found: list) -> str:
    """The Prometheus text exposition format, as the backup metrics are written (HELP and TYPE, gauges)."""
    lines = []
    for family, help_text in FAMILIES.items():
        rows = sorted((sorted(labels.items()), value) for name, labels, value in found if name == family)
        if not rows:
            continue
        lines += ["# HELP %s%s %s" % (PREFIX, family, help_text), "# TYPE %s%s gauge" % (PREFIX, family)]
        for label_items, value in rows:
            text = ",".join('%s="%s"' % (key, escape_label(val)) for key, val in label_items)
            lines.append("%s%s%s %s" % (PREFIX, family, "{%s}" % text if text else "", format_value(value)))
    return "\n".join(lines) + "\n"


def last_commit(database: str) -> float:
    """When the database's WAL was last written (0 without a WAL, or with an empty one): only commits (and
    Litestream's own, replicated transactions) write it, where a checkpoint rewrites the database file long after
    the commit. A reader that opens the database after the last connection closed creates an empty WAL: no commit."""
    try:
        info = os.stat(database + "-wal")
    except OSError:
        return 0.0
    return info.st_mtime if info.st_size > 0 else 0.0


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def main(argv=None) -> int:
    """``--settings replica.json --textfile DIR/reddit_backup_<app>_replica.prom --app APP``: the litestream role's
    timer measures the replica once a minute with this."""
    import argparse  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(prog="replica-status", description=main.__doc__)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--textfile", required=True)
    parser.add_argument("--app", required=True)
    arguments = parser.parse_args(argv)
    try:
        status = record(arguments.settings, arguments.textfile, labels={"app": arguments.app})
    except BackupError as error:
        sys.stderr.write("replica status of %s: %s\n" % (arguments.app, error))
        return 1
    for path, entry in sorted(status.items()):
        sys.stdout.write("%s: lag %s s, last sync %s\n" % (path, entry["lag_seconds"], entry["last_sync"]))
    return 0
