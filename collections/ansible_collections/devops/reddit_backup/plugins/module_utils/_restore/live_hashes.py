# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sha256 of the databases already in dest, hashed in a thread while the archive is read, so that "is dest
already what the restore would put there?" (what makes a re-run change nothing) costs no time of its own.

A hash is reused only if the file is still the same one, unchanged: same device, inode, size, mtime and ctime
(the kernel sets ctime on every write, to its clock tick, and nobody can set it back); otherwise the file is hashed
again, as before. A write within the tick the hash ended in is the race every "check, then act" has: the swap
comes later anyway.
"""

from __future__ import annotations

import os
import threading

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import open_regular, sha256_of


def _identity(info: os.stat_result) -> tuple:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


class LiveHashes:
    """``LiveHashes({path: expected size})`` starts hashing, in one thread, each path that is a regular file of
    that size (another size cannot be current: no need to read it); ``sha256(path)`` is the file's sha256 now."""

    def __init__(self, sizes: dict) -> None:
        self._found: dict = {}
        self._thread = threading.Thread(target=self._hash_all, args=(dict(sizes),), daemon=True)
        self._thread.start()

    def _hash_all(self, sizes: dict) -> None:
        for path, size in sizes.items():
            try:
                with os.fdopen(open_regular(path, what="database"), "rb") as handle:
                    before = _identity(os.fstat(handle.fileno()))
                    if before[2] != size:
                        continue
                    sha256 = sha256_of(handle)
                    if _identity(os.fstat(handle.fileno())) == before:
                        self._found[path] = (before, sha256)
            except (OSError, BackupError):
                continue  # hashed again (and any error raised) where the answer is needed

    def sha256(self, path: str) -> str:
        """The sha256 of the regular file ``path`` (never through a final symlink): the one hashed meanwhile if the
        file has not changed since, else hashed now."""
        self._thread.join()
        with os.fdopen(open_regular(path, what="database"), "rb") as handle:
            found = self._found.get(path)
            if found is not None and found[0] == _identity(os.fstat(handle.fileno())):
                return found[1]
            return sha256_of(handle)
