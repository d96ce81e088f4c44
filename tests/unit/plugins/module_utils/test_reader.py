"""The archive reader: members streamed once and hashed, names and types checked, damage named by member.

The archive builders here (``tar_bytes``, ``write_archive``) are shared with the verify and restore tests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import read_checksum
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.reader import ArchiveReader, DamagedArchive
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.tarsafe import (
    check_path, escaping_symlinks, resolve_link)

MTIME = 1764208800
_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
          "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE}


def entry(name, kind="file", data=b"", mode=None, target=None, mtime=MTIME) -> dict:
    return {"name": name, "kind": kind, "data": data, "target": target, "mtime": mtime,
            "mode": mode if mode is not None else (0o755 if kind == "dir" else 0o777 if kind == "symlink" else 0o644)}


def manifest_for(entries, databases=(), backup_type="full") -> dict:
    """The manifest this collection would write for ``entries`` (hostile ones listed as they are)."""
    members = []
    for item in entries:
        kind = item["kind"] if item["kind"] in ("file", "dir", "symlink") else "file"
        record = {"path": item["name"], "type": kind, "size": len(item["data"]) if kind == "file" else 0,
                  "mode": "%04o" % item["mode"], "mtime": item["mtime"],
                  "sha256": hashlib.sha256(item["data"]).hexdigest() if kind == "file" else None}
        if kind == "symlink":
            record["target"] = item["target"]
        members.append(record)
    dbs = []
    for path in databases:
        data = next(item["data"] for item in entries if item["name"] == path)
        dbs.append({"path": path, "page_size": 4096, "page_count": len(data) // 4096, "journal_mode": "wal",
                    "integrity": "ok", "integrity_level": "quick", "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest()})
    header = _manifest.new_header(backup_type, "hostile", __import__("datetime").datetime(2026, 11, 27),
                                  "test", "/app", None, "none")
    return dict(header, members=members, databases=dbs, warnings=[])


def tar_bytes(entries, manifest=True, after_manifest=(), databases=(), backup_type="full") -> bytes:
    """A pax tar of ``entries``, then MANIFEST.json (built from them unless given), then ``after_manifest``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in list(entries):
            _add(tar, item)
        if manifest is not None:
            data = manifest if isinstance(manifest, bytes) else _manifest.encode(
                manifest_for(entries, databases, backup_type) if manifest is True else manifest)
            _add(tar, entry(_manifest.MANIFEST_NAME, data=data, mode=0o600))
        for item in after_manifest:
            _add(tar, item)
    return buffer.getvalue()


def _add(tar, item) -> None:
    info = tarfile.TarInfo(item["name"])
    info.type = _TYPES[item["kind"]]
    info.mode = item["mode"]
    info.mtime = item["mtime"]
    if item["kind"] in ("symlink", "hardlink"):
        info.linkname = item["target"]
    if item["kind"] == "file":
        info.size = len(item["data"])
        tar.addfile(info, io.BytesIO(item["data"]))
    else:
        tar.addfile(info)


def write_archive(folder, name: str, data: bytes, compression: str = "none", meta=None) -> str:
    """Write ``data`` (a tar) as an archive with both sidecars, as backup_create would lay it out."""
    suffix = {"none": ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst"}[compression]
    path = os.path.join(str(folder), name + suffix)
    os.makedirs(str(folder), exist_ok=True)
    if compression == "gzip":
        data = subprocess.run(["gzip", "-n", "-c"], input=data, capture_output=True, check=True).stdout
    elif compression == "zstd":
        data = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    with open(path, "wb") as handle:
        handle.write(data)
    resign(path)
    with open(path + ".meta.json", "w") as handle:
        json.dump(meta if meta is not None else {"type": "full", "name": name, "created": "2026-11-27T00:00:00Z"},
                  handle)
    return path


def resign(path: str) -> None:
    """Recompute the checksum sidecar, as an attacker (or a damaged copy tool) would."""
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with open(path + ".sha256", "w") as handle:
        handle.write("%s  %s\n" % (digest, os.path.basename(path)))


def read_all(archive: str, hash_members: bool = True) -> tuple:
    with ArchiveReader(archive, hash_members) as reader:
        members = list(reader.members())
    return reader, members


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_a_real_backup_reads_back_whole(app, tmp_path, compression):
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"), compression=compression))
    reader, members = read_all(made["archive"])
    assert reader.archive_sha256 == read_checksum(made["archive"]) and not reader.problems
    assert [m.path for m in members] == [m["path"] for m in reader.manifest["members"]]
    assert [m.problem for m in members] == [None] * len(members)
    by_path = {m["path"]: m for m in reader.manifest["members"]}
    assert all(m.sha256 == by_path[m.path]["sha256"] for m in members)
    assert reader.member_count == len(members)


@pytest.mark.parametrize("name, refused", [
    ("config/production.env", False), ("a", False), ("/etc/passwd", True), ("../outside", True),
    ("config/../../x", True), ("./config", True), ("config//x", True), ("", True), ("a\0b", True),
    ("x" * 256, True), ("a/" * 2100 + "b", True),
])
def test_member_names(name, refused):
    assert (check_path(name) is not None) is refused


def test_symlinks_are_resolved_through_each_other():
    links = {"d/up": "..", "chain": "d/up/..", "ok": "d/up/config", "loop1": "loop2", "loop2": "loop1",
             "abs": "/etc", "inside": "config/x"}
    assert resolve_link("d/up", "..", links) == []
    assert resolve_link("chain", "d/up/..", links) is None  # lexically inside, physically above the root
    assert resolve_link("ok", "d/up/config", links) == ["config"]
    assert {path for path, _target in escaping_symlinks(links)} == {"chain", "loop1", "loop2", "abs"}


@pytest.mark.parametrize("hostile, words", [
    (entry("/etc/cron.d/evil", data=b"x"), "absolute"),
    (entry("../evil", data=b"x"), "'..'"),
    (entry("link", "hardlink", target="/etc/passwd"), "hard link"),
    (entry("dev", "chr"), "character device"),
    (entry("blk", "blk"), "block device"),
    (entry("pipe", "fifo"), "FIFO"),
    (entry("up", "symlink", target="../../etc"), "outside"),
    (entry("abs", "symlink", target="/etc"), "outside"),
])
def test_hostile_members_are_flagged(tmp_path, hostile, words):
    archive = write_archive(tmp_path, "hostile", tar_bytes([entry("config", "dir"), hostile]))
    _reader, members = read_all(archive)
    assert members[0].problem is None
    assert words in members[1].problem and hostile["name"] in members[1].problem


def test_duplicates_and_members_beneath_links_are_flagged(tmp_path):
    archive = write_archive(tmp_path, "hostile", tar_bytes([
        entry("config", "symlink", target="data"), entry("config/x", data=b"1"), entry("data", "dir"),
        entry("data/a", data=b"1"), entry("data/a", data=b"2"), entry("data/a/b", data=b"3"),
        entry("data/c/d", data=b"4"), entry("data/c", data=b"5")]))
    _reader, members = read_all(archive)
    problems = [m.problem for m in members]
    assert problems[0] is None and "beneath config" in problems[1]
    assert problems[2] is None and problems[3] is None
    assert "twice" in problems[4] and "beneath data/a" in problems[5]
    assert problems[6] is None and "earlier members lie beneath it" in problems[7]


def test_a_member_after_the_manifest_is_damage(tmp_path):
    archive = write_archive(tmp_path, "late", tar_bytes([entry("a", data=b"1")],
                                                        after_manifest=[entry("b", data=b"2")]))
    with pytest.raises(DamagedArchive, match="member b follows MANIFEST.json"):
        read_all(archive)


def test_an_oversized_extended_header_is_refused_before_it_is_read(tmp_path):
    info = tarfile.TarInfo("big")
    info.pax_headers = {"comment": "x" * (2 << 20)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, entry("a", data=b"1"))
        tar.addfile(info)
    archive = write_archive(tmp_path, "pax", buffer.getvalue())
    with pytest.raises(DamagedArchive, match="an extended header of"):
        read_all(archive)


def test_the_manifest_must_come_at_all(tmp_path):
    archive = write_archive(tmp_path, "none", tar_bytes([entry("a", data=b"1")], manifest=None))
    with pytest.raises(DamagedArchive, match="ends before MANIFEST.json"):
        read_all(archive)


def test_bytes_after_the_end_and_in_padding_are_found(tmp_path):
    data = bytearray(tar_bytes([entry("a", data=b"1")]))
    tail = bytearray(data)
    tail[-10] = 1
    with pytest.raises(DamagedArchive, match="non-zero bytes"):
        read_all(write_archive(tmp_path, "tail", bytes(tail)))
    padded = bytearray(data)
    data_offset = padded.index(b"1", 512)  # the content of "a" sits in the block after its headers
    padded[data_offset + 5] = 7
    reader, _members = read_all(write_archive(tmp_path, "padding", bytes(padded)))
    assert reader.problems and "padding after member a" in reader.problems[0]


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_truncation_names_the_member_being_read(app, tmp_path, compression):
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"), compression=compression))
    size = os.path.getsize(made["archive"])
    with open(made["archive"], "r+b") as handle:
        handle.truncate(size * 2 // 3)
    with pytest.raises(DamagedArchive) as raised:
        read_all(made["archive"])
    # Uncompressed, the member whose data ends early is named; compressed, the decompressor says why.
    assert "is damaged at" in str(raised.value) or "is damaged after" in str(raised.value)
    assert ("member" if compression == "none" else "%s failed" % compression) in str(raised.value)


def test_not_an_archive_at_all(tmp_path):
    path = tmp_path / "junk.tar.zst"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(DamagedArchive, match="zstd failed"):
        read_all(str(path))
