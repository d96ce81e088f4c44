# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing the archive's tar stream: every member hashed as it is written, the manifest last."""

from __future__ import annotations

import grp
import hashlib
import io
import os
import pwd
import tarfile
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._nofollow import open_regular
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.manifest import MANIFEST_NAME
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.pages import page_digests

COPY_CHUNK = 1 << 20


class _HashingReader:
    """Reads exactly ``size`` bytes from ``handle``, hashing them; a file that shrank while being read is padded
    with zeros (and reported) so the tar stream stays well-formed, and one that grew is cut at ``size``."""

    def __init__(self, handle, size: int, page_size: int = 0, on_read=None) -> None:
        self.handle = handle
        self.on_read = on_read
        self.remaining = size
        self.sha256 = hashlib.sha256()
        self.padded = 0
        self.page_size = page_size
        self.page_digests = bytearray() if page_size else None

    def read(self, count: int) -> bytes:
        count = min(count, self.remaining)
        data = self.handle.read(count)
        if len(data) < count:
            self.padded += count - len(data)
            data += b"\0" * (count - len(data))
        self.remaining -= count
        if self.on_read is not None:
            self.on_read(count)
        self.sha256.update(data)
        if self.page_size:  # a database snapshot: its page hashes come from the same read (chunks hold whole pages)
            self.page_digests += page_digests(data, self.page_size)
        return data


class _Names:
    """uid/gid to names, looked up once each."""

    def __init__(self) -> None:
        self._users: dict = {}
        self._groups: dict = {}

    def user(self, uid: int) -> str:
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = ""
        return self._users[uid]

    def group(self, gid: int) -> str:
        if gid not in self._groups:
            try:
                self._groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                self._groups[gid] = ""
        return self._groups[gid]


class ArchiveWriter:
    """A tar stream (pax format) written to ``stream``; ``members`` collects the manifest's member records."""

    def __init__(self, stream, on_read=None) -> None:
        self._tar = tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT, bufsize=COPY_CHUNK)
        self._on_read = on_read  # told the size of every chunk of file data read (a progress display)
        self._tar.copybufsize = COPY_CHUNK
        self._names = _Names()
        self.members: list = []
        self.warnings: list = []

    def _info(self, path: str, info: os.stat_result, kind) -> tarfile.TarInfo:
        member = tarfile.TarInfo(path)
        member.type = kind
        member.mode = info.st_mode & 0o7777
        member.mtime = int(info.st_mtime)
        member.uid, member.gid = info.st_uid, info.st_gid
        member.uname, member.gname = self._names.user(info.st_uid), self._names.group(info.st_gid)
        return member

    def _record(self, path: str, kind: str, info: os.stat_result, size: int = 0, sha256=None, **extra) -> dict:
        record = {"path": path, "type": kind, "size": size, "mode": "%04o" % (info.st_mode & 0o7777),
                  "mtime": int(info.st_mtime), "sha256": sha256}
        record.update(extra)
        self.members.append(record)
        return record

    def add_dir(self, path: str, info: os.stat_result) -> dict:
        self._tar.addfile(self._info(path, info, tarfile.DIRTYPE))
        return self._record(path, "dir", info)

    def add_symlink(self, path: str, info: os.stat_result, target: str) -> dict:
        member = self._info(path, info, tarfile.SYMTYPE)
        member.linkname = target
        self._tar.addfile(member)
        return self._record(path, "symlink", info, target=target)

    def add_file(self, path: str, source: str, info: os.stat_result = None, page_size: int = 0,
                 expected: os.stat_result = None) -> dict:
        """Stream ``source`` into the archive as ``path``; the size is taken from one stat, before reading.
        With ``page_size``, the record also carries ``page_digests``: the hash of every page, from the same read.
        ``source`` is never read through a symlink, and with ``expected`` it must be that inode (else Replaced)."""
        try:
            handle = open_regular(source, expected)
        except OSError as error:
            raise BackupError("cannot read %s: %s; fix its mode or exclude it" % (source, error.strerror)) \
                from error
        with handle:
            info = os.fstat(handle.fileno()) if info is None else info
            size = os.fstat(handle.fileno()).st_size
            member = self._info(path, info, tarfile.REGTYPE)
            member.size = size
            reader = _HashingReader(handle, size, page_size, self._on_read)
            self._tar.addfile(member, reader)
        if reader.padded:
            self.warnings.append("%s shrank by %d bytes while it was read; the archived copy is padded with zeros"
                                 % (path, reader.padded))
        record = self._record(path, "file", info, size=size, sha256=reader.sha256.hexdigest())
        if page_size:
            return dict(record, page_digests=bytes(reader.page_digests))
        return record

    def add_manifest(self, data: bytes) -> None:
        member = tarfile.TarInfo(MANIFEST_NAME)
        member.size = len(data)
        member.mode = 0o600
        member.mtime = int(time.time())
        self._tar.addfile(member, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()
