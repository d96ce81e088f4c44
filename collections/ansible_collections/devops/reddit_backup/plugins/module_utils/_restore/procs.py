# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which processes hold a file open, found the way ``lsof`` finds them: through /proc/<pid>/fd and the memory
maps in /proc/<pid>/maps (SQLite maps a WAL database's -shm file); and, where /proc is closed to this user (another
user's processes without CAP_SYS_PTRACE, as root in a container; /proc mounted with hidepid), through the file
locks SQLite holds on the database and its -shm file."""

from __future__ import annotations

import fcntl
import os
import struct

PROC = "/proc"
# struct flock (l_type, l_whence, l_start, l_len, l_pid) in native alignment, with room for trailing padding.
FLOCK = "@hhqqi"
FLOCK_SIZE = struct.calcsize(FLOCK) + 8


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


def lock_holders(paths) -> list:
    """[{pid, path}]: a process holding a POSIX lock on one of ``paths`` (SQLite locks its database during
    transactions and, in WAL mode, holds a read lock on the -shm file for as long as a connection is open). Found
    with F_GETLK, which asks and takes nothing. Opening and closing a file drops only this process's own locks on
    it, and the guard holds none on the application's databases, so no SQLite connection is disturbed."""
    found = []
    for path in paths:
        pid = _lock_holder(path)
        if pid is not None:
            found.append({"pid": pid, "path": path})
    return found


def _lock_holder(path: str):
    """The pid of a process holding a lock that conflicts with a write lock on the whole of ``path`` (-1 for an
    open-file-description lock, whose owner the kernel does not name), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        probe = struct.pack(FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0).ljust(FLOCK_SIZE, b"\0")
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
    except OSError:
        return None
    finally:
        os.close(fd)
    kind, _whence, _start, _length, pid = struct.unpack_from(FLOCK, answer)
    return None if kind == fcntl.F_UNLCK else pid


def hidden_processes() -> str:
    """The hidepid= setting /proc is mounted with when it hides other users' processes from this one, or ''."""
    if os.geteuid() == 0:
        return ""
    options = []
    try:
        with open(os.path.join(PROC, "self", "mountinfo"), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 4 and fields[4] == PROC and " - proc " in line:
                    # The last mount on /proc is the one in use: it hides those below it.
                    options = line.rsplit(" ", 1)[-1].strip().split(",")
    except OSError:
        return ""
    hidden = [option for option in options if option.startswith("hidepid=")
              and option not in ("hidepid=0", "hidepid=off")]
    return hidden[0] if hidden else ""


def in_use(paths) -> tuple:
    """([{pid, command, path, found_by}], warnings): the processes holding any of ``paths`` open (through /proc)
    or locked (through file locks, which also sees processes /proc hides), and a warning whenever some processes
    could not be inspected."""
    found, unreadable = holders(paths)
    for holder in found:
        holder["found_by"] = "proc"
    seen = {(holder["pid"], holder["path"]) for holder in found}
    for holder in lock_holders(paths):
        if (holder["pid"], holder["path"]) not in seen and holder["pid"] != os.getpid():
            command = _command(str(holder["pid"])) if holder["pid"] > 0 else "?"
            found.append(dict(holder, command=command, found_by="lock"))
    warnings = []
    if unreadable:
        warnings.append("could not look into %d processes (their /proc/PID/fd is closed to uid %d: another user's "
                        "processes without CAP_SYS_PTRACE, as in a container); the databases' file locks were "
                        "checked instead, which finds SQLite connections in WAL mode and open transactions, but not "
                        "a process that merely holds a rollback-journal database open" % (unreadable, os.geteuid()))
    hidden = hidden_processes()
    if hidden:
        warnings.append("/proc is mounted with %s, which hides other users' processes from uid %d; only the "
                        "databases' file locks were checked for them (run as root to see them all)"
                        % (hidden, os.geteuid()))
    return found, warnings
