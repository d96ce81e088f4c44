# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup server of the guide: a folder reached with rsync over ssh (``ssh://user@host[:port]/path``).

Everything is done with rsync alone (listing, fetching, pushing, deleting), so the server may restrict the key
to rsync (``command="rrsync /srv/backups"`` in its authorized_keys). One ssh connection is shared by every
rsync of a run (ControlMaster), and closed at the end.

rsync writes each file to a hidden temp name in its destination folder and renames it into place once complete,
so a push killed half-way never leaves a file under an archive's name; the catalog ignores hidden names.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

HOST_KEY_CHECKING = ("strict", "accept-new")
MISSING = "No such file or directory"
RSYNC_VANISHED = 24  # "some files vanished before they could be transferred"


class SshStore:
    """A remote backup folder over rsync+ssh; paths given to it are relative to that folder (``daily/x.tar.zst``)."""

    kind = "ssh"
    multiplex = True  # one ssh connection for every rsync of a run

    def __init__(self, user: str, host: str, port, path: str, ssh_key: str = None, known_hosts: str = None,
                 host_key_checking: str = "strict", timeout: float = 30) -> None:
        if host_key_checking not in HOST_KEY_CHECKING:
            raise BackupError("ssh_host_key_checking must be one of %s, not %r (host keys are always checked)"
                              % (", ".join(HOST_KEY_CHECKING), host_key_checking))
        self.rsync = shutil.which("rsync")
        self.ssh = shutil.which("ssh")
        if not self.rsync or not self.ssh:
            raise BackupError("rsync and ssh are needed on this host for an ssh:// remote; install the rsync and "
                              "openssh-client packages")
        if ssh_key and not os.path.isfile(ssh_key):
            raise BackupError("ssh_key %s does not exist or is not a file; give the path of the private key the "
                              "backup server accepts" % ssh_key)
        if known_hosts and not os.path.exists(known_hosts) and host_key_checking == "strict":
            raise BackupError("known_hosts %s does not exist; put the backup server's host key there (ssh-keyscan "
                              "on a trusted network, checked by hand) or set ssh_host_key_checking: accept-new"
                              % known_hosts)
        self.target = "%s@%s" % (user, host) if user else host
        self.root = path.rstrip("/") or "/"
        self.description = "ssh://%s%s%s" % (self.target, ":%s" % port if port else "", self.root)
        # A short path: a unix socket's name may hold ~100 bytes, which a long TMPDIR would exceed.
        self.control_dir = tempfile.mkdtemp(prefix="rb-ssh-", dir="/tmp" if os.path.isdir("/tmp") else None)
        options = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=%s" % ("yes" if host_key_checking == "strict"
                                                                              else "accept-new"),
                   "-o", "ConnectTimeout=%d" % int(timeout), "-o", "ServerAliveInterval=15"]
        if self.multiplex:
            options += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s/%%C" % self.control_dir,
                        "-o", "ControlPersist=60"]
        if known_hosts:
            options += ["-o", "UserKnownHostsFile=%s" % os.path.abspath(known_hosts)]
        if ssh_key:
            options += ["-i", os.path.abspath(ssh_key), "-o", "IdentitiesOnly=yes"]
        if port:
            options += ["-p", str(int(port))]
        self.ssh_options = options
        self.shell = " ".join(shlex.quote(word) for word in [self.ssh] + options)
        # rsync's I/O timeout: a server that accepts the connection and then sends nothing ends the run.
        self.io_timeout = "--timeout=%d" % max(int(timeout), 1)

    def _remote(self, relative: str = "") -> str:
        return "%s:%s/%s" % (self.target, self.root if self.root != "/" else "", relative)

    def _run(self, arguments: list, what: str, missing_ok: bool = False, done=None, pass_fds=(),
             vanished_ok: bool = False) -> str:
        """Run rsync; its output, or with ``done`` (a dict) each transferred file's seconds there, timed as rsync
        reports it complete (``--out-format``). ``vanished_ok``: files that vanished while rsync read the folder
        are no failure."""
        command = [self.rsync, "-e", self.shell, self.io_timeout] + arguments
        if done is not None:
            command[1:1] = ["--out-format=%n", "--outbuf=L"]  # one line as each file completes, not at the end
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                       pass_fds=pass_fds)
            lines = []
            last = time.monotonic()
            for line in process.stdout:
                lines.append(line)
                if done is not None and line.strip():
                    now = time.monotonic()
                    name = line.decode(errors="replace").rstrip("\n")
                    if not name.endswith("/"):  # folders are no transfers (and rsync may report them late)
                        done[name] = now - last  # the first file of a run includes the connection's setup
                        last = now
            returncode = process.wait()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace").strip()
        if returncode != 0:
            if missing_ok and returncode == 23 and MISSING in stderr:
                return ""
            if vanished_ok and returncode == RSYNC_VANISHED:
                return b"".join(lines).decode(errors="replace")
            raise BackupError("rsync to %s failed %s (exit %d): %s%s" % (
                self.description, what, returncode, _last_lines(stderr), _hint(stderr)))
        return b"".join(lines).decode(errors="replace")

    def list(self) -> dict:
        """{relative path: size} of the files in the remote folder's subfolders (hidden ones left out)."""
        # Litestream's replica (.litestream) changes under the listing: its vanished temp files are no failure.
        output = self._run(["--list-only", "-r", "--no-human-readable", self._remote()], "listing the backups",
                           missing_ok=True, vanished_ok=True)
        files = {}
        for line in output.splitlines():
            fields = line.split(None, 4)
            if len(fields) != 5 or not fields[0].startswith("-"):
                continue
            name = fields[4]
            if any(part.startswith(".") for part in name.split("/")):
                continue
            try:
                files[name] = int(fields[1].replace(",", ""))
            except ValueError:
                continue
        return files

    def fetch(self, relatives: list, dest_root: str, max_size: int) -> None:
        """Copy ``relatives`` into ``dest_root`` under the same relative paths (small files: sidecars); a file
        larger than ``max_size`` when rsync meets it is not copied. Only regular files travel (no --links, no
        --devices or --specials): a symlink or FIFO there is skipped, never followed or waited on."""
        if not relatives:
            return
        with tempfile.NamedTemporaryFile("w", prefix="rb-files-", delete=False) as listing:
            listing.write("\n".join(relatives) + "\n")
        try:
            self._run(["-r", "--files-from=%s" % listing.name, "--max-size=%d" % max_size, "--chmod=D0700,F0600",
                       "-p", self._remote(),
                       dest_root + "/"], "fetching the sidecars")
        finally:
            os.unlink(listing.name)

    def download(self, relatives: list, dest_root: str, max_size: int, dest_fd: int = None) -> dict:
        """Copy ``relatives`` into ``dest_root`` (a private folder; ``/proc/self/fd/<dest_fd>`` when it is held
        by a descriptor, which rsync inherits) in one rsync, in order, none larger than ``max_size`` (what the
        listing said); {relative: seconds}."""
        done: dict = {}
        if not relatives:
            return done
        with tempfile.NamedTemporaryFile("w", prefix="rb-files-", delete=False) as listing:
            listing.write("\n".join(relatives) + "\n")
        try:
            self._run(["-r", "-t", "--files-from=%s" % listing.name, "--max-size=%d" % max_size, "--chmod=D0700,F0600",
                       "-p", self._remote(), dest_root + "/"], "copying %s" % ", ".join(relatives[:3]), done=done,
                      pass_fds=() if dest_fd is None else (dest_fd,))
        finally:
            os.unlink(listing.name)
        return done

    def upload(self, local_root: str, relatives: list) -> dict:
        """Copy ``local_root/<relative>`` to the same relative paths on the remote, in order, in one rsync,
        creating folders (0700); {relative: seconds}."""
        done: dict = {}
        if not relatives:
            return done
        sources = ["%s/./%s" % (local_root.rstrip("/"), relative) for relative in relatives]
        self._run(["--relative", "--mkpath", "-t", "--chmod=D0700,F0600", "-p"] + sources + [self._remote()],
                  "copying %s" % ", ".join(relatives[:3]), done=done)
        return done

    def delete(self, relatives: list) -> None:
        """Remove ``relatives`` from the remote, with rsync alone: an empty tree of the same folders is sent with
        --delete, and a filter that lets nothing but these files be deleted."""
        if not relatives:
            return
        empty = tempfile.mkdtemp(prefix="rb-empty-")
        try:
            rules = []
            for folder in sorted({os.path.dirname(relative) for relative in relatives}):
                os.makedirs(os.path.join(empty, folder), exist_ok=True)
                rules.append("+ /%s/" % folder)
            rules += ["+ /%s" % relative for relative in relatives] + ["- *"]
            with tempfile.NamedTemporaryFile("w", prefix="rb-filter-", delete=False) as filters:
                filters.write("\n".join(rules) + "\n")
            try:
                self._run(["-r", "--delete", "--filter=merge %s" % filters.name, empty + "/", self._remote()],
                          "removing %s" % ", ".join(relatives[:5]))
            finally:
                os.unlink(filters.name)
        finally:
            shutil.rmtree(empty, ignore_errors=True)

    def close(self) -> None:
        """End the shared connection (the ControlMaster process this run started)."""
        if self.multiplex:
            subprocess.run([self.ssh, "-O", "exit", "-o", "ControlPath=%s/%%C" % self.control_dir] + self.ssh_options
                           + [self.target], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        shutil.rmtree(self.control_dir, ignore_errors=True)


def _last_lines(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return " / ".join(lines[-3:]) or "no message"


def _hint(stderr: str) -> str:
    text = stderr.lower()
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return ("; the backup server's host key is unknown or changed: check it and put it in known_hosts (or set "
                "ssh_host_key_checking: accept-new for a first connection you trust)")
    if "permission denied" in text:
        return "; the server refused the key: check ssh_key and the server's authorized_keys"
    if "connection refused" in text or "timed out" in text or "could not resolve" in text:
        return "; the backup server cannot be reached: check the host, the port and that sshd runs"
    return ""
