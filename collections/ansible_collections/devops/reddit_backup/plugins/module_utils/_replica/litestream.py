# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Litestream binary the litestream role installs, run to read a replica: what a restore would fetch (its
plan: the newest transaction file and its time, the recovery point) and the restore itself into a new file."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

RESTORE_TIMEOUT = 3600
NOTHING = "no matching backup files available"  # Litestream's words for an empty window
# A row of the plan's "Files to fetch" table: level, file, min_txid, max_txid, size, timestamp.
PLAN_ROW = re.compile(r"^\s*\d+\s+\S+\.ltx\s+([0-9a-f]{16})\s+([0-9a-f]{16})\s+\d+\s+(\S+)\s*$", re.M)


class Litestream:
    """``binary`` run with the service's ``config`` (root's file, read as root) and its credentials (``{name:
    path}``, e.g. the SFTP key), offered as ${CREDENTIALS_DIRECTORY} as systemd offers them to the service.
    ``local_replica``: the folder of a file replica, which the app user owns: checked for planted links each run."""

    def __init__(self, binary: str, config: str, credentials: dict = None, local_replica: str = None) -> None:
        for what, path in (("litestream_binary", binary), ("replica_config", config)):
            if not os.path.isfile(path):
                raise BackupError("%s %s does not exist or is not a file; apply the devops.reddit_backup.litestream "
                                  "role on this host first" % (what, path))
        self.binary = binary
        self.config = config
        self.credentials = dict(credentials or {})
        self.local_replica = local_replica

    def plan(self, database: str, out: str, moment: datetime = None) -> dict:
        """{txid, recovery_point}: the newest transaction a restore to ``moment`` (None: the latest) reaches
        (nothing is written to ``out``)."""
        try:
            output = self._run(["restore", "-dry-run", "-o", out] + _moment(moment) + [database], database)
        except BackupError as error:
            if NOTHING not in str(error):
                raise
            output = ""
        rows = PLAN_ROW.findall(output)
        if not rows:
            raise BackupError("the replica of %s holds nothing%s; check the litestream service's log "
                              "(journalctl -u reddit-backup-*-litestream)"
                              % (database, " at or before %s" % _stamp(moment) if moment else ""))
        newest = max(rows, key=lambda row: row[1])
        return {"txid": newest[1], "recovery_point": newest[2]}

    def restore(self, database: str, out: str, moment: datetime = None) -> dict:
        """Restore ``database``'s replica into the new file ``out``; Litestream's JSON summary."""
        output = self._run(["restore", "-json", "-o", out] + _moment(moment) + [database], database)
        try:
            return json.loads(output[output.index("{"):])
        except ValueError:
            raise BackupError("litestream restore of %s printed no summary: %s" % (database, output[-500:])) from None

    def local_txid(self, database: str) -> int:
        """The newest transaction Litestream has taken from ``database`` (its local position), 0 when none."""
        output = self._run(["status", "-json", database], database)
        return _txid(_json(output, database, "status")[0].get("local_txid"))

    def replica_files(self, database: str) -> list:
        """[(max txid, time)] of every file the replica holds for ``database``, at every level."""
        return [(_txid(entry.get("max_txid")), entry.get("timestamp")) for entry in self.listing(database)]

    def listing(self, database: str) -> list:
        """Litestream's own listing of every file the replica holds for ``database``, at every level: [{level,
        min_txid, max_txid, size, timestamp}]."""
        output = self._run(["ltx", "-level", "all", "-json", database], database)
        return [entry for entry in _json(output, database, "ltx") if entry]

    def _run(self, arguments: list, database: str) -> str:
        check_plain_folder(self.local_replica)
        try:
            return self._run_binary(arguments, database)
        finally:
            check_plain_folder(self.local_replica)  # a link planted while Litestream read: what it read is not trusted

    def _run_binary(self, arguments: list, database: str) -> str:
        folder = tempfile.mkdtemp(prefix="reddit-backup-credentials-")  # 0700, root's: only the links to the files
        try:
            for name, path in self.credentials.items():
                os.symlink(os.path.abspath(path), os.path.join(folder, name))
            # Only the SFTP key's path is a variable (${CREDENTIALS_DIRECTORY}); an S3 secret may hold a $.
            expand = [] if self.credentials else ["-no-expand-env"]
            completed = subprocess.run([self.binary, arguments[0]] + expand + ["-config", self.config] + arguments[1:],
                                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                       timeout=RESTORE_TIMEOUT, check=False,
                                       env={"CREDENTIALS_DIRECTORY": folder, "PATH": "/usr/bin:/bin"})
        except subprocess.TimeoutExpired:
            raise BackupError("litestream %s of %s took more than %d s; check the replica's server"
                              % (arguments[0], database, RESTORE_TIMEOUT)) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if completed.returncode != 0:
            lines = [line for line in (completed.stderr + completed.stdout).splitlines() if line.strip()]
            raise BackupError("litestream %s of %s failed (exit %d): %s" % (
                arguments[0], database, completed.returncode, " / ".join(lines[-3:]) or "no message"))
        return completed.stdout


def check_plain_folder(folder: str = None) -> None:
    """Refuse a file replica holding anything but folders and regular files: root's Litestream would follow a link
    the app user (who owns the folder) planted there to files only root may read, another app's replica among them."""
    if not folder or not os.path.lexists(folder):
        return
    found = [folder] + [os.path.join(where, name) for where, folders, files in os.walk(folder, followlinks=False)
                        for name in folders + files]
    for path in found:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:  # Litestream's retention removed it meanwhile
            continue
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise BackupError("the replica folder %s holds %s, which is %s, not a regular file: someone who can "
                              "write the replica folder planted it, and Litestream (run as root) would follow it. "
                              "Nothing was restored from it; remove it, check who wrote it, and restore from an "
                              "archive meanwhile" % (folder, path, "a symlink" if stat.S_ISLNK(mode)
                                                     else "a special file"))


def _moment(moment: datetime = None) -> list:
    return ["-timestamp", _stamp(moment)] if moment else []


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(output: str, database: str, command: str) -> list:
    try:
        found = json.loads(output[output.index("["):])
    except ValueError:
        raise BackupError("litestream %s of %s printed no JSON list: %s" % (command, database, output[-300:])) from None
    if not isinstance(found, list) or not all(isinstance(entry, dict) for entry in found):
        raise BackupError("litestream %s of %s printed an unexpected answer: %s" % (command, database, output[-300:]))
    return found or [{}]


def _txid(text) -> int:
    try:
        return int(str(text or "0"), 16)
    except ValueError:
        return 0
