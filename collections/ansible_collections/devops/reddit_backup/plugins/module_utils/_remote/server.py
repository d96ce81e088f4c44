# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup server's own job (the backup_server role's timer): for each app host that pushes there, retention
over its folder and the freshness of its newest backups and replica, as node_exporter textfile metrics.

Two halves, so nothing a client wrote is ever handled with root's rights:

* ``check_client`` runs as the client's own Unix user (``client`` on the command line): the collection's retention
  (``_retention.prune``, reading only the unencrypted sidecars: no decryption key on the server) and the newest
  backup of each type, as one line of JSON;
* ``run`` runs as root (``run``): starts ``check_client`` for each client under its user (setpriv), reads back
  numbers only, and writes the metrics file (label ``host``) atomically.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._publish import write_public
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import retention as _retention

PREFIX = "reddit_backup_server_"
FAMILIES = {
    "newest_backup_timestamp_seconds": "Creation time of the client's newest complete backup of this type on the "
                                       "backup server (0: none).",
    "replica_newest_file_timestamp_seconds": "Modification time of the newest file in the client's replica folder "
                                             "(0: none).",
    "check_success": "1 when the backup server's last retention and freshness check of this client succeeded.",
    "check_timestamp_seconds": "When the backup server last checked this client.",
    "pruned_bytes": "Bytes the backup server's last retention run removed from this client's folder.",
}
REPLICA_FILE_LIMIT = 100000  # a replica holds generations of WAL segments; more files than this is not Litestream's
OUTPUT_LIMIT = 1 << 20
CHILD_TIMEOUT = 3600
MODULE = "ansible_collections.devops.reddit_backup.plugins.module_utils._remote.server"


def check_client(folder: str, replica: str = None, policy=None, now=None) -> dict:
    """Retention over ``folder`` and the freshness of what is left; run as the folder's owner. Leftover pieces are
    kept: they may be a push under way (rsync lands an archive after its sidecars)."""
    result = _retention.prune(folder, policy, now, keep_incomplete=True)
    newest = {backup_type: 0.0 for backup_type in _catalog.TYPES}
    for backup in _catalog.healthy(_catalog.list_backups(folder)):
        if backup["type"] in newest and backup["created"]:
            moment = _catalog.parse_time(backup["created"]).timestamp()
            newest[backup["type"]] = max(newest[backup["type"]], moment)
    report = {"newest": newest, "pruned_bytes": result["freed_bytes"], "deleted": len(result["deleted"])}
    if replica and os.path.isdir(replica):
        report["replica_newest"] = newest_file(replica)
    return report


def newest_file(folder: str) -> float:
    """The newest modification time of a regular file under ``folder`` (links never followed; 0: none)."""
    newest, seen = 0.0, 0
    for walked, _dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            seen += 1
            if seen > REPLICA_FILE_LIMIT:
                raise BackupError("the replica folder %s holds more than %d files; look at what is in it"
                                  % (folder, REPLICA_FILE_LIMIT))
            info = os.lstat(os.path.join(walked, name))
            if stat.S_ISREG(info.st_mode):
                newest = max(newest, info.st_mtime)
    return newest


def load_config(path: str) -> dict:
    """The role's client list: {"clients": [{"name", "user", "folder", "replica", "policy"}], "textfile"}."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise BackupError("the backup server's client list %s cannot be read (%s): run the backup_server role "
                          "again" % (path, error)) from None
    if not isinstance(config, dict) or not isinstance(config.get("clients"), list):
        raise BackupError("%s has no list of clients: run the backup_server role again" % path)
    return config


def run(config_path: str, python: str = sys.executable) -> int:
    """Check every client under its own user and write the metrics file; 1 when any check failed."""
    config = load_config(config_path)
    samples, failed = [], []
    now = time.time()
    for client in config["clients"]:
        report, error = _check_as(client, python)
        samples += client_samples(client["name"], report, now)
        if error:
            failed.append("%s: %s" % (client["name"], error))
    if config.get("textfile"):
        write_public(config["textfile"], render(samples).encode("utf-8"))
    for line in failed:
        sys.stderr.write(line + "\n")
    return 1 if failed else 0


def _check_as(client: dict, python: str) -> tuple:
    """(the report of check_client run as the client's user, or None; the error, or None)."""
    launcher = "import sys; sys.path.insert(0, %r); from %s import main; sys.exit(main(sys.argv[1:]))" % (
        _collections_root(), MODULE)
    command = ["setpriv", "--reuid=%s" % client["user"], "--regid=%s" % client["user"], "--init-groups",
               "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", python, "-I", "-c", launcher,
               "client", client["folder"], client.get("replica") or "-", json.dumps(client.get("policy"))]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, cwd="/",
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, timeout=CHILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None, "no answer in %d s" % CHILD_TIMEOUT
    if done.returncode != 0:
        return None, done.stderr.decode(errors="replace").strip()[-2000:] or "exit %d" % done.returncode
    try:
        return _numbers_only(json.loads(done.stdout[:OUTPUT_LIMIT])), None
    except (ValueError, TypeError, AttributeError, KeyError):
        return None, "its check printed something that is not its report"


def _numbers_only(report: dict) -> dict:
    """What root takes from a client's report: numbers under the names it knows, nothing else."""
    newest = {key: float(report["newest"].get(key) or 0) for key in _catalog.TYPES}
    kept = {"newest": newest, "pruned_bytes": float(report.get("pruned_bytes") or 0)}
    if report.get("replica_newest") is not None:
        kept["replica_newest"] = float(report["replica_newest"])
    return kept


def _collections_root() -> str:
    """The folder that holds ansible_collections/ (this file is <root>/ansible_collections/devops/...)."""
    here = os.path.abspath(__file__)
    return here[: here.rindex(os.sep + "ansible_collections" + os.sep)]


def client_samples(host: str, report, now: float) -> list:
    """The samples of one client; a failed check vouches for no backup (0: the 25-hour alert fires for it too)."""
    labels = (("host", host),)
    samples = [("check_success", labels, 0 if report is None else 1), ("check_timestamp_seconds", labels, now)]
    if report is None:
        return samples + [("newest_backup_timestamp_seconds", labels + (("type", backup_type),), 0)
                          for backup_type in _catalog.TYPES]
    samples += [("newest_backup_timestamp_seconds", labels + (("type", backup_type),), moment)
                for backup_type, moment in sorted(report["newest"].items())]
    samples.append(("pruned_bytes", labels, report["pruned_bytes"]))
    if "replica_newest" in report:
        samples.append(("replica_newest_file_timestamp_seconds", labels, report["replica_newest"]))
    return samples


def render(samples: list) -> str:
    """The Prometheus text exposition format, HELP and TYPE before each family."""
    lines = []
    for family, help_text in FAMILIES.items():
        rows = sorted((label_items, value) for name, label_items, value in samples if name == family)
        if not rows:
            continue
        lines += ["# HELP %s%s %s" % (PREFIX, family, help_text), "# TYPE %s%s gauge" % (PREFIX, family)]
        for label_items, value in rows:
            text = ",".join('%s="%s"' % (key, val.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
                            for key, val in label_items)
            lines.append("%s%s{%s} %s" % (PREFIX, family, text, repr(float(value))))
    return "\n".join(lines) + "\n"


def _client_main(folder: str, replica: str, policy: str) -> int:
    report = check_client(folder, None if replica == "-" else replica, json.loads(policy))
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


def main(argv: list) -> int:
    """``run CONFIG`` (root, the timer's service) or ``client FOLDER REPLICA|- POLICY_JSON`` (as the client's user)."""
    try:
        if len(argv) == 2 and argv[0] == "run":
            return run(argv[1])
        if len(argv) == 4 and argv[0] == "client":
            return _client_main(argv[1], argv[2], argv[3])
        sys.stderr.write("usage: server.py run CONFIG | client FOLDER REPLICA|- POLICY_JSON\n")
        return 2
    except BackupError as error:
        sys.stderr.write("%s\n" % error)
        return 1
    except ValueError as error:  # a policy that is not JSON: the role writes it, so the role's list is broken
        sys.stderr.write("the retention policy given is not JSON (%s): run the backup_server role again\n" % error)
        return 1
