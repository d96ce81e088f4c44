# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What makes a tar member safe to restore, and a tarfile that stops at what it must not read.

The rules a restore never relaxes: member paths relative and canonical, no '..', no absolute or escaping
symlinks (followed through each other, as the kernel would), no hard links, devices, FIFOs or sparse files, no
duplicates, nothing beneath a symlink or a file. And the tar bytes tarfile itself never looks at (the checksum
field's last bytes, pax record framing and padding) are handed to the reader to check.
"""

from __future__ import annotations

import re
import tarfile

HEADER_LIMIT = 1 << 20  # pax header data: tarfile reads it whole into memory
PATH_LIMIT = 4095
NAME_LIMIT = 255
SYMLINK_DEPTH = 40  # the kernel's own limit on links followed while resolving one path
BLOCK = tarfile.BLOCKSIZE
_CHECKSUM_FIELD = re.compile(rb"^[0-7]{6}\x00 $")  # six octal digits, NUL, space: what every tar writes
_PAX_LENGTH = re.compile(rb"([1-9][0-9]*) ")

# tar types that are not plain data: never created by this collection.
_SPECIAL_KINDS = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO",
                  tarfile.CONTTYPE: "contiguous file", tarfile.GNUTYPE_SPARSE: "sparse file"}
_PAX_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


class Refused(Exception):
    """Raised inside tarfile to stop it; not a tarfile.HeaderError, which tarfile would take for the end."""


class GuardedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized extended headers and sparse members before tarfile reads them, and a
    header whose checksum field is not in the one form tar writes (the only bytes its checksum does not cover)."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        info = super().frombuf(buf, encoding, errors)
        check_checksum_field(buf)
        return info

    # Newer CPython security releases (Debian 12's python3.11 3.11.2-6+deb12u8, for one) read every header
    # through _frombuf, never through frombuf: without this the checksum field went unchecked there.
    @classmethod
    def _frombuf(cls, buf, encoding, errors, *, dircheck=True):
        info = super()._frombuf(buf, encoding, errors, dircheck=dircheck)  # pylint: disable=no-member
        check_checksum_field(buf)
        return info

    def _proc_member(self, tarfile_):  # pylint: disable=arguments-renamed
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            raise Refused("a GNU long-name header at byte %d (this collection writes pax archives)" % self.offset)
        if self.type in _PAX_HEADERS:
            if self.size > HEADER_LIMIT:
                raise Refused("an extended header of %d bytes at byte %d (more than %d)"
                              % (self.size, self.offset, HEADER_LIMIT))
            start = self.offset + BLOCK
            end = start + self.size
            # tarfile reads each record's length and value but never looks at its closing newline, nor at
            # what follows the last record: check both from the raw bytes.
            tarfile_.records.append((start, end, self.offset))
            tarfile_.padding.append((end, -(-end // BLOCK) * BLOCK, "the padding of the extended header at byte %d"
                                     % self.offset))
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise Refused("a GNU sparse member at byte %d" % self.offset)
        return super()._proc_member(tarfile_)


def check_checksum_field(buf) -> None:
    """Refuse a header whose checksum field is not six octal digits, NUL, space: tarfile reads the digits up to
    the NUL, and the header's checksum leaves the field itself out, so nothing else sees a change after the NUL."""
    if not _CHECKSUM_FIELD.match(buf[148:156]):
        raise Refused("a tar header whose checksum field is damaged (%r)" % bytes(buf[148:156]))


class GuardedTarFile(tarfile.TarFile):
    """A TarFile of GuardedTarInfo members that collects the padding regions to check (``padding``) from its
    very first member, which tarfile reads while it opens a stream."""

    tarinfo = GuardedTarInfo

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


def classify(info: tarfile.TarInfo) -> tuple:
    """(kind, why it is refused or None) of one member, from its own header alone."""
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
    return kind, phrase and "member %s is refused: %s" % (path, phrase)


class Layout:
    """The members seen so far, to refuse one that cannot sit beside them."""

    def __init__(self) -> None:
        self.kinds: dict = {}
        self.parents: set = set()

    def add(self, path: str, kind: str):
        """Record the member, or return why it conflicts with those before it (and do not record it)."""
        if path in self.kinds:
            return "%s appears twice in the archive" % path
        for parent in _parents(path):
            if self.kinds.get(parent, "dir") != "dir":
                return "%s lies beneath %s, which is a %s, not a directory" % (path, parent, self.kinds[parent])
        if kind != "dir" and path in self.parents:
            return "%s is a %s, but earlier members lie beneath it" % (path, kind)
        self.kinds[path] = kind
        self.parents.update(_parents(path))
        return None


def _parents(path: str) -> list:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def pax_problem(data):
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
