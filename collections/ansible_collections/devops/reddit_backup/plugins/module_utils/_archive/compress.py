# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compressor pipeline: tar bytes in, compressed (and, with recipients, age-encrypted) bytes hashed and written
out, every error surfaced."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.crypto import (
    AGE_SUFFIX, decrypt_command, encrypt_command, is_encrypted, key_needed_error, plain_name,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import as_backup_error

CHUNK = 1 << 20
PIPE_BYTES = 1 << 20  # the default pipe-max-size an unprivileged user may ask for
# zstd's memory grows with its threads and job size: at most 4 threads of 4 MiB jobs keeps the whole backup
# (python + zstd) under 100 MB on any server, for an archive a few KB larger than -T0's.
ZSTD_THREADS = max(1, min(os.cpu_count() or 1, 4))
SUFFIXES = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}
# Every archive suffix, encrypted ones (.tar.zst.age) included, longest first.
ARCHIVE_SUFFIXES = tuple(sorted(list(SUFFIXES.values()) + [s + AGE_SUFFIX for s in SUFFIXES.values()], key=len,
                                reverse=True))


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


def suffix_for(compression: str, encrypted: bool = False) -> str:
    if compression not in SUFFIXES:
        raise BackupError("compression must be one of %s, not %r" % (", ".join(SUFFIXES), compression))
    return SUFFIXES[compression] + (AGE_SUFFIX if encrypted else "")


def start_stages(commands: list, stages: list) -> None:
    """Start each ``(what, command)`` of a pipeline, each reading the previous one's stdout (the first reads a pipe
    of its own), appending ``(what, process, stderr file)`` to ``stages`` as it goes: when a later stage cannot start,
    the caller still holds the ones that did, to stop them."""
    for what, command in commands:
        stdin = stages[-1][1].stdout if stages else subprocess.PIPE
        stderr = tempfile.TemporaryFile()
        process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
        if stages:
            stages[-1][1].stdout.close()  # the next stage owns the pipe now
        else:
            _widen_pipe(process.stdin)
        _widen_pipe(process.stdout)
        stages.append((what, process, stderr))


def _widen_pipe(pipe) -> None:
    """A 1 MiB pipe instead of Linux's 64 KiB: a sixteenth of the wake-ups and copies in the kernel per MiB (about
    half the system time of reading a decompressor). Where the kernel says no (the user's pipe quota is used up),
    the pipe keeps its size: only slower."""
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass


class CompressedWriter:
    """A writable stream: what is written is compressed, encrypted when ``encryption_recipients`` are given,
    hashed and written to ``out`` (an open binary file).

    The compressor and age run as processes of their own, piped into each other (zstd uses every core); a pump
    thread copies the last one's output to ``out``, so the archive's sha256 and size are known without reading
    the file again, no plaintext reaches the disk when encrypting, and a full disk surfaces here as an OSError
    rather than inside a tool.
    """

    def __init__(self, out, out_path: str, compression: str, encryption_recipients=None) -> None:
        self.out = out
        self.out_path = out_path
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._pump_error = None
        self._stages = []  # (what, process, stderr file), first to last
        self._process = None  # the first stage: what write() feeds
        self._pump = None
        self._aborted = False
        commands = []
        if compression != "none":
            commands.append(("the compressor", _compress_command(compression)))
        elif compression not in SUFFIXES:
            raise BackupError("compression must be one of %s, not %r" % (", ".join(SUFFIXES), compression))
        if encryption_recipients:
            commands.append(("age (encryption)", encrypt_command(encryption_recipients)))
        try:
            start_stages(commands, self._stages)
        except OSError as error:
            self.abort()
            raise BackupError("cannot start %s: %s" % (commands[len(self._stages)][1][0], error)) from error
        if self._stages:
            self._process = self._stages[0][1]
            self._pump = threading.Thread(target=self._run_pump, daemon=True)
            self._pump.start()

    def _emit(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self.out.write(data)

    def _run_pump(self) -> None:
        stdout = self._stages[-1][1].stdout
        try:
            while True:
                data = stdout.read(CHUNK)
                if not data:
                    break
                self._emit(data)
        except OSError as error:
            self._pump_error = error
            for _what, process, _stderr in self._stages:
                process.kill()
            # Drain so no stage is left blocked on a full pipe.
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
        """Flush everything; raise BackupError if a stage or the disk failed at any point."""
        if self._process is None:
            self.out.flush()
            return
        try:
            self._process.stdin.close()
        except (BrokenPipeError, OSError):
            self._fail()
        self._pump.join()
        failed = [process.wait() for _what, process, _stderr in self._stages]
        if self._pump_error is not None or any(failed):
            self._fail()
        for _what, _process, stderr in self._stages:
            stderr.close()
        try:
            self.out.flush()
        except OSError as error:
            raise as_backup_error(error, self.out_path) from error

    def abort(self) -> None:
        """Stop every stage after a failure elsewhere; never raises."""
        self._aborted = True
        for _what, process, _stderr in self._stages:
            if process.poll() is None:
                process.kill()
            process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)

    def _fail(self) -> None:
        self.abort()
        if self._pump_error is not None:
            raise as_backup_error(self._pump_error, self.out_path) from self._pump_error
        # The stage that failed on its own: one before it then dies of SIGPIPE, one after it sees an early end
        # (or is killed by abort), so the last stage with another exit status is the cause.
        for what, process, stderr in reversed(self._stages):
            if process.returncode in (0, -9, -13):
                continue
            stderr.seek(0)
            message = stderr.read().decode(errors="replace").strip()
            raise BackupError("%s failed while writing %s (exit %s): %s"
                              % (what, self.out_path, process.returncode, message or "no message"))
        raise BackupError("writing %s failed: a pipeline stage stopped early" % self.out_path)


def decompress_command(path: str) -> list:
    """The command that writes the tar stream of archive ``path`` to stdout, or None for a plain tar."""
    if path.endswith(SUFFIXES["zstd"]):
        return [_require("zstd", "copy the archive to a host that has zstd"), "-q", "-d", "-c", path]
    if path.endswith(SUFFIXES["gzip"]):
        return [_require("gzip", "copy the archive to a host that has gzip"), "-d", "-c", path]
    if path.endswith(SUFFIXES["none"]):
        return None
    raise BackupError("%s is not a backup archive (expected .tar.zst, .tar.gz or .tar, optionally with .age)" % path)


def read_stages(path: str, identity_file: str = None) -> list:
    """The (what, command) stages that turn archive ``path``'s bytes, fed on stdin, into its tar stream on
    stdout: age first for an encrypted archive (KeyNeeded without ``identity_file``), then the decompressor.
    Empty for a plain tar."""
    stages = []
    if is_encrypted(path):
        if not identity_file:
            raise key_needed_error(path)
        stages.append(("age", decrypt_command(identity_file)))
    command = decompress_command(plain_name(path))
    if command is not None:
        stages.append(("decompressor", command[:-1]))
    return stages
