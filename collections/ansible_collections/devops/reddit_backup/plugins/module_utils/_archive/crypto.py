# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encryption with age: recipients (public keys, all an app server needs), identity files (private keys, whose
content this collection never reads: only the ``age`` process opens them), and the age stages of the writer and
reader pipelines.

An encrypted archive is an age file (``backup_....tar.zst.age``) made while the archive streams:
``tar | zstd | age -e -r ... | hashed, written to the temp file``. No plaintext ever reaches the disk. The
``.sha256`` sidecar covers the ciphertext, so a quick check of the bytes needs no key.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

AGE_SUFFIX = ".age"
AGE_MAGIC = b"age-encryption.org/v1\n"
HEADER_LIMIT = 64 << 10  # an age header with a few hundred recipients; more means it is not an age header
# An age X25519 recipient: "age1" and 58 bech32 characters (the public half of `age-keygen`).
RECIPIENT_PATTERN = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
SECRET_PREFIX = "AGE-SECRET-KEY-"


class KeyNeeded(BackupError):
    """The archive is encrypted and no identity file was given."""


class WrongKey(BackupError):
    """The identity file holds no key the archive was encrypted to."""


def require_age(tool: str = "age") -> str:
    path = shutil.which(tool)
    if path is None:
        raise BackupError("%s is not installed on this host; install the age package (Debian: apt-get install age)"
                          % tool)
    return path


def is_encrypted(path: str) -> bool:
    return path.endswith(AGE_SUFFIX)


def plain_name(path: str) -> str:
    """The archive name without its ``.age`` suffix (what the compression suffix is read from)."""
    return path[: -len(AGE_SUFFIX)] if is_encrypted(path) else path


def normalize_recipients(recipients=None, recipients_file: str = None) -> list:
    """The age public keys of ``recipients`` and of the lines of ``recipients_file`` (``#`` comments and blank
    lines skipped), without duplicates, in order. A private key given by mistake is refused without showing it."""
    found = []
    for item in recipients or []:
        found.append(("encryption_recipients", str(item).strip()))
    if recipients_file:
        try:
            with open(recipients_file, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise BackupError("cannot read encryption_recipients_file %s (%s); it should hold age public keys "
                              "(age1...), one a line" % (recipients_file, getattr(error, "strerror", error))) \
                from error
        found += [("%s line %d" % (recipients_file, number), line.strip())
                  for number, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")]
    keys = []
    for where, key in found:
        if key.upper().startswith(SECRET_PREFIX):
            raise BackupError("%s holds an age private key, not a public key; give the public key instead (age-keygen "
                              "-y KEYFILE prints it), and keep private keys off app servers" % where)
        if not RECIPIENT_PATTERN.match(key):
            raise BackupError("%s: %r is not an age public key (age1 and 58 more characters, as age-keygen prints)"
                              % (where, key[:80]))
        if key not in keys:
            keys.append(key)
    if recipients_file and not keys:
        raise BackupError("encryption_recipients_file %s holds no age public key" % recipients_file)
    return keys


def encrypt_command(recipients: list) -> list:
    """age reading plaintext on stdin and writing ciphertext to stdout. Public keys may be on a command line."""
    command = [require_age(), "--encrypt"]
    for key in recipients:
        command += ["--recipient", key]
    return command


def check_identity_file(path: str) -> str:
    """The identity file's absolute path, once it is known to be a private (0600) regular file. Its content is
    not read here."""
    path = os.path.abspath(path)
    try:
        info = os.stat(path)
    except OSError as error:
        raise BackupError("identity_file %s cannot be used: %s; give the path of the age private key file"
                          % (path, error.strerror)) from error
    if not stat.S_ISREG(info.st_mode):
        raise BackupError("identity_file %s is not a regular file; give the path of the age private key file" % path)
    if info.st_mode & 0o077:
        raise BackupError("identity_file %s is readable by others (mode %04o); a private key must be 0600: chmod 600 "
                          "%s" % (path, info.st_mode & 0o7777, path))
    if not os.access(path, os.R_OK):
        raise BackupError("identity_file %s is not readable by this user; run as its owner" % path)
    return path


def decrypt_command(identity_file: str) -> list:
    """age reading ciphertext on stdin and writing plaintext to stdout; only age opens the key file."""
    return [require_age(), "--decrypt", "--identity", check_identity_file(identity_file)]


def identity_public_keys(identity_file: str) -> list:
    """The public keys of the identities in ``identity_file``, from ``age-keygen -y`` (run as its own process,
    so the private key never enters this one); empty when they cannot be had."""
    tool = shutil.which("age-keygen")
    if tool is None:
        return []
    try:
        completed = subprocess.run([tool, "-y", identity_file], stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if completed.returncode != 0:
        return []
    return [line for line in completed.stdout.decode(errors="replace").split() if RECIPIENT_PATTERN.match(line)]


def classify_failure(stderr: str) -> str:
    """What age's complaint means: ``wrong_key``, ``damaged`` (the ciphertext or its header was altered, cut or
    is not an age file), ``identity`` (the key file is unusable) or ``other``."""
    text = stderr.lower()
    if "no identity matched" in text:
        return "wrong_key"
    if "reading \"" in text or "failed to open file" in text or ("identity" in text and "malformed" in text):
        return "identity"
    if any(sign in text for sign in ("authenticate", "header", "unexpected intro", "truncated", "unexpected eof",
                                     "failed to read", "malformed")):
        return "damaged"
    return "other"


def last_message(stderr: str) -> str:
    """age's error line without its "report unexpected errors" trailer."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "report unexpected" not in line]
    return lines[-1] if lines else ""


def wrong_key_error(archive: str, identity_file: str, recipients=None) -> WrongKey:
    keys = identity_public_keys(identity_file)
    have = " (public key %s)" % ", ".join(keys) if keys else ""
    wanted = " It was encrypted to %s." % ", ".join(recipients) if recipients else ""
    return WrongKey("the key in %s%s does not match %s: no identity in it matches the archive's recipients.%s Give "
                    "the identity file of one of its recipients" % (identity_file, have, archive, wanted))


def key_needed_error(archive: str, recipients=None) -> KeyNeeded:
    wanted = " (encrypted to %s)" % ", ".join(recipients) if recipients else ""
    return KeyNeeded("%s is encrypted%s: give identity_file, the age private key file of one of its recipients, "
                     "to read what is inside (a quick check of its checksum needs no key)" % (archive, wanted))


def header_problem(path: str):
    """Why the start of ``path`` is not a sound age header, or None; with the number of recipient stanzas.
    Returns (problem, stanzas)."""
    try:
        with os.fdopen(_fs.open_regular(path, what="archive"), "rb") as handle:
            head = handle.read(HEADER_LIMIT)
    except OSError as error:
        return "it cannot be read (%s)" % error.strerror, 0
    except BackupError as error:
        return str(error), 0
    if not head.startswith(AGE_MAGIC):
        return "it does not start with the age header (%s)" % AGE_MAGIC.decode().strip(), 0
    stanzas = 0
    for line in head[len(AGE_MAGIC):].split(b"\n"):
        if line.startswith(b"-> "):
            stanzas += 1
        elif line.startswith(b"--- "):
            return (None, stanzas) if stanzas else ("its age header names no recipient", 0)
    return "its age header does not end within %d bytes" % HEADER_LIMIT, stanzas


def ciphertext_checks(archive: str, meta, sidecar_sha256, sidecar_error, actual_sha256: str, check) -> list:
    """The checks a quick verification of an encrypted archive can make without its key: the ciphertext against
    its `.sha256` sidecar and its catalog entry, and the age header (one stanza per recipient named in the catalog
    entry). ``check(name, ok, detail, status=None)`` builds each check."""
    checks = []
    if sidecar_error:
        checks.append(check("checksum", False, sidecar_error))
    else:
        matches = actual_sha256 == sidecar_sha256
        checks.append(check("checksum", matches, "the ciphertext's sha256 matches its .sha256 sidecar" if matches
                            else "the ciphertext's sha256 is %s, its .sha256 sidecar says %s"
                            % (actual_sha256, sidecar_sha256)))
    problem, stanzas = header_problem(archive)
    recipients = ((meta or {}).get("encryption") or {}).get("recipients") if isinstance(meta, dict) else None
    if problem is None and isinstance(recipients, list) and stanzas != len(recipients):
        problem = "its age header has %d recipient stanzas, its catalog entry names %d recipients" % (
            stanzas, len(recipients))
    checks.append(check("encryption", problem is None, "%s is not a sound age file: %s" % (archive, problem)
                        if problem else "an age file to %d recipients" % stanzas))
    if meta is None:
        checks.append(check("catalog", True, "skipped: no readable .meta.json beside the archive", "skipped"))
    else:
        differing = ["the catalog entry says %s %s, the ciphertext's is %s" % (key, meta.get(key), value)
                     for key, value in (("sha256", actual_sha256), ("size", os.path.getsize(archive)))
                     if meta.get(key) != value]
        if not isinstance(recipients, list):
            differing.append("the catalog entry names no recipients: it does not describe an encrypted archive")
        checks.append(check("catalog", not differing, differing or "the catalog entry describes this ciphertext"))
    checks.append(check("contents", True, "skipped: the archive is encrypted and no identity_file was given; the tar "
                        "stream, manifest and members inside were not read", "skipped"))
    return checks
