# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signed backups: who made a backup, checked without decrypting it.

The app host signs each backup's ``.meta.json`` sidecar with OpenSSH (``ssh-keygen -Y sign``, an ed25519 key
only root there can read) into ``<archive>.meta.json.sig``, before the archive is committed. The catalog entry
holds the archive's sha256 (which pins every byte of the archive, so its manifest and every member's sha256),
its name, type, time, host, app root, and its parent's name and archive sha256. A verifier given trusted public
keys (``allowed_signers`` or ``trusted_signing_keys``) checks the signature with ``ssh-keygen -Y verify`` and
then that the archive it reads is the one the entry names. No cryptography is done here: ssh-keygen does it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.sshsig import (
    SIGNATURE_SUFFIX, SidecarUnreadable, public_key_facts, read_sidecar, signature_facts,
)

NAMESPACE = "reddit-backup@devops"
TOOL = "ssh-keygen"
TIMEOUT = 60
META_SUFFIX = ".meta.json"
SIGNATURE_LIMIT = 1 << 16


class Unauthentic(BackupError):
    """A backup that may not be trusted: unsigned, signed by another key, or not what its signature names."""


def require_tool() -> str:
    path = shutil.which(TOOL)
    if path is None:
        raise BackupError("signed backups need ssh-keygen (Debian package openssh-client) on this host; install it")
    return path


def check_signing_key(path: str) -> str:
    """The signing key's path, once it is a private file: a regular file (not a link), owned by root or this user,
    readable by nobody else. Its content is never read here (only ssh-keygen reads it)."""
    if not path:
        raise BackupError("signing_key is empty; give the path of an ed25519 private key")
    path = os.path.abspath(path)
    try:
        info = os.lstat(path)
    except OSError as error:
        raise BackupError("signing_key %s cannot be used (%s); create it with `ssh-keygen -t ed25519 -N '' -f %s` as "
                          "root, or give the right path" % (path, error.strerror, path)) from None
    if stat.S_ISLNK(info.st_mode):
        raise BackupError("signing_key %s is a symlink; give the path of the key file itself (a link could be "
                          "pointed elsewhere by whoever can write its folder)" % path)
    if not stat.S_ISREG(info.st_mode):
        raise BackupError("signing_key %s is not a regular file; give the path of an ed25519 private key" % path)
    if info.st_uid not in (0, os.geteuid()):
        raise BackupError("signing_key %s belongs to uid %d; it must belong to root (or the user running the backup): "
                          "chown root:root %s" % (path, info.st_uid, path))
    if info.st_mode & 0o077:
        raise BackupError("signing_key %s has mode %04o; a private key must be readable by its owner alone: "
                          "chmod 600 %s"
                          % (path, info.st_mode & 0o7777, path))
    return path


def _run(arguments: list, data: bytes = b"") -> subprocess.CompletedProcess:
    """ssh-keygen with ``data`` on stdin, in its own session (a key with a passphrase fails instead of asking)."""
    try:
        return subprocess.run([require_tool()] + arguments, input=data, capture_output=True, timeout=TIMEOUT,
                              start_new_session=True, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError("ssh-keygen did not finish within %d s" % TIMEOUT) from None
    except OSError as error:
        raise BackupError("cannot run ssh-keygen: %s" % error.strerror) from None


def _first_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else "no message"


def sign(key_path: str, data: bytes) -> bytes:
    """An OpenSSH signature (armored) of ``data`` in this collection's namespace, made by ssh-keygen."""
    done = _run(["-Y", "sign", "-f", key_path, "-n", NAMESPACE], data)
    facts = signature_facts(done.stdout) if done.returncode == 0 else None
    if facts is None:
        raise BackupError("ssh-keygen could not sign with signing_key %s (%s); it must be an OpenSSH private key "
                          "without a passphrase, such as `ssh-keygen -t ed25519 -N ''` makes"
                          % (key_path, _first_line(done.stderr)))
    return done.stdout


def write_signature(archive: str, key_path: str, meta_bytes: bytes, write) -> dict:
    """Sign the catalog entry's bytes into ``<archive>.meta.json.sig`` with ``write`` (an atomic writer)."""
    signature = sign(key_path, meta_bytes)
    write(archive + SIGNATURE_SUFFIX, signature)
    facts = signature_facts(signature)
    return {"signature": archive + SIGNATURE_SUFFIX, "signature_key": facts["fingerprint"]}


@dataclass
class Authentic:
    """A catalog entry whose signature verified: the entry, as parsed from the bytes that were verified."""

    meta: dict
    principal: str
    fingerprint: str

    def describe(self) -> dict:
        return {"principal": self.principal, "key": self.fingerprint}


class Trust:
    """The public keys a verifier trusts, as one private allowed_signers file for ssh-keygen.
    ``with Trust(allowed_signers, keys) as trust: trust.authenticate(...)``."""

    def __init__(self, allowed_signers: str = None, keys=None) -> None:
        self.allowed_signers = allowed_signers
        self.keys = [str(key).strip() for key in (keys or []) if str(key).strip()]
        self.folder = None
        self.path = None

    def __enter__(self) -> "Trust":
        require_tool()
        lines = self._allowed_signers_lines() + self._key_lines()
        if not lines:
            raise BackupError("allowed_signers %s names no key; give the trusted public keys (one "
                              "`principal ssh-ed25519 AAAA...` line each)" % self.allowed_signers)
        self.folder = tempfile.mkdtemp(prefix="reddit-backup-trust-")
        self.path = os.path.join(self.folder, "allowed_signers")
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _allowed_signers_lines(self) -> list:
        if not self.allowed_signers:
            return []
        try:
            text = read_sidecar(self.allowed_signers, 1 << 20).decode("utf-8")
        except (SidecarUnreadable, UnicodeDecodeError) as error:
            raise BackupError("allowed_signers %s cannot be used: %s; give an OpenSSH allowed_signers file (see "
                              "ssh-keygen(1), ALLOWED SIGNERS)" % (self.allowed_signers, error)) from None
        if "PRIVATE KEY" in text:
            raise BackupError("allowed_signers %s holds a private key; it must hold public keys only (move the file "
                              "away: it may have been exposed)" % self.allowed_signers)
        return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def _key_lines(self) -> list:
        lines = []
        for number, key in enumerate(self.keys, 1):
            if "PRIVATE KEY" in key:
                raise BackupError("trusted_signing_keys item %d is a private key; give public keys only (the .pub "
                                  "file's line), and treat that private key as exposed" % number)
            if public_key_facts(key) is None:
                raise BackupError("trusted_signing_keys item %d is not an OpenSSH public key line (such as "
                                  "`ssh-ed25519 AAAA... root@app1`, as the .pub file holds it)" % number)
            lines.append('trusted-%d namespaces="%s" %s' % (number, NAMESPACE, " ".join(key.split()[:2])))
        return lines

    def verify(self, data: bytes, signature: bytes, what: str) -> Authentic:
        """Check that ``signature`` is a good signature of ``data`` by a trusted key; Unauthentic says why not."""
        facts = signature_facts(signature)
        if facts is None:
            raise Unauthentic("%s is not an OpenSSH signature" % what)
        if facts["namespace"] != NAMESPACE:
            raise Unauthentic("%s is a signature for %r, not for backups (%s)" % (what, facts["namespace"], NAMESPACE))
        signature_path = os.path.join(self.folder, "signature")
        with open(signature_path, "wb") as handle:
            handle.write(signature)
        found = _run(["-Y", "find-principals", "-s", signature_path, "-f", self.path, "-n", NAMESPACE])
        principals = found.stdout.decode("utf-8", "replace").split()
        if found.returncode != 0 or not principals:
            raise Unauthentic("%s was made with key %s, which is not a trusted signing key"
                              % (what, facts["fingerprint"]))
        checked = _run(["-Y", "verify", "-f", self.path, "-I", principals[0], "-n", NAMESPACE, "-s", signature_path],
                       data)
        if checked.returncode != 0:
            raise Unauthentic("%s does not match the catalog entry it should sign (made with trusted key %s, but the "
                              ".meta.json was altered, or the signature belongs to another backup)"
                              % (what, facts["fingerprint"]))
        try:
            meta = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            meta = None
        if not isinstance(meta, dict):
            raise Unauthentic("the signed catalog entry of %s is not a JSON object" % what)
        return Authentic(meta, principals[0], facts["fingerprint"])

    def authenticate(self, archive: str, meta_path: str = None, signature_path: str = None) -> Authentic:
        """The signed catalog entry of ``archive`` (its sidecars, or the copies at ``meta_path`` and
        ``signature_path``), once it verified and names this archive; Unauthentic says why not."""
        meta_path = meta_path or archive + META_SUFFIX
        signature_path = signature_path or archive + SIGNATURE_SUFFIX
        try:
            signature = read_sidecar(signature_path, SIGNATURE_LIMIT)
        except SidecarUnreadable as error:
            raise Unauthentic("%s is not signed (%s)" % (archive, error)) from None
        try:
            meta_bytes = read_sidecar(meta_path)
        except SidecarUnreadable as error:
            raise Unauthentic("the catalog entry of %s cannot be read: %s" % (archive, error)) from None
        signed = self.verify(meta_bytes, signature, "the signature of %s" % archive)
        problem = naming_problem(archive, signed.meta)
        if problem:
            raise Unauthentic(problem)
        return signed


def naming_problem(archive: str, meta: dict):
    """Why a signed catalog entry does not belong to ``archive`` (its file name must be the signed name), or None."""
    name, filename = meta.get("name"), os.path.basename(archive)
    if not isinstance(name, str) or not filename.startswith(name + ".tar"):
        return ("the signed catalog entry beside %s names backup %r: the file was renamed or its sidecars come from "
                "another backup" % (archive, name))
    sha256 = meta.get("sha256")
    if not (isinstance(sha256, str) and len(sha256) == 64):
        return "the signed catalog entry of %s names no archive sha256" % archive
    return None


def archive_problem(archive: str, signed: Authentic, actual_sha256) -> str:
    """Why the archive bytes read are not the ones the signature names, or None."""
    if actual_sha256 != signed.meta.get("sha256"):
        return ("%s is not the archive its signed catalog entry names: its sha256 is %s, the signed entry says %s (it "
                "was replaced or altered after it was signed)" % (archive, actual_sha256, signed.meta.get("sha256")))
    return None


def chain_problem(links: list) -> str:
    """Why a chain of authenticated links (root first) is not one chain, or None: every link after the root must
    name its parent's signed archive sha256."""
    for previous, link in zip(links, links[1:]):
        wanted = link.meta.get("parent_sha256")
        if wanted != previous.meta.get("sha256") or link.meta.get("parent") != previous.meta.get("name"):
            return ("backup %s builds on %s with archive sha256 %s, but the chain found %s with sha256 %s; the chain "
                    "was altered (or the parent was replaced)"
                    % (link.meta.get("name"), link.meta.get("parent"), wanted, previous.meta.get("name"),
                       previous.meta.get("sha256")))
    if links and links[0].meta.get("parent"):
        return "backup %s builds on %s, which is not part of the chain" % (
            links[0].meta.get("name"), links[0].meta.get("parent"))
    return None


def trust_from(allowed_signers=None, keys=None):
    """A Trust when any trusted key is given, else None (authenticity is then not checked)."""
    if allowed_signers or any(str(key).strip() for key in (keys or [])):
        return Trust(allowed_signers, keys)
    return None


NOT_CHECKED = ("not checked: no trusted signing keys were given (allowed_signers or trusted_signing_keys), so "
               "anyone who can write the backup store could have made this backup")


def authenticate_chain(trust: Trust, archive: str, backups: list) -> list:
    """The authenticated links of ``archive``'s chain, root first: each parent is found in ``backups`` (the
    catalog of its backup directory) by the archive sha256 its child's signed entry names, never by name alone."""
    links = [trust.authenticate(archive)]
    while links[0].meta.get("parent"):
        child = links[0].meta
        wanted = child.get("parent_sha256")
        if not wanted:
            raise Unauthentic("backup %s names its parent %s by name only (no parent_sha256 in its signed entry); "
                              "it cannot be authenticated as part of a chain"
                              % (child.get("name"), child.get("parent")))
        parent = next((b for b in backups if b.get("sha256") == wanted), None)
        if parent is None:
            raise Unauthentic("backup %s builds on %s (archive sha256 %s), which is not in the catalog: the chain is "
                              "broken or its parent was replaced" % (child.get("name"), child.get("parent"), wanted))
        links.insert(0, trust.authenticate(parent["archive"]))
        if len(links) > len(backups) + 1:
            raise Unauthentic("the chain of %s loops" % archive)
    problem = chain_problem(links)
    if problem:
        raise Unauthentic(problem)
    return links
