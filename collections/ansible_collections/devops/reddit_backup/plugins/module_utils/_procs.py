# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which processes hold a file open, found the way ``lsof`` finds them: through /proc/<pid>/fd and the memory
maps in /proc/<pid>/maps (SQLite maps a WAL database's -shm file)."""

from __future__ import annotations

import os

PROC = "/proc"


def _identities(paths) -> dict:
    """(st_dev, st_ino) -> path for each of ``paths`` that exists."""
    found = {}
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            continue
        found[(info.st_dev, info.st_ino)] = path
    return found


def _command(pid: str) -> str:
    try:
        with open(os.path.join(PROC, pid, "cmdline"), "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(word.decode(errors="replace") for word in words if word)[:200] or "?"


def _mapped(pid: str, identities: dict, real_paths: dict) -> set:
    hits = set()
    try:
        with open(os.path.join(PROC, pid, "maps"), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split(None, 5)
                if len(fields) < 6:
                    continue
                major, _sep, minor = fields[3].partition(":")
                try:
                    identity = (os.makedev(int(major, 16), int(minor, 16)), int(fields[4]))
                except ValueError:
                    continue
                # overlayfs shows the lower filesystem's device in maps: fall back to the path.
                path = identities.get(identity) or real_paths.get(fields[5].strip())
                if path:
                    hits.add(path)
    except OSError:
        pass
    return hits


def holders(paths) -> tuple:
    """([{pid, command, path}], unreadable): the processes (other than this one) that hold any of ``paths``
    open or mapped, and how many processes could not be inspected (not root: other users' processes)."""
    identities = _identities(paths)
    if not identities:
        return [], 0
    real_paths = {os.path.realpath(path): path for path in identities.values()}
    found = []
    unreadable = 0
    for pid in os.listdir(PROC):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        fd_dir = os.path.join(PROC, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            unreadable += 1
            continue
        except OSError:
            continue  # the process ended meanwhile
        hits = set()
        for fd in fds:
            try:
                info = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            path = identities.get((info.st_dev, info.st_ino))
            if path:
                hits.add(path)
        hits |= _mapped(pid, identities, real_paths)
        if hits:
            command = _command(pid)
            found += [{"pid": int(pid), "command": command, "path": path} for path in sorted(hits)]
    return found, unreadable
