# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judging a manifest: its shape, its header against the catalog entry beside the archive, and its member records
against the members actually read. Every message names the member or key at fault."""

from __future__ import annotations

import json

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._database.pages import DELTA_SUFFIX

MEMBER_TYPES = ("file", "dir", "symlink", "pagedelta")  # a pagedelta is a file in the tar: a database's changed pages
CATALOG_ONLY_KEYS = {"size", "sha256", "files", "bytes"}  # what the catalog entry adds to the manifest's header
MESSAGES_KEPT = 50  # per check; a wholly foreign archive should not produce a million-line result


def check(name: str, ok: bool, detail, status: str = None) -> dict:
    """One check of a verification: ``status`` is passed, failed or skipped (skipped counts as ok)."""
    if isinstance(detail, list):
        shown = detail[:MESSAGES_KEPT]
        if len(detail) > MESSAGES_KEPT:
            shown.append("and %d more" % (len(detail) - MESSAGES_KEPT))
        detail = "; ".join(shown)
    return {"name": name, "ok": ok, "status": status or ("passed" if ok else "failed"), "detail": detail}


def catalog_check(manifest: dict, meta) -> dict:
    """The manifest's header against the catalog entry written beside the archive (`.meta.json`): the two were
    written from the same data, so any difference is damage to one of them, named by key."""
    if meta is None:
        return check("catalog", True, "skipped: no readable .meta.json beside the archive", "skipped")
    header = {key: value for key, value in manifest.items() if key != "members"}
    differing = []
    for key in sorted(set(header) | set(meta) - CATALOG_ONLY_KEYS):
        found, wanted = header.get(key, _ABSENT), meta.get(key, _ABSENT)
        if found != wanted or type(found) is not type(wanted):
            differing.append("%s is %s in the manifest but %s in the catalog entry" % (key, _brief(found),
                                                                                       _brief(wanted)))
    return check("catalog", not differing, differing or "the manifest's header matches the .meta.json catalog entry")


def catalog_says_known_format(meta) -> bool:
    """True when the catalog entry beside the archive names the format this collection reads, so a manifest
    naming another version was damaged rather than written by a newer collection."""
    return bool(meta) and meta.get("format") == _manifest.FORMAT and meta.get("format_version") == \
        _manifest.FORMAT_VERSION


def _brief(value) -> str:
    text = "absent" if value is _ABSENT else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def manifest_problems(manifest: dict) -> list:
    """What makes a decoded manifest unusable (wrong shapes), in words."""
    problems = []
    if not isinstance(manifest.get("members"), list):
        return ["it has no member list"]
    if not isinstance(manifest.get("databases"), list):
        problems.append("it has no database list")
    for index, entry in enumerate(manifest["members"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) \
                or entry.get("type") not in MEMBER_TYPES \
                or (entry["type"] == "pagedelta" and entry["path"] != "%s%s" % (entry.get("database"), DELTA_SUFFIX)):
            problems.append("member entry %d is malformed: %r" % (index, entry))
            if len(problems) > MESSAGES_KEPT:
                break
    for index, entry in enumerate(manifest.get("databases") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            problems.append("database entry %d is malformed: %r" % (index, entry))
    return problems


def compare_members(listed: list, observed: dict, hashed: bool) -> tuple:
    """(listing problems, content problems): members missing, unlisted or with other metadata than the
    manifest records; and, when ``hashed``, members whose sha256 differs. Each message names the member."""
    listing, content = [], []
    entries: dict = {}
    for entry in listed:
        if entry["path"] in entries:
            listing.append("the manifest lists %s twice" % entry["path"])
        entries[entry["path"]] = entry
    for path, entry in entries.items():
        member = observed.get(path)
        if member is None:
            listing.append("%s is listed in the manifest but missing from the archive" % path)
            continue
        if member.kind != ("file" if entry["type"] == "pagedelta" else entry["type"]):
            listing.append("%s is a %s in the archive but a %s in the manifest" % (path, member.kind, entry["type"]))
            continue
        # The record must be exactly what the writer records for this member: same keys, same values, same
        # JSON types ("0644" and " 644" are one number but not one manifest; a dir has "size": 0, no "target").
        record = member.record()
        if entry["type"] == "pagedelta":
            record.update(type="pagedelta", database=path[:-len(DELTA_SUFFIX)])
        for key in sorted(set(record) | set(entry)):
            if key == "sha256" and member.kind == "file":
                continue  # compared below, once hashed
            found, wanted = record.get(key, _ABSENT), entry.get(key, _ABSENT)
            if found != wanted or type(found) is not type(wanted):
                listing.append("%s: its %s is %s in the archive, %s in the manifest"
                               % (path, key, _show(found), _show(wanted)))
        if member.kind == "file" and not (isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64):
            listing.append("%s: its manifest record has no sha256" % path)
        if hashed and member.kind == "file" and member.sha256 != entry.get("sha256"):
            content.append("%s: its bytes do not match the manifest (sha256 %s, recorded %s)"
                           % (path, member.sha256, entry.get("sha256")))
    listing += ["%s is in the archive but not in its manifest" % path for path in observed if path not in entries]
    return listing, content


_ABSENT = object()


def _show(value) -> str:
    return "absent" if value is _ABSENT else json.dumps(value)
