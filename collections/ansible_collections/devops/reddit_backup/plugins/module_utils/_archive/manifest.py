# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest: what an archive holds, written as its last member and (without members) as its catalog entry."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

MANIFEST_NAME = "MANIFEST.json"
FORMAT = "devops.reddit_backup/archive"
FORMAT_VERSION = 1
TOOL_VERSION = "0.1.0"


def utc_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with a Z, to the second: the form every timestamp in manifests and results takes."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_header(backup_type: str, name: str, created: datetime, host: str, app_root: str, parent, compression: str
               ) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": utc_timestamp(created),
        "type": backup_type,
        "name": name,
        "host": host,
        "app_root": app_root,
        "parent": parent,
        "tool_version": TOOL_VERSION,
        "compression": compression,
    }


def encode(manifest: dict) -> bytes:
    """One member per line: readable with `tar -xO ... MANIFEST.json | less`, compact for big trees."""
    if "members" not in manifest:
        return (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode()
    members = manifest["members"]
    head = {key: value for key, value in manifest.items() if key != "members"}
    lines = [json.dumps(member, sort_keys=True) for member in members]
    body = json.dumps(head, sort_keys=True, indent=1)[:-2]
    return ('%s,\n "members": [\n  %s\n ]\n}\n' % (body, ",\n  ".join(lines))).encode()


def decode(data: bytes, source: str = "archive") -> dict:
    """Parse and check a manifest; raise BackupError naming what is wrong."""
    try:
        manifest = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError) as error:
        raise BackupError("the manifest of %s is not valid JSON (%s); the archive is damaged" % (source, error)) \
            from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("%s has no devops.reddit_backup manifest; it was not made by this collection" % source)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError("%s has manifest format %s; this collection reads format %s: upgrade the collection"
                          % (source, manifest.get("format_version"), FORMAT_VERSION))
    return manifest


def catalog_entry(manifest: dict, size: int, sha256: str) -> dict:
    """The manifest without its member list, plus the archive's own size and checksum: the `.meta.json` sidecar.

    It names no file contents, so it is safe beside an encrypted archive.
    """
    entry = {key: value for key, value in manifest.items() if key != "members"}
    files = [member for member in manifest.get("members", []) if member["type"] == "file"]
    entry.update({"size": size, "sha256": sha256, "files": len(files),
                  "bytes": sum(member["size"] for member in files)})
    return entry
