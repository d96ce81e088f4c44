"""The archive reader: members streamed once and hashed, names and types checked, damage named by member.

The archive builders here (``tar_bytes``, ``write_archive``) are shared with the verify and restore tests."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import tarfile
import threading

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import read_checksum
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.compress import PIPE_BYTES
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.reader import (
    THREADED_HASH_MIN, ArchiveReader, DamagedArchive)
from ansible_collections.devops.reddit_backup.plugins.module_utils._archive.tarsafe import (
    check_path, escaping_symlinks, resolve_link)
from tests.unit.plugins.module_utils.builders import _add, entry, tar_bytes, write_archive


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


def _big_member_archive(tmp_path, compression: str) -> tuple:
    data = os.urandom(THREADED_HASH_MIN) + b"tail" * 1000  # hashed in its own thread (over the threshold)
    archive = write_archive(tmp_path, "big", tar_bytes([entry("data/big.bin", data=data)]), compression)
    return archive, data


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_a_member_hashed_in_a_thread_has_the_sha256_of_its_bytes(tmp_path, compression):
    archive, data = _big_member_archive(tmp_path, compression)
    with ArchiveReader(archive) as reader:
        read = {member.path: (b"".join(member.chunks()), member) for member in reader.members()}
    content, member = read["data/big.bin"]
    assert content == data and member.sha256 == hashlib.sha256(data).hexdigest()
    assert reader.manifest["members"][0]["sha256"] == member.sha256


def test_a_walk_stopped_inside_a_member_leaves_no_hashing_thread(tmp_path):
    archive, _data = _big_member_archive(tmp_path, "zstd")
    before = threading.active_count()
    with ArchiveReader(archive) as reader:
        member = next(reader.members())
        chunks = member.chunks()
        next(chunks)
        assert threading.active_count() > before  # the member's hashing thread runs
        chunks.close()  # the caller gives up half way (a failed write, a refused member)
    assert threading.active_count() == before and member.sha256 is None


def test_the_decompressor_writes_into_a_pipe_of_a_mebibyte(tmp_path):
    archive, _data = _big_member_archive(tmp_path, "zstd")
    with ArchiveReader(archive) as reader:
        assert fcntl.fcntl(reader._process.stdout.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
        assert fcntl.fcntl(reader._stages[0][1].stdin.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
        list(reader.members())
