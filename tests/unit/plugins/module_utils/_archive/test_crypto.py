"""Encryption with age: real keys made here, the archive encrypted as it streams, verify and restore with, without
and with the wrong key, tampered and cut ciphertext, what the catalog keeps beside an encrypted archive, and the
wheelhouse a full backup carries."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import crypto as _crypto
from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive
from tests.unit.plugins.module_utils.builders import SAMPLE_LOGGING, make_key

pytestmark = pytest.mark.skipif(shutil.which("age") is None or shutil.which("age-keygen") is None,
                                reason="age is needed (tools/setup.sh installs it)")


@pytest.fixture
def keys(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: (str(folder / name), make_key(folder / name)) for name in ("operator", "offsite", "stranger")}


@pytest.fixture
def encrypted(app, tmp_path, keys):
    shutil.copy(SAMPLE_LOGGING, str(app / "config" / "logging.conf"))  # one that passes the configuration checks
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups"),
                                       encryption_recipients=[keys["operator"][1], keys["offsite"][1]]))


def resign(archive: str) -> None:
    """Whoever altered the archive also rewrote its .sha256 sidecar."""
    with open(archive, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    with open(archive + ".sha256", "w") as handle:
        handle.write("%s  %s\n" % (digest, os.path.basename(archive)))


def test_recipients_from_options_and_a_file(tmp_path, keys):
    listed = tmp_path / "recipients.txt"
    listed.write_text("# the offsite key\n%s\n\n%s\n" % (keys["offsite"][1], keys["operator"][1]))
    found = _crypto.normalize_recipients([keys["operator"][1]], str(listed))
    assert found == [keys["operator"][1], keys["offsite"][1]]


def test_a_private_key_given_as_a_recipient_is_refused_without_showing_it(tmp_path, keys):
    secret = open(keys["stranger"][0]).read().split("\n")[-2].strip()
    assert secret.startswith("AGE-SECRET-KEY-")
    with pytest.raises(BackupError, match="private key, not a public key") as raised:
        _crypto.normalize_recipients([secret])
    assert secret not in str(raised.value)
    with pytest.raises(BackupError, match="not an age public key"):
        _crypto.normalize_recipients(["age1notakey"])


def test_the_archive_is_encrypted_as_it_streams(app, tmp_path, keys, monkeypatch):
    first_bytes = []
    real_open = _fs.open_private

    def spying_open(path):
        handle = real_open(path)
        real_write = handle.write

        def write(data):
            if not first_bytes and os.path.basename(path).startswith(_fs.TEMP_PREFIX + "backup_"):
                first_bytes.append(bytes(data[:64]))
            return real_write(data)
        handle.write = write
        return handle
    monkeypatch.setattr(_fs, "open_private", spying_open)
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"),
                                       encryption_recipients=[keys["operator"][1]]))
    # The very first bytes that reached the temp file were already age's: no plaintext was ever on disk.
    assert first_bytes and first_bytes[0].startswith(_crypto.AGE_MAGIC)
    assert made["archive"].endswith(".tar.zst.age") and made["encrypted"]
    assert [b["archive"] for b in list_backups(str(tmp_path / "b"))] == [made["archive"]]
    with open(made["archive"], "rb") as handle:
        data = handle.read()
    assert data.startswith(_crypto.AGE_MAGIC) and b"reddit_sentiment" not in data
    assert hashlib.sha256(data).hexdigest() == made["sha256"]  # the sidecar covers the ciphertext


def test_the_catalog_entry_names_no_file_contents(encrypted, keys):
    with open(encrypted["archive"] + ".meta.json") as handle:
        meta = json.load(handle)
    assert meta["encryption"] == {"tool": "age", "recipients": [keys["operator"][1], keys["offsite"][1]]}
    assert "members" not in meta and "config/production.env" not in json.dumps(meta)


def test_quick_verify_needs_no_key(encrypted):
    result = verify_archive(encrypted["archive"], "quick")
    assert result["valid"], result["errors"]
    assert [c["name"] for c in result["checks"]] == ["checksum", "encryption", "catalog", "contents"]
    assert result["checks"][-1]["status"] == "skipped"


def test_comprehensive_verify_without_the_key_says_one_is_needed(encrypted):
    result = verify_archive(encrypted["archive"])
    assert result["status"] == "unverifiable" and "give identity_file" in result["reason"]


def test_verify_with_either_recipients_key(encrypted, keys):
    for name in ("operator", "offsite"):
        result = verify_archive(encrypted["archive"], identity_file=keys[name][0], record=False)
        assert result["valid"], result["errors"]
        assert "database:data/reddit_sentiment.db" in {c["name"] for c in result["checks"]}


def test_a_wrong_key_says_so(encrypted, keys):
    result = verify_archive(encrypted["archive"], identity_file=keys["stranger"][0])
    assert result["status"] == "unverifiable"
    assert "does not match" in result["reason"] and keys["stranger"][1] in result["reason"]
    assert keys["operator"][1] in result["reason"]  # the recipients it was encrypted to


def test_an_identity_file_others_can_read_is_refused(encrypted, keys):
    os.chmod(keys["operator"][0], 0o644)
    result = verify_archive(encrypted["archive"], identity_file=keys["operator"][0], record=False)
    assert result["status"] == "unverifiable" and "chmod 600" in result["reason"]


@pytest.mark.parametrize("where", ["payload", "header", "end"])
def test_tampered_ciphertext_is_detected(encrypted, keys, where):
    archive = encrypted["archive"]
    data = bytearray(open(archive, "rb").read())
    if where == "payload":
        data[len(data) // 2] ^= 0x01
    elif where == "header":
        data[data.index(b"\n---") + 8] ^= 0x01  # the header's MAC
    else:
        data = data[:-100]  # cut short
    open(archive, "wb").write(bytes(data))
    quick = verify_archive(archive, "quick", record=False)
    assert quick["status"] == "invalid" and "checksum" in quick["reason"]
    resign(archive)  # even with a matching sidecar, age's authentication catches it
    result = verify_archive(archive, identity_file=keys["operator"][0], record=False)
    assert result["status"] == "invalid", result["reason"]
    assert "altered" in result["reason"] or "damaged" in result["reason"]


def test_restore_needs_the_right_key_and_changes_nothing_without_it(encrypted, keys, tmp_path):
    dest = tmp_path / "restored"
    with pytest.raises(BackupError, match="give identity_file"):
        restore(RestoreRequest(dest=str(dest), archive=encrypted["archive"]))
    with pytest.raises(BackupError, match="does not match"):
        restore(RestoreRequest(dest=str(dest), archive=encrypted["archive"], identity_file=keys["stranger"][0]))
    assert not dest.exists()
    result = restore(RestoreRequest(dest=str(dest), archive=encrypted["archive"], identity_file=keys["offsite"][0]))
    assert result["verification"]["valid"] and (dest / "config" / "production.env").exists()


def test_tampered_ciphertext_is_refused_by_a_restore(encrypted, keys, tmp_path):
    archive = encrypted["archive"]
    data = bytearray(open(archive, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(archive, "wb").write(bytes(data))
    resign(archive)
    with pytest.raises(BackupError, match="refusing to restore"):
        restore(RestoreRequest(dest=str(tmp_path / "restored"), archive=archive, identity_file=keys["operator"][0]))
    assert not (tmp_path / "restored").exists()


def test_an_incremental_on_an_encrypted_full_restores_with_its_chain(app, encrypted, keys, tmp_path):
    (app / "config" / "production.env").write_text("DATABASE_PATH=data/reddit_sentiment.db\nCHANGED=1\n")
    later = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups"), type="incremental",
                                        encryption_recipients=[keys["operator"][1]]))
    assert later["type"] == "incremental" and later["archive"].endswith(".age")
    dest = tmp_path / "restored"
    result = restore(RestoreRequest(dest=str(dest), backup_dir=str(tmp_path / "backups"), scope="config",
                                    identity_file=keys["operator"][0]))
    assert len(result["chain"]) == 2 and "CHANGED=1" in (dest / "config" / "production.env").read_text()


def test_a_failing_age_fails_the_backup_and_leaves_nothing(app, tmp_path, keys, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "age").write_text("#!/bin/sh\nhead -c 1000 >/dev/null\necho 'age: error: simulated' >&2\nexit 1\n")
    os.chmod(str(fake_bin / "age"), 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (fake_bin, os.environ["PATH"]))
    with pytest.raises(BackupError, match=r"age \(encryption\) failed .*simulated"):
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"),
                                    encryption_recipients=[keys["operator"][1]]))
    assert os.listdir(str(tmp_path / "b" / "daily")) == []


def make_wheel(folder, name: str, version: str = "1.0") -> str:
    path = os.path.join(str(folder), "%s-%s-py3-none-any.whl" % (name, version))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("%s/__init__.py" % name, "")
        wheel.writestr("%s-%s.dist-info/METADATA" % (name, version), "Name: %s\nVersion: %s\n" % (name, version))
    return path


def test_a_full_backup_carries_the_wheelhouse(app, tmp_path, keys):
    shutil.copy(SAMPLE_LOGGING, str(app / "config" / "logging.conf"))
    (app / "apps" / "collector" / "requirements.txt").write_text("requests>=2\nPyYAML==6.0  # yaml\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "requests")
    (wheels / "notes.txt").write_text("not a wheel")
    made = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"), wheelhouse=str(wheels),
                                       encryption_recipients=[keys["operator"][1]]))
    assert made["wheelhouse"]["wheels"] == 1 and made["wheelhouse"]["missing"] == ["PyYAML"]
    assert any("no wheel for PyYAML" in w for w in made["warnings"])
    # An incremental built on it neither stores the wheels again nor deletes them on restore.
    (app / "output" / "new.csv").write_text("x\n")
    later = create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"), type="incremental"))
    assert not any(path.startswith("wheelhouse") for path in later["deleted"])
    dest = tmp_path / "new-server"
    restore(RestoreRequest(dest=str(dest), backup_dir=str(tmp_path / "b"), identity_file=keys["operator"][0]))
    assert (dest / "wheelhouse" / "requests-1.0-py3-none-any.whl").exists() and (dest / "output" / "new.csv").exists()
    assert not (dest / "wheelhouse" / "notes.txt").exists()


def test_the_wheelhouse_is_for_full_backups_only(app, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "requests")
    with pytest.raises(BackupError, match="wheelhouse is for full backups"):
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"), type="config",
                                    wheelhouse=str(wheels)))
    with pytest.raises(BackupError, match="holds no wheels"):
        create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "b"),
                                    wheelhouse=str(tmp_path / "app" / "config")))
