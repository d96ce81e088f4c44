# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading OpenSSH signature files and public key lines as data (which key, which namespace), never to judge
them: whether a signature is good is always ``ssh-keygen -Y verify``'s call (see _signing)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._fs import read_regular

SIGNATURE_SUFFIX = ".meta.json.sig"  # what is signed: the .meta.json sidecar's bytes
SIDECAR_LIMIT = 16 << 20  # a sidecar larger than this is not one of ours
ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
ARMOR_END = "-----END SSH SIGNATURE-----"


class SidecarUnreadable(Exception):
    """A sidecar that is missing, not a regular file, or too large to be one of ours (its message says which)."""


def read_sidecar(path: str, limit: int = SIDECAR_LIMIT) -> bytes:
    """The bytes of a sidecar, read as _fs.read_regular reads (no symlink followed, no FIFO waited on, at most
    ``limit`` bytes); every refusal is a SidecarUnreadable that says which."""
    try:
        return read_regular(path, limit)
    except FileNotFoundError:
        raise SidecarUnreadable("%s is missing" % path) from None
    except OSError as error:
        raise SidecarUnreadable("%s cannot be read (%s)" % (path, error.strerror)) from None
    except BackupError as error:
        raise SidecarUnreadable(str(error)) from None


def fingerprint(public_key_blob: bytes) -> str:
    """The key's fingerprint as ``ssh-keygen -l`` prints it (SHA256:...)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(public_key_blob).digest()).decode().rstrip("=")


def _strings(blob: bytes, offset: int, count: int) -> tuple:
    values = []
    for _index in range(count):
        if offset + 4 > len(blob):
            raise ValueError("cut short")
        (length,) = struct.unpack(">I", blob[offset:offset + 4])
        offset += 4
        if offset + length > len(blob):
            raise ValueError("cut short")
        values.append(blob[offset:offset + length])
        offset += length
    return values, offset


def signature_facts(armored: bytes):
    """{key_type, fingerprint, namespace} of an OpenSSH signature file (untrusted: read, not verified), or None
    when it is not one."""
    try:
        text = armored.decode("ascii").strip()
        if not (text.startswith(ARMOR_BEGIN) and text.endswith(ARMOR_END)):
            return None
        blob = base64.b64decode("".join(text[len(ARMOR_BEGIN):-len(ARMOR_END)].split()), validate=True)
        if not blob.startswith(b"SSHSIG") or len(blob) < 10:
            return None
        (public_key, namespace), _offset = _strings(blob, 10, 2)
        (key_type,), _offset = _strings(public_key, 0, 1)
        return {"key_type": key_type.decode("ascii"), "fingerprint": fingerprint(public_key),
                "namespace": namespace.decode("utf-8")}
    except (UnicodeDecodeError, ValueError, binascii.Error):
        return None


def public_key_facts(line: str):
    """{key_type, fingerprint} of a public key line (``ssh-ed25519 AAAA... comment``), or None when it is not one."""
    fields = str(line).split()
    if len(fields) < 2:
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
        (key_type,), _offset = _strings(blob, 0, 1)
    except (ValueError, binascii.Error):
        return None
    if key_type.decode("ascii", "replace") != fields[0]:
        return None
    return {"key_type": fields[0], "fingerprint": fingerprint(blob)}


def signature_summary(archive: str) -> dict:
    """What the catalog shows of a backup's signature: whether there is one and the key it names. Untrusted: a
    verification with trusted keys decides whether it is good."""
    try:
        facts = signature_facts(read_sidecar(archive + SIGNATURE_SUFFIX, 1 << 16))
    except SidecarUnreadable:
        return {"signed": False, "signature_key": None}
    return {"signed": facts is not None, "signature_key": facts["fingerprint"] if facts else None}
