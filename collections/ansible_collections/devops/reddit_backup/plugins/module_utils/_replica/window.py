# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery window of the Litestream replica, beside the archives in a listing: per database, the oldest and
the newest moment a restore from the replica can reach, read from Litestream's own listing (``litestream ltx
-level all``). A replica that cannot be read is reported as unreachable, with Litestream's words, never raised:
the archives are listed all the same."""

from __future__ import annotations

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica import settings as _settings
from ansible_collections.devops.reddit_backup.plugins.module_utils._replica.litestream import Litestream

FIRST_TXID = "0000000000000001"  # a file starting at the first transaction holds the whole database: a base


def recovery_window(settings_path: str) -> dict:
    """{settings, reachable, error, databases: {path: {oldest, newest, txid, files}}} for the replica the
    litestream role's settings file names; ``oldest``/``newest`` are None for a database the replica holds nothing
    of yet."""
    window = {"settings": settings_path, "reachable": True, "error": None, "databases": {}}
    try:
        settings = _settings.load(settings_path)
        litestream = Litestream(settings["binary"], settings["config"], settings.get("credentials", {}),
                                settings.get("replica_path"))
        for path in settings["databases"]:
            live = "%s/%s" % (settings["app_root"].rstrip("/"), path)
            window["databases"][path] = database_window(litestream.listing(live))
    except BackupError as error:
        window.update(reachable=False, error="the replica is unreachable: %s" % error)
    return window


def database_window(files: list) -> dict:
    """The window of one database's replica files (Litestream's ltx entries): it opens at the oldest base (a file
    from the first transaction: a restore starts from one) and closes at the newest file."""
    timed = [entry for entry in files if entry.get("timestamp") and entry.get("max_txid")]
    bases = [entry["timestamp"] for entry in timed if entry.get("min_txid") == FIRST_TXID]
    newest = max(timed, key=lambda entry: (entry["max_txid"], entry["timestamp"]), default=None)
    return {"oldest": min(bases) if bases else None, "newest": newest["timestamp"] if newest else None,
            "txid": newest["max_txid"] if newest else None, "files": len(timed)}
