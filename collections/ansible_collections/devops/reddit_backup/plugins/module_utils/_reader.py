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
import re
import subprocess
import tarfile
import tempfile
import threading

from . import _manifest
from ._compress import decompress_command
from ._errors import BackupError
from ._fs import as_backup_error

CHUNK = 1 << 20
MANIFEST_LIMIT = 256 << 20  # a manifest of ~1 million members
HEADER_LIMIT = 1 << 20  # pax and GNU long-name header data: tarfile reads these whole into memory
PATH_LIMIT = 4095
NAME_LIMIT = 255
TRAILER_LIMIT = 1 << 20  # tar pads its end to 10 KiB records; anything longer was appended
WINDOW = 8 * CHUNK  # recent raw bytes kept to check padding and the trailer after tarfile has read past them
SYMLINK_DEPTH = 40  # the kernel's own limit on links followed while resolving one path
BLOCK = tarfile.BLOCKSIZE
_CHECKSUM_FIELD = re.compile(rb"^[0-7]{6}\x00 $")  # six octal digits, NUL, space: what every tar writes
_PAX_LENGTH = re.compile(rb"([1-9][0-9]*) ")

# tar types that name data somewhere else or that are not plain data: never created by this collection.
_SPECIAL_KINDS = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO",
                  tarfile.CONTTYPE: "contiguous file", tarfile.GNUTYPE_SPARSE: "sparse file"}
_LONG_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                 tarfile.GNUTYPE_LONGLINK)


class DamagedArchive(BackupError):
    """The archive's bytes are damaged or were altered: its stream, its tar structure or its manifest."""


class UnknownFormat(BackupError):
    """The manifest names another format version: this collection cannot judge the archive (it may be sound)."""


class _Refused(Exception):
    """Raised inside tarfile to stop it; not a tarfile.HeaderError, which tarfile would take for the end."""


class _GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized extended headers and sparse members before tarfile reads them, and a
    header whose checksum field is not in the one form tar writes (the only bytes its checksum does not cover)."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        info = super().frombuf(buf, encoding, errors)
        if not _CHECKSUM_FIELD.match(buf[148:156]):
            raise _Refused("a tar header whose checksum field is damaged (%r)" % bytes(buf[148:156]))
        return info

    def _proc_member(self, tarfile_):  # pylint: disable=arguments-renamed
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            raise _Refused("a GNU long-name header at byte %d (this collection writes pax archives)" % self.offset)
        if self.type in _LONG_HEADERS:
            if self.size > HEADER_LIMIT:
                raise _Refused("an extended header of %d bytes at byte %d (more than %d)"
                               % (self.size, self.offset, HEADER_LIMIT))
            start = self.offset + BLOCK
            end = start + self.size
            # tarfile reads each record's length and value but never looks at its closing newline, nor at
            # what follows the last record: check both from the raw bytes.
            tarfile_.records.append((start, end, self.offset))
            tarfile_.padding.append((end, -(-end // BLOCK) * BLOCK, "the padding of the extended header at byte %d"
                                     % self.offset))
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _Refused("a GNU sparse member at byte %d" % self.offset)
        return super()._proc_member(tarfile_)


class _GuardedTarFile(tarfile.TarFile):
    """A TarFile of _GuardedTarInfo members that collects the padding regions to check (``padding``) from its
    very first member, which tarfile reads while it opens a stream."""

    tarinfo = _GuardedTarInfo

    def __init__(self, *args, **kwargs) -> None:
        self.padding: list = []  # (start, end, what) of padding to check once the stream has passed it
        self.records: list = []  # (start, end, header offset) of pax records to check likewise
        super().__init__(*args, **kwargs)


def check_path(name: str):
    """Why ``name`` is not a safe member path below a destination (\"its path is absolute\"), or None."""
    if not name:
        return "its name is empty"
    if "\0" in name:
        return "its name holds a NUL byte"
    if name.startswith("/"):
        return "its path is absolute"
    parts = name.split("/")
    if ".." in parts:
        return "its path has a '..' component"
    if "" in parts or "." in parts:
        return "its path is not in canonical form (an empty or '.' component)"
    if len(name.encode("utf-8", "surrogateescape")) > PATH_LIMIT:
        return "its path is longer than %d bytes" % PATH_LIMIT
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_LIMIT for part in parts):
        return "a component of its path is longer than %d bytes" % NAME_LIMIT
    return None


def resolve_link(link_path: str, target: str, symlinks: dict, depth: int = 0):
    """Where symlink ``link_path`` -> ``target`` leads, as path components below the root, following the other
    links in ``symlinks`` (path -> target) the way the kernel would; None when it leaves the root or loops."""
    if target.startswith("/") or depth > SYMLINK_DEPTH:
        return None
    stack = link_path.split("/")[:-1]
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        current = "/".join(stack)
        if current in symlinks:
            resolved = resolve_link(current, symlinks[current], symlinks, depth + 1)
            if resolved is None:
                return None
            stack = resolved
            depth += 1
    return stack


def escaping_symlinks(symlinks: dict) -> list:
    """(path, target) of every symlink in ``symlinks`` that resolves outside the root or loops."""
    return [(path, target) for path, target in sorted(symlinks.items())
            if resolve_link(path, target, symlinks) is None]


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
        digest = hashlib.sha256() if self._reader.hash_members else None
        handle = self._reader.tar.extractfile(self._info)
        remaining = self.size
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

    def _finish(self) -> None:
        if self.kind == "file" and not self._started and self._reader.hash_members and self.problem is None:
            for _data in self.chunks():
                pass


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
    not stop the stream). ``hash_members=False`` skips member hashing (a quick structural pass)."""

    def __init__(self, archive: str, hash_members: bool = True) -> None:
        self.archive = archive
        self.hash_members = hash_members
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

    # The pipeline: archive file -> (feeder thread, hashing) -> decompressor -> tarfile.
    def __enter__(self) -> "ArchiveReader":
        command = decompress_command(self.archive)
        try:
            self._handle = open(self.archive, "rb")
        except OSError as error:
            raise BackupError("cannot read archive %s: %s; check the path and its permissions"
                              % (self.archive, error.strerror)) from error
        if command is None:
            self._tap = _Tap(_HashingFile(self._handle, self))
            return self
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(command[:-1], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr)
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._feeder.start()
        self._tap = _Tap(self._process.stdout)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.stdout.close()
            self._process.wait()
            self._feeder.join(timeout=10)
            self._stderr.close()
        if self._handle is not None:
            self._handle.close()

    def _account(self, data: bytes) -> None:
        self._digest.update(data)
        self.archive_size += len(data)

    def _feed(self) -> None:
        stdin = self._process.stdin
        try:
            while True:
                data = self._handle.read(CHUNK)
                if not data:
                    break
                self._account(data)
                stdin.write(data)
        except (BrokenPipeError, ValueError):
            pass  # the decompressor stopped early: its exit status says why
        except OSError as error:
            self._feed_error = error
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _decompressor_failure(self, wait: float = 5.0):
        """The decompressor's complaint once it has ended badly, or None."""
        if self._process is None:
            return None
        try:
            returncode = self._process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        if returncode == 0:
            return None
        self._stderr.seek(0)
        message = self._stderr.read().decode(errors="replace").strip() or "exit status %d" % returncode
        return "%s failed: %s" % (os.path.basename(self._process.args[0]), message.splitlines()[-1])

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
            self.tar = _GuardedTarFile.open(fileobj=self._tap, mode="r|", bufsize=CHUNK)
        except _Refused as error:
            raise self.damaged("it holds %s" % error) from None
        except (tarfile.TarError, EOFError, OSError) as error:
            raise self.damaged("it is not a tar stream (%s)" % error) from error
        seen: dict = {}
        while True:
            try:
                info = self.tar.next()
            except _Refused as error:
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
            member = self._member(info, seen)
            self.member_count += 1
            yield member
            member._finish()
            self._last_path = member.path
            if member.kind == "file":
                end = info.offset_data + info.size
                self.tar.padding.append((end, -(-end // BLOCK) * BLOCK, "the padding after member %s" % member.path))
        self._finish()

    def _member(self, info: tarfile.TarInfo, seen: dict) -> Member:
        path = info.name
        phrase = check_path(path)
        if info.isreg() and info.type != tarfile.CONTTYPE:
            kind = "file"
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
            phrase = phrase or "it is a hard link to %s (this collection never writes hard links)" % info.linkname
        else:
            kind = _SPECIAL_KINDS.get(info.type, "member of tar type %r" % info.type)
            phrase = phrase or "it is a %s (only files, directories and symlinks are restored)" % kind
        if phrase is None and kind == "symlink":
            if not info.linkname:
                phrase = "it is a symlink with an empty target"
            elif resolve_link(path, info.linkname, {}) is None:
                phrase = "it is a symlink to %s, which leads outside the destination" % info.linkname
        problem = "member %s is refused: %s" % (path, phrase) if phrase else _conflict(path, kind, seen)
        if problem is None:
            seen.setdefault(_ANCESTORS, set()).update(_parents(path))
            seen[path] = kind
        return Member(self, info, path, kind, problem)

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
                problem = _pax_problem(self._tap.between(start, end))
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
                raise self.damaged("its compressed stream is damaged", failure=failure)
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


def _pax_problem(data):
    """Why the pax records in ``data`` are not exactly "<length> <key>=<value>\\n" records filling it, or None."""
    if data is None:
        return None  # no longer in memory (a header larger than the window): tarfile parsed it already
    position = 0
    while position < len(data):
        match = _PAX_LENGTH.match(data, position)
        if not match:
            return "no record length at offset %d" % position
        length = int(match.group(1))
        record = data[position:position + length]
        if length <= len(match.group(0)) or len(record) != length or not record.endswith(b"\n") \
                or b"=" not in record:
            return "record at offset %d is not '<length> <key>=<value>\\n'" % position
        position += length
    return None


_ANCESTORS = object()  # key of the set of every parent of a member seen so far


def _parents(path: str) -> list:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def _conflict(path: str, kind: str, seen: dict):
    """Why ``path`` cannot sit beside the members already seen: a duplicate, beneath a non-directory, or a
    non-directory where earlier members needed a directory."""
    if path in seen:
        return "%s appears twice in the archive" % path
    for parent in _parents(path):
        if seen.get(parent, "dir") != "dir":
            return "%s lies beneath %s, which is a %s, not a directory" % (path, parent, seen[parent])
    if kind != "dir" and path in seen.get(_ANCESTORS, ()):
        return "%s is a %s, but earlier members lie beneath it" % (path, kind)
    return None
