# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Page-level database deltas: the hash of every page of a snapshot, the pages that differ from a parent's, and
rebuilding a snapshot from its parent and a delta.

A delta file is ``MAGIC``, one JSON header line, then for each changed page its 4-byte big-endian page number
(0-based) and the page's bytes. The header records the page size, the new page count (a database that shrank is
cut to it), the sha256 of the snapshot it rebuilds and of the snapshot it applies to, so every step of a chain is
checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import sha256_file

MAGIC = b"RBPAGEDELTA1\n"
DELTA_SUFFIX = ".pagedelta"  # a database's page delta is stored beside its path: data/x.db.pagedelta
DIGEST_BYTES = 16  # truncated sha256 per page: SHA-NI makes it the fastest stdlib hash here
READ_PAGES = 256


def page_digests(data: bytes, page_size: int) -> bytes:
    """The concatenated digests of the whole pages in ``data``."""
    view = memoryview(data)
    return b"".join(hashlib.sha256(view[offset:offset + page_size]).digest()[:DIGEST_BYTES]
                    for offset in range(0, len(data), page_size))


def page_hashes(path: str, page_size: int) -> tuple:
    """(page digests, sha256 hex) of the database file ``path``. The whole-file sha256 runs in a thread of its own
    (hashlib releases the GIL), beside the per-page digests."""
    whole: dict = {}
    worker = threading.Thread(target=lambda: whole.update(sha256=sha256_file(path)), daemon=True)
    worker.start()
    digests = bytearray()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(page_size * READ_PAGES), b""):
            digests += page_digests(block, page_size)
    worker.join()
    return bytes(digests), whole["sha256"]


def encode_hashes(digests: bytes) -> str:
    return base64.b64encode(digests).decode()


def decode_hashes(text: str) -> bytes:
    return base64.b64decode(text.encode())


def write_delta(snapshot: str, digests: bytes, parent_digests: bytes, page_size: int, out_path: str,
                snapshot_sha256: str, parent_sha256: str) -> dict:
    """Write the pages of ``snapshot`` whose digest differs from ``parent_digests`` to ``out_path``: a scratch file
    the archive copies and fsyncs, so it is not fsynced itself."""
    count = len(digests) // DIGEST_BYTES
    changed = [number for number in range(count)
               if digests[number * DIGEST_BYTES:(number + 1) * DIGEST_BYTES]
               != parent_digests[number * DIGEST_BYTES:(number + 1) * DIGEST_BYTES]]
    header = {"page_size": page_size, "page_count": count, "changed_pages": len(changed),
              "sha256": snapshot_sha256, "base_sha256": parent_sha256}
    with open(snapshot, "rb") as source, open(out_path, "wb") as out:
        out.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
        for number in changed:
            source.seek(number * page_size)
            out.write(number.to_bytes(4, "big") + source.read(page_size))
    return header


def read_delta_header(handle) -> dict:
    """Read and check a delta's header from an open binary file; leaves it at the first page record."""
    if handle.read(len(MAGIC)) != MAGIC:
        raise BackupError("not a page delta (bad magic); the archive is damaged")
    try:
        header = json.loads(handle.readline().decode())
        page_size = int(header["page_size"])
        int(header["page_count"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BackupError("page delta header is unreadable; the archive is damaged") from None
    if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
        raise BackupError("page delta has an impossible page size %r; the archive is damaged" % page_size)
    return header


def apply_delta(database: str, delta: str) -> dict:
    """Apply the delta file ``delta`` to the database file ``database`` in place (a staged copy, never a live
    database), then check that the result is the snapshot the delta was made from."""
    with open(delta, "rb") as handle:
        header = read_delta_header(handle)
        page_size, page_count = header["page_size"], header["page_count"]
        if sha256_file(database) != header["base_sha256"]:
            raise BackupError("page delta for %s does not apply: its parent snapshot differs from the one it was "
                              "made against (a link of the chain is missing or damaged)" % database)
        with open(database, "r+b") as target:
            while True:
                number_bytes = handle.read(4)
                if not number_bytes:
                    break
                page = handle.read(page_size)
                number = int.from_bytes(number_bytes, "big")
                if len(number_bytes) != 4 or len(page) != page_size or number >= page_count:
                    raise BackupError("page delta for %s is truncated or damaged" % database)
                target.seek(number * page_size)
                target.write(page)
            target.truncate(page_count * page_size)
    if sha256_file(database) != header["sha256"]:
        raise BackupError("rebuilding %s from its page delta gave a database whose sha256 differs from the "
                          "recorded snapshot; the chain is damaged" % database)
    return header
