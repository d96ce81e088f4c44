# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compressor pipeline: tar bytes in, compressed bytes hashed and written out, every error surfaced."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading

from ._errors import BackupError
from ._fs import as_backup_error

CHUNK = 1 << 20
# zstd's memory grows with its threads and job size: at most 4 threads of 4 MiB jobs keeps the whole backup
# (python + zstd) under 100 MB on any server, for an archive a few KB larger than -T0's.
ZSTD_THREADS = max(1, min(os.cpu_count() or 1, 4))
SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}


def _compress_command(compression: str) -> list:
    if compression == "zstd":
        return [_require("zstd", "set compression: gzip"), "-q", "-3", "-T%d" % ZSTD_THREADS, "-B4M", "-c"]
    if compression == "gzip":
        # pigz writes the same gzip format on every core; plain gzip where it is missing.
        tool = shutil.which("pigz") or _require("gzip", "set compression: none")
        return [tool, "-6", "-n", "-c"]
    raise BackupError("compression must be one of %s, not %r" % (", ".join(SUFFIXES), compression))


def _require(tool: str, alternative: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BackupError("%s is not installed on this host; install the %s package or %s" % (tool, tool, alternative))
    return path


def suffix_for(compression: str) -> str:
    if compression not in SUFFIXES:
        raise BackupError("compression must be one of %s, not %r" % (", ".join(SUFFIXES), compression))
    return SUFFIXES[compression]


class CompressedWriter:
    """A writable stream: what is written is compressed, hashed and written to ``out`` (an open binary file).

    The compressor runs as its own process (zstd uses every core); a pump thread copies its output to ``out``
    so the archive's sha256 and size are known without reading the file again, and a full disk surfaces here
    as an OSError rather than inside the compressor.
    """

    def __init__(self, out, out_path: str, compression: str) -> None:
        self.out = out
        self.out_path = out_path
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._pump_error = None
        self._process = None
        self._stderr = None
        self._pump = None
        self._aborted = False
        if compression != "none":
            self._stderr = tempfile.TemporaryFile()
            self._process = subprocess.Popen(_compress_command(compression), stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=self._stderr)
            self._pump = threading.Thread(target=self._run_pump, daemon=True)
            self._pump.start()

    def _emit(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self.out.write(data)

    def _run_pump(self) -> None:
        stdout = self._process.stdout
        try:
            while True:
                data = stdout.read(CHUNK)
                if not data:
                    break
                self._emit(data)
        except OSError as error:
            self._pump_error = error
            self._process.kill()
            # Drain so the compressor is not left blocked on a full pipe.
            while stdout.read(CHUNK):
                pass

    def write(self, data) -> int:
        if self._aborted:
            return len(data)  # a failure was raised already; late flushes (tarfile's cleanup) go nowhere
        if self._process is None:
            try:
                self._emit(bytes(data))
            except OSError as error:
                raise as_backup_error(error, self.out_path) from error
            return len(data)
        try:
            self._process.stdin.write(data)
        except (BrokenPipeError, OSError):
            self._fail()
        return len(data)

    def close(self) -> None:
        """Flush everything; raise BackupError if the compressor or the disk failed at any point."""
        if self._process is None:
            self.out.flush()
            return
        try:
            self._process.stdin.close()
        except (BrokenPipeError, OSError):
            self._fail()
        self._pump.join()
        returncode = self._process.wait()
        if self._pump_error is not None or returncode != 0:
            self._fail()
        self._stderr.close()
        try:
            self.out.flush()
        except OSError as error:
            raise as_backup_error(error, self.out_path) from error

    def abort(self) -> None:
        """Stop the compressor after a failure elsewhere; never raises."""
        self._aborted = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)

    def _fail(self) -> None:
        self.abort()
        if self._pump_error is not None:
            raise as_backup_error(self._pump_error, self.out_path) from self._pump_error
        self._stderr.seek(0)
        message = self._stderr.read().decode(errors="replace").strip()
        raise BackupError("the compressor failed while writing %s (exit %s): %s"
                          % (self.out_path, self._process.returncode, message or "no message"))


def decompress_command(path: str) -> list:
    """The command that writes the tar stream of archive ``path`` to stdout, or None for a plain tar."""
    if path.endswith(SUFFIXES["zstd"]):
        return [_require("zstd", "copy the archive to a host that has zstd"), "-q", "-d", "-c", path]
    if path.endswith(SUFFIXES["gzip"]):
        return [_require("gzip", "copy the archive to a host that has gzip"), "-d", "-c", path]
    if path.endswith(SUFFIXES["none"]):
        return None
    raise BackupError("%s is not a backup archive (expected .tar.zst, .tar.gz or .tar)" % path)
