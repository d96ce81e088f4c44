# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading an archive once: decompressed, walked member by member, every member checked for safety and hashed
as it streams, the manifest (the last member) kept for the end.

Nothing here writes anywhere: callers (verify, restore) decide what to do with each member's bytes. The reader
never trusts the archive: a name that could leave the destination, a hard link, a device or FIFO, a duplicate, a
member beneath a symlink or a file, a member after the manifest, damaged padding or trailing bytes are all
reported, and a damaged stream raises DamagedArchive naming the member it was reading.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import queue
import subprocess
import tarfile
import threading

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import crypto as _crypto
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import META_LIMIT, META_SUFFIX
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.compress import read_stages, start_stages
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import (
    as_backup_error, open_regular, read_regular,
)
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.tarsafe import (
    GuardedTarFile, Layout, Refused, classify, pax_problem,
)

CHUNK = 1 << 20
MANIFEST_LIMIT = 256 << 20  # a manifest of ~1 million members
TRAILER_LIMIT = 1 << 20  # tar pads its end to 10 KiB records; anything longer was appended
WINDOW = 8 * CHUNK  # recent raw bytes kept to check padding and the trailer after tarfile has read past them
BLOCK = tarfile.BLOCKSIZE
THREADED_HASH_MIN = 8 * CHUNK  # a member this large is hashed in a thread beside the walk (one thread a member)
HASH_QUEUE = 4  # chunks waiting for that thread at most


class DamagedArchive(BackupError):
    """The archive's bytes are damaged or were altered: its stream, its tar structure or its manifest."""


class UnknownFormat(BackupError):
    """The manifest names another format version: this collection cannot judge the archive (it may be sound)."""


class Member:
    """One member as it streams by: ``path``, ``kind`` (file, dir, symlink or what it really is), ``size``,
    ``mode``, ``mtime``, ``target`` (symlinks), and ``problem``: why it is unsafe, or None.

    ``chunks()`` yields a file's bytes once; ``sha256`` is set once they have all passed (the reader reads and
    hashes what the caller did not)."""

    def __init__(self, reader: "ArchiveReader", info: tarfile.TarInfo, path: str, kind: str, problem) -> None:
        self._reader = reader
        self._info = info
        self.path = path
        self.kind = kind
        self.problem = problem
        self.size = info.size if kind == "file" else 0
        self.mode = info.mode & 0o7777
        self.mtime = int(info.mtime)
        self.target = info.linkname if kind == "symlink" else None
        self.owner = (info.uid, info.uname)  # as the tar header records it (not in the manifest)
        self.sha256 = None
        self._started = False

    def record(self) -> dict:
        """The member as the manifest would list it."""
        record = {"path": self.path, "type": self.kind, "size": self.size, "mode": "%04o" % self.mode,
                  "mtime": self.mtime, "sha256": self.sha256}
        if self.kind == "symlink":
            record["target"] = self.target
        return record

    def chunks(self):
        """Yield the member's bytes in chunks of up to 1 MiB, hashing them; only once, only for files."""
        if self.kind != "file" or self._started:
            raise BackupError("the content of %s cannot be read twice or from a non-file" % self.path)
        self._started = True
        digest = None
        if self._reader.hash_members:
            digest = _ThreadedSha256() if self.size >= THREADED_HASH_MIN else hashlib.sha256()
        handle = self._reader.tar.extractfile(self._info)
        remaining = self.size
        try:
            while remaining:
                try:
                    data = handle.read(min(CHUNK, remaining))
                except (tarfile.TarError, EOFError, OSError) as error:
                    raise self._reader.damaged("its data ends early (%s)" % error, self.path) from error
                if not data:
                    raise self._reader.damaged("its data ends early", self.path)
                remaining -= len(data)
                if digest is not None:
                    digest.update(data)
                yield data
            if digest is not None:
                self.sha256 = digest.hexdigest()
        finally:
            if isinstance(digest, _ThreadedSha256):
                digest.stop()

    def _finish(self) -> None:
        if self.kind == "file" and not self._started and self._reader.hash_members and self.problem is None:
            for _data in self.chunks():
                pass


class _ThreadedSha256:
    """sha256 of a member's chunks, computed in a thread of its own (hashlib releases the GIL on large buffers)
    while the walk reads and writes the next chunk; ``hexdigest`` waits for the last one."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(maxsize=HASH_QUEUE)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for data in iter(self._queue.get, None):
            self._digest.update(data)

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def hexdigest(self) -> str:
        self.stop()
        return self._digest.hexdigest()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _Tap:
    """The raw tar stream as tarfile reads it, counted, with the most recent bytes kept for later checks."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.position = 0
        self._window: collections.deque = collections.deque()
        self._window_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(CHUNK if size is None or size < 0 else size)
        if data:
            self._window.append((self.position, data))
            self._window_bytes += len(data)
            self.position += len(data)
            while self._window_bytes - len(self._window[0][1]) >= WINDOW:
                self._window_bytes -= len(self._window.popleft()[1])
        return data

    def between(self, start: int, end: int):
        """The kept bytes in [start, end), or None when some of them are no longer kept."""
        pieces = []
        for chunk_start, data in self._window:
            low, high = max(start, chunk_start), min(end, chunk_start + len(data))
            if low < high:
                pieces.append(data[low - chunk_start:high - chunk_start])
        joined = b"".join(pieces)
        return joined if len(joined) == end - start else None

    def first_nonzero(self, start: int, end: int):
        """The first offset in [start, end) of the kept bytes that is not zero, or None."""
        for chunk_start, data in self._window:
            low, high = max(start, chunk_start), min(end, chunk_start + len(data))
            if low >= high:
                continue
            piece = data[low - chunk_start:high - chunk_start]
            if piece.count(0) != len(piece):
                return low + next(i for i, byte in enumerate(piece) if byte)
        return None


class _HashingFile:
    """An uncompressed archive read straight from its file, hashed as it is read."""

    def __init__(self, handle, reader: "ArchiveReader") -> None:
        self.handle = handle
        self.reader = reader

    def read(self, size: int) -> bytes:
        data = self.handle.read(size)
        self.reader._account(data)
        return data


class ArchiveReader:
    """``with ArchiveReader(archive) as reader: for member in reader.members(): ...``; then ``reader.manifest``,
    ``reader.archive_sha256`` (of the archive file's bytes) and ``reader.problems`` (structure findings that did
    not stop the stream). ``hash_members=False`` skips member hashing (a quick structural pass).
    ``identity_file`` is the age private key file an encrypted archive (``.age``) needs; without it such an
    archive raises KeyNeeded, and with a key it was not encrypted to, WrongKey."""

    def __init__(self, archive: str, hash_members: bool = True, identity_file: str = None) -> None:
        self.archive = archive
        self.hash_members = hash_members
        self.identity_file = identity_file
        self._stages: list = []  # (what, process, stderr file): age first when encrypted, then the decompressor
        self.manifest = None
        self.manifest_bytes = None
        self.archive_size = 0
        self.archive_sha256 = None
        self.problems: list = []
        self.member_count = 0
        self.tar = None
        self._digest = hashlib.sha256()
        self._handle = None
        self._process = None
        self._stderr = None
        self._feeder = None
        self._feed_error = None
        self._tap = None
        self._last_path = None

    # The pipeline: archive file -> (feeder thread, hashing) -> [age -d] -> decompressor -> tarfile.
    def __enter__(self) -> "ArchiveReader":
        if _crypto.is_encrypted(self.archive) and not self.identity_file:
            raise _crypto.key_needed_error(self.archive, _recipients(self.archive))
        stages = read_stages(self.archive, self.identity_file)
        try:
            self._handle = os.fdopen(open_regular(self.archive, what="archive"), "rb")
        except OSError as error:
            raise BackupError("cannot read archive %s: %s; check the path and its permissions"
                              % (self.archive, error.strerror)) from error
        if not stages:
            self._tap = _Tap(_HashingFile(self._handle, self))
            return self
        try:
            start_stages(stages, self._stages)
        except OSError as error:
            self.__exit__(None, None, None)
            what = stages[len(self._stages)][0]
            raise BackupError("cannot start %s to read %s: %s" % (what, self.archive, error)) from error
        self._process = self._stages[-1][1]  # the stage whose output is the tar stream
        self._stderr = self._stages[-1][2]
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()
        self._tap = _Tap(self._process.stdout)
        return self

    def __exit__(self, *exc_info) -> None:
        for _what, process, _stderr in self._stages:
            if process.poll() is None:
                process.kill()
        if self._process is not None:
            self._process.stdout.close()
        for _what, process, stderr in self._stages:
            process.wait()
            stderr.close()
        if self._feeder is not None:
            self._feeder.join(timeout=10)
        if self._handle is not None:
            self._handle.close()

    def _account(self, data: bytes) -> None:
        self._digest.update(data)
        self.archive_size += len(data)

    def _feed(self) -> None:
        stdin = self._stages[0][1].stdin
        try:
            while True:
                data = self._handle.read(CHUNK)
                if not data:
                    break
                self._account(data)
                stdin.write(data)
        except (BrokenPipeError, ValueError):
            pass  # the first stage stopped early: its exit status says why
        except OSError as error:
            self._feed_error = error
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _decompressor_failure(self, wait: float = 5.0):
        """The complaint of the first stage (age, then the decompressor) that has ended badly, or None. A key
        that does not match raises WrongKey: that is no damage to the archive."""
        for what, process, stderr in self._stages:
            try:
                returncode = process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            if returncode == 0:
                continue
            stderr.seek(0)
            text = stderr.read().decode(errors="replace")
            if what == "age":
                return self._age_failure(text, returncode)
            message = text.strip() or "exit status %d" % returncode
            return "%s failed: %s" % (os.path.basename(process.args[0]), message.splitlines()[-1])
        return None

    def _age_failure(self, text: str, returncode: int) -> str:
        kind = _crypto.classify_failure(text)
        if kind == "wrong_key":
            raise _crypto.wrong_key_error(self.archive, self.identity_file, _recipients(self.archive))
        if kind == "identity":
            # age's words could quote the key file: name the file and say what to check, nothing more.
            raise BackupError("age could not use identity_file %s: it must be an unencrypted age private key file "
                              "(as age-keygen writes)" % self.identity_file)
        if kind == "damaged":
            return ("age could not authenticate the ciphertext: it was altered, cut short or damaged (%s)"
                    % (_crypto.last_message(text) or "exit status %d" % returncode))
        return "age failed: %s" % (_crypto.last_message(text) or "exit status %d" % returncode)

    def damaged(self, what: str, path=None, failure=None) -> DamagedArchive:
        """A DamagedArchive naming the member being read (or the last one read) and the decompressor's word."""
        where = ("at member %s" % path) if path else ("after member %s" % self._last_path if self._last_path
                                                      else "at its start")
        failure = failure or self._decompressor_failure(wait=1.0)
        if failure:
            what = "%s (%s)" % (failure, what)
        return DamagedArchive("%s is damaged %s: %s; use another backup" % (self.archive, where, what))

    # The walk.
    def members(self):
        """Yield every member but the manifest, in archive order; check the stream's end once they are done."""
        try:
            self.tar = GuardedTarFile.open(fileobj=self._tap, mode="r|", bufsize=CHUNK)
        except Refused as error:
            raise self.damaged("it holds %s" % error) from None
        except (tarfile.TarError, EOFError, OSError) as error:
            raise self.damaged("it is not a tar stream (%s)" % error) from error
        layout = Layout()
        while True:
            try:
                info = self.tar.next()
            except Refused as error:
                raise self.damaged("it holds %s" % error) from None
            except (tarfile.TarError, EOFError, OSError) as error:
                raise self.damaged(str(error)) from error
            self.tar.members = []  # stream mode never needs them back: do not keep a million TarInfos
            self._check_passed()
            if info is None:
                break
            if self.manifest_bytes is not None:
                raise self.damaged("member %s follows %s, which must be the last member; the archive was altered"
                                   % (info.name, _manifest.MANIFEST_NAME))
            if info.name == _manifest.MANIFEST_NAME:
                self._read_manifest(info)
                continue
            member = self._member(info, layout)
            self.member_count += 1
            yield member
            member._finish()
            self._last_path = member.path
            if member.kind == "file":
                end = info.offset_data + info.size
                self.tar.padding.append((end, -(-end // BLOCK) * BLOCK, "the padding after member %s" % member.path))
        self._finish()

    def _member(self, info: tarfile.TarInfo, layout: Layout) -> Member:
        kind, problem = classify(info)
        problem = problem or layout.add(info.name, kind)
        return Member(self, info, info.name, kind, problem)

    def _read_manifest(self, info: tarfile.TarInfo) -> None:
        if not info.isreg():
            raise self.damaged("its %s is not a regular file" % _manifest.MANIFEST_NAME)
        if info.size > MANIFEST_LIMIT:
            raise self.damaged("its %s is %d bytes (more than %d)" % (_manifest.MANIFEST_NAME, info.size,
                                                                      MANIFEST_LIMIT))
        try:
            data = self.tar.extractfile(info).read()
        except (tarfile.TarError, EOFError, OSError) as error:
            raise self.damaged("its manifest ends early (%s)" % error, _manifest.MANIFEST_NAME) from error
        if len(data) != info.size:
            raise self.damaged("its manifest ends early", _manifest.MANIFEST_NAME)
        self.manifest_bytes = data
        self._last_path = _manifest.MANIFEST_NAME
        end = info.offset_data + info.size
        self.tar.padding.append((end, -(-end // BLOCK) * BLOCK, "the padding after %s" % _manifest.MANIFEST_NAME))

    def _check_passed(self, everything: bool = False) -> None:
        """Check the padding and pax records the stream has gone past (all of them at its end)."""
        for region in self.tar.padding:
            if everything or region[1] <= self._tap.position:
                self._check_zeros(*region)
        for start, end, offset in self.tar.records:
            if everything or end <= self._tap.position:
                problem = pax_problem(self._tap.between(start, end))
                if problem:
                    raise self.damaged("the extended header at byte %d is malformed (%s)" % (offset, problem))
        self.tar.padding = [r for r in self.tar.padding if not everything and r[1] > self._tap.position]
        self.tar.records = [r for r in self.tar.records if not everything and r[1] > self._tap.position]

    def _check_zeros(self, start: int, end: int, what: str) -> None:
        offset = self._tap.first_nonzero(start, end)
        if offset is not None:
            self.problems.append("%s is not zero (byte %d of the tar stream)" % (what, offset))

    def _finish(self) -> None:
        """After the end-of-archive marker: only zeros may follow, the decompressor must end well, and the
        manifest must have been the last member."""
        self._check_passed(everything=True)
        end = self.tar.offset
        offset = self._tap.first_nonzero(end, self._tap.position)
        while offset is None:
            data = self._tap.read(CHUNK)
            if not data:
                break
            if self._tap.position - end > TRAILER_LIMIT:
                raise self.damaged("more than %d bytes follow the end of its tar stream" % TRAILER_LIMIT)
            offset = self._tap.first_nonzero(self._tap.position - len(data), self._tap.position)
        if offset is not None:
            if self.manifest_bytes is None:
                raise self.damaged("a damaged tar header at byte %d ends the stream early" % end)
            raise self.damaged("non-zero bytes at byte %d, after the end of its tar stream" % offset)
        if self._process is not None:
            self._process.stdout.close()
            self._feeder.join()
            failure = self._decompressor_failure(wait=60)
            if failure:
                raise self.damaged("its %s stream is damaged" % ("encrypted" if self.identity_file else "compressed"),
                                   failure=failure)
        if self._feed_error is not None:
            raise as_backup_error(self._feed_error, self.archive)
        self.archive_sha256 = self._digest.hexdigest()
        if self.manifest_bytes is None:
            raise self.damaged("its stream ends before %s (truncated, or not made by this collection)"
                               % _manifest.MANIFEST_NAME)
        self.manifest = self._decode_manifest()

    def _decode_manifest(self) -> dict:
        """The manifest; damage is DamagedArchive, but a newer format version stays a plain BackupError (this
        collection cannot judge the archive, which may well be sound)."""
        try:
            head = json.loads(self.manifest_bytes.decode())
        except (UnicodeDecodeError, ValueError) as error:
            raise self.damaged("its %s is not valid JSON (%s)" % (_manifest.MANIFEST_NAME, error)) from None
        if isinstance(head, dict) and head.get("format") == _manifest.FORMAT \
                and head.get("format_version") != _manifest.FORMAT_VERSION:
            raise UnknownFormat("%s has manifest format %s; this collection reads format %s: upgrade the collection"
                                % (self.archive, head.get("format_version"), _manifest.FORMAT_VERSION))
        try:
            return _manifest.decode(self.manifest_bytes, self.archive)
        except BackupError as error:
            raise self.damaged("its %s: %s" % (_manifest.MANIFEST_NAME, error)) from None


def _recipients(archive: str):
    """The recipients an encrypted archive's catalog entry names (public keys), for messages; None if unknown."""
    try:
        encryption = json.loads(read_regular(archive + META_SUFFIX, META_LIMIT).decode("utf-8")).get("encryption") or {}
    except (OSError, ValueError, AttributeError, BackupError):
        return None
    recipients = encryption.get("recipients") if isinstance(encryption, dict) else None
    return recipients if isinstance(recipients, list) else None


def run_pass(reader, verifier, stager=None) -> None:
    """Read every member once: the verifier watches them all, the stager (a restore) writes those in scope.
    With a stager, the first unsafe member stops the pass (nothing outside the staging folder was written)."""
    for member in reader.members():
        verifier.observe(member)
        if member.problem:
            if stager is not None:
                raise DamagedArchive("%s is refused: %s" % (reader.archive, member.problem))
            continue
        sinks = []
        staged = stager.add(member) if stager is not None else None
        if staged is not None:
            sinks.append(staged)
        extra = verifier.sink(member, staged.path if staged is not None else None)
        if extra is not None:
            sinks.append(extra)
        if not sinks or member.kind != "file":
            continue
        try:
            for data in member.chunks():
                for sink in sinks:
                    sink.write(data)
        finally:
            for sink in sinks:
                sink.close()
