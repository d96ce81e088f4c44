from __future__ import annotations

import json

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError


def manifest() -> dict:
    from datetime import datetime, timezone
    header = _manifest.new_header("full", "backup_x", datetime(2025, 5, 28, tzinfo=timezone.utc), "app1", "/app",
                                  None, "zstd")
    return dict(header, members=[{"path": "a", "type": "file", "size": 1, "mode": "0644", "mtime": 1,
                                  "sha256": "0" * 64}], databases=[], warnings=[])


def test_round_trip_one_member_per_line():
    data = _manifest.encode(manifest())
    assert _manifest.decode(data) == manifest()
    assert b'\n  {"mode": "0644", "mtime": 1, "path": "a"' in data


def test_catalog_entry_has_no_members():
    entry = _manifest.catalog_entry(manifest(), 10, "f" * 64)
    assert "members" not in entry and entry["files"] == 1 and entry["bytes"] == 1 and entry["size"] == 10
    assert json.loads(_manifest.encode(entry)) == entry


@pytest.mark.parametrize("data,match", [
    (b"{not json", "not valid JSON"),
    (b'{"format": "other"}', "not made by this collection"),
    (json.dumps({"format": _manifest.FORMAT, "format_version": 99}).encode(), "upgrade the collection"),
])
def test_decode_names_what_is_wrong(data, match):
    with pytest.raises(BackupError, match=match):
        _manifest.decode(data, "backup_x.tar.zst")
