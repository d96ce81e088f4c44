"""Signed backups and remote copies, against the real sshd and S3 API servers of tests/servers.py: the signature
travels with its backup (sidecars first, the archive last), a pull with trusted keys takes only authentic backups
(a forgery planted on the store as the newest backup does not hide the newest genuine one), and what was pulled
verifies and restores with the trusted key."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._remote.sync import SyncRequest, sync
from tests.servers import backup_server, s3_server  # noqa: F401  (fixtures)
from tests.unit.plugins.module_utils.builders import (  # noqa: F401  (fixtures)
    MOMENT, age_key, forge, restore_into, signed_backup as backup, signer, sound_logging_conf, verify,
)


@pytest.fixture
def server_folder(backup_server):  # noqa: F811
    shutil.rmtree(backup_server.folder, ignore_errors=True)
    os.makedirs(backup_server.folder, 0o700)
    return backup_server


def test_a_signed_encrypted_backup_pushed_and_pulled_over_ssh_verifies_and_restores(
        server_folder, app, tmp_path, signer, age_key):  # noqa: F811
    identity, recipient = age_key
    made = backup(app, tmp_path / "backups", signer["host"][0], [recipient])
    pushed = sync(SyncRequest(backup_dir=str(tmp_path / "backups"), **server_folder.options()))
    relative = os.path.relpath(made["archive"], str(tmp_path / "backups"))
    assert pushed["transferred"][0]["files"] == [relative + ".sha256", relative + ".meta.json",
                                                 relative + ".meta.json.sig", relative]
    assert os.path.isfile(os.path.join(server_folder.folder, relative + ".meta.json.sig"))
    pulled = sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull", select="latest",
                              trusted_signing_keys=[signer["host"][1]], **server_folder.options()))
    assert [item["name"] for item in pulled["transferred"]] == [made["name"]]
    copy = list_backups(str(tmp_path / "new-server"))[0]
    assert copy["signed"] and copy["signature_key"] == made["signature_key"]
    verdict = verify(copy["archive"], [signer["host"][1]], identity=identity)
    assert verdict["valid"] and verdict["authenticated"], verdict
    result = restore_into(tmp_path / "new-server", tmp_path / "restored", [signer["host"][1]], identity)
    assert result["authenticated"] and (tmp_path / "restored" / "config" / "production.env").read_text() == \
        (app / "config" / "production.env").read_text()


def test_a_pull_with_trusted_keys_skips_a_forgery_planted_as_the_newest_backup(
        server_folder, app, tmp_path, signer, age_key):  # noqa: F811
    _identity, recipient = age_key
    genuine = backup(app, tmp_path / "backups", signer["host"][0], [recipient])
    newer = backup(app, tmp_path / "backups", signer["host"][0], [recipient], now=MOMENT + timedelta(days=1))
    sync(SyncRequest(backup_dir=str(tmp_path / "backups"), **server_folder.options()))
    # On the store, the newest backup is replaced by one made with the age public key alone (checksums recomputed).
    planted = dict(list_backups(str(tmp_path / "backups"))[-1])
    relative = os.path.relpath(newer["archive"], str(tmp_path / "backups"))
    planted["archive"] = os.path.join(server_folder.folder, relative)
    forge(tmp_path, app, planted, recipients=[recipient])
    # Without trusted keys the forgery is what a new server takes.
    naive = sync(SyncRequest(backup_dir=str(tmp_path / "naive"), direction="pull", select="latest",
                             **server_folder.options()))
    assert [item["name"] for item in naive["transferred"]] == [newer["name"]]
    assert list_backups(str(tmp_path / "naive"))[0]["sha256"] != newer["sha256"]
    careful = sync(SyncRequest(backup_dir=str(tmp_path / "careful"), direction="pull", select="latest",
                               trusted_signing_keys=[signer["host"][1]], **server_folder.options()))
    assert [item["name"] for item in careful["transferred"]] == [genuine["name"]]
    assert [item["name"] for item in careful["skipped"]] == [newer["name"]]
    assert "not authentic" in careful["skipped"][0]["reason"]
    assert [b["sha256"] for b in list_backups(str(tmp_path / "careful"))] == [genuine["sha256"]]


def test_a_pulled_archive_that_is_not_the_signed_one_is_not_kept(server_folder, app, tmp_path, signer):  # noqa: F811
    made = backup(app, tmp_path / "backups", signer["host"][0])
    sync(SyncRequest(backup_dir=str(tmp_path / "backups"), **server_folder.options()))
    relative = os.path.relpath(made["archive"], str(tmp_path / "backups"))
    on_server = os.path.join(server_folder.folder, relative)
    signed = {suffix: open(on_server + suffix, "rb").read() for suffix in (".meta.json", ".meta.json.sig")}
    planted = dict(list_backups(str(tmp_path / "backups"))[0], archive=on_server)
    forge(tmp_path, app, planted)
    for suffix, data in signed.items():  # the signed entry stays; the archive and .sha256 are the forger's
        with open(on_server + suffix, "wb") as handle:
            handle.write(data)
    forged_sha = open(on_server + ".sha256").read().split()[0]
    with pytest.raises(BackupError) as raised:
        sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull",
                         trusted_signing_keys=[signer["host"][1]], **server_folder.options()))
    assert relative in str(raised.value) and "was not kept" in str(raised.value)
    assert not list_backups(str(tmp_path / "new-server")) and forged_sha != made["sha256"]


def test_the_signature_travels_through_s3(s3_server, app, tmp_path, signer):  # noqa: F811
    made = backup(app, tmp_path / "backups", signer["host"][0])
    options = s3_server.options(s3_server.make_bucket("signed-backups"))
    sync(SyncRequest(backup_dir=str(tmp_path / "backups"), **options))
    relative = os.path.relpath(made["archive"], str(tmp_path / "backups"))
    assert "app1/%s.meta.json.sig" % relative in s3_server.keys("signed-backups")
    sync(SyncRequest(backup_dir=str(tmp_path / "new-server"), direction="pull",
                     trusted_signing_keys=[signer["host"][1]], **options))
    assert verify(list_backups(str(tmp_path / "new-server"))[0]["archive"], [signer["host"][1]])["authenticated"]


def test_trusted_keys_are_refused_for_a_push(server_folder, app, tmp_path, signer):  # noqa: F811
    backup(app, tmp_path / "backups", signer["host"][0])
    with pytest.raises(BackupError, match="for direction: push"):
        sync(SyncRequest(backup_dir=str(tmp_path / "backups"), trusted_signing_keys=[signer["host"][1]],
                         **server_folder.options()))
