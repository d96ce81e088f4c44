"""Signed backups: the catalog entry signed with a real ed25519 key by ssh-keygen, checked against trusted keys by
verify and restore; forged (knowing only the age public key), re-signed, unsigned, swapped and chained forgeries
refused; the signing key's own checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timedelta

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import signing as _signing
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository.catalog import list_backups
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from tests.unit.plugins.module_utils.builders import (  # noqa: F401  (fixtures)
    MOMENT, ed25519, forge, signed_backup as backup,
)
from tests.unit.plugins.module_utils.builders import (  # noqa: F401  (fixtures)
    age_key, restore_into, signer, sound_logging_conf, verify,
)

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None or shutil.which("age") is None,
                                reason="ssh-keygen and age are needed")


def test_a_signed_backup_verifies_and_restores_with_its_trusted_key(app, tmp_path, signer):
    made = backup(app, tmp_path / "backups", signer["host"][0])
    assert made["signed"] and made["signature"] == made["archive"] + ".meta.json.sig"
    assert os.stat(made["signature"]).st_mode & 0o777 == 0o600
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", signer["host"][0] + ".pub"], check=True,
                                 capture_output=True, text=True).stdout.split()[1]
    assert made["signature_key"] == fingerprint
    listed = list_backups(str(tmp_path / "backups"))[0]
    assert listed["signed"] and listed["signature_key"] == fingerprint
    verdict = verify(made["archive"], [signer["host"][1]])
    assert verdict["status"] == "valid" and verdict["authenticated"], verdict
    assert verdict["signed_by"]["key"] == fingerprint
    assert [c for c in verdict["checks"] if c["name"] == "signature"][0]["ok"]
    allowed = tmp_path / "allowed_signers"
    allowed.write_text('root@app1 namespaces="reddit-backup@devops" %s\n' % signer["host"][1])
    assert verify(made["archive"], allowed_signers=str(allowed))["authenticated"]
    result = restore_into(tmp_path / "backups", tmp_path / "restored", [signer["host"][1]])
    assert result["authenticated"] and (tmp_path / "restored" / "config" / "production.env").exists()


def test_without_trusted_keys_the_result_says_authenticity_was_not_checked(app, tmp_path, signer):
    made = backup(app, tmp_path / "backups", signer["host"][0])
    verdict = verify(made["archive"])
    assert verdict["valid"] and verdict["authenticated"] is False
    assert verdict["authenticity"].startswith("not checked")
    result = restore_into(tmp_path / "backups", tmp_path / "restored")
    assert result["authenticated"] is False and result["authenticity"].startswith("not checked")


def test_an_encrypted_archive_forged_with_only_the_age_public_key_is_refused(app, tmp_path, signer, age_key):
    identity, recipient = age_key
    made = backup(app, tmp_path / "backups", signer["host"][0], [recipient])
    target = list_backups(str(tmp_path / "backups"))[0]
    forge(tmp_path, app, target, recipients=json.load(open(made["archive"] + ".meta.json"))["encryption"]["recipients"])
    # What the checksums alone say: the forgery passes every check and restores the forger's file.
    assert verify(made["archive"], identity=identity)["status"] == "valid"
    assert verify(made["archive"], level="quick")["status"] == "valid"
    for level in ("quick", "comprehensive"):
        refused = verify(made["archive"], [signer["host"][1]], identity=identity, level=level)
        assert refused["status"] == "invalid" and not refused["authenticated"], refused
        assert "signature" in refused["reason"]
    assert verify(made["archive"], [signer["host"][1]], level="quick")["status"] == "invalid"
    dest = tmp_path / "live"
    shutil.copytree(str(app), str(dest), symlinks=True)
    with pytest.raises(BackupError, match="refusing to restore: .*does not match the catalog entry"):
        restore_into(tmp_path / "backups", dest, [signer["host"][1]], identity)
    assert "EVIL" not in (dest / "config" / "production.env").read_text()
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith(".reddit-backup")]


def test_an_archive_re_signed_with_the_attackers_own_key_is_refused(app, tmp_path, signer):
    made = backup(app, tmp_path / "backups", signer["host"][0])
    target = list_backups(str(tmp_path / "backups"))[0]
    forge(tmp_path, app, target)
    data = open(made["archive"] + ".meta.json", "rb").read()
    with open(made["archive"] + ".meta.json.sig", "wb") as handle:
        handle.write(_signing.sign(signer["attacker"][0], data))
    assert verify(made["archive"], [signer["attacker"][1]])["valid"]  # good, but by the attacker's key
    refused = verify(made["archive"], [signer["host"][1]])
    assert refused["status"] == "invalid" and "not a trusted signing key" in refused["reason"], refused
    with pytest.raises(BackupError, match="not a trusted signing key"):
        restore_into(tmp_path / "backups", tmp_path / "restored", [signer["host"][1]])
    assert not (tmp_path / "restored").exists()


def test_an_unsigned_archive_is_refused_when_trusted_keys_are_given(app, tmp_path, signer):
    made = backup(app, tmp_path / "backups")
    assert not made["signed"] and not list_backups(str(tmp_path / "backups"))[0]["signed"]
    refused = verify(made["archive"], [signer["host"][1]])
    assert refused["status"] == "invalid" and "is not signed" in refused["reason"]
    with pytest.raises(BackupError, match="is not signed"):
        restore_into(tmp_path / "backups", tmp_path / "restored", [signer["host"][1]])


def test_a_signature_swapped_from_another_backup_is_refused(app, tmp_path, signer):
    first = backup(app, tmp_path / "backups", signer["host"][0])
    second = backup(app, tmp_path / "backups", signer["host"][0], now=MOMENT + timedelta(hours=1))
    shutil.copyfile(second["signature"], first["signature"])
    refused = verify(first["archive"], [signer["host"][1]])
    assert refused["status"] == "invalid" and "does not match the catalog entry" in refused["reason"]
    # The whole backup (archive and sidecars) under another backup's name: the signed name gives it away.
    for suffix in ("", ".sha256", ".meta.json", ".meta.json.sig"):
        shutil.copyfile(second["archive"] + suffix, first["archive"] + suffix)
    renamed = verify(first["archive"], [signer["host"][1]])
    assert renamed["status"] == "invalid" and "renamed" in renamed["reason"], renamed


def test_an_archive_replaced_after_signing_is_refused_by_its_sha256(app, tmp_path, signer):
    made = backup(app, tmp_path / "backups", signer["host"][0])
    genuine = {suffix: open(made["archive"] + suffix, "rb").read() for suffix in (".meta.json", ".meta.json.sig")}
    forge(tmp_path, app, list_backups(str(tmp_path / "backups"))[0])
    for suffix, data in genuine.items():  # the signed sidecars stay: only the archive and its .sha256 differ
        with open(made["archive"] + suffix, "wb") as handle:
            handle.write(data)
    refused = verify(made["archive"], [signer["host"][1]])
    assert refused["status"] == "invalid" and not refused["authenticated"]
    failed = [c for c in refused["checks"] if c["name"] == "signature"][0]
    assert not failed["ok"] and "not the archive its signed catalog entry names" in failed["detail"]
    with pytest.raises(BackupError, match="refusing to restore"):
        restore_into(tmp_path / "backups", tmp_path / "restored", [signer["host"][1]], verify_first=False)
    assert not (tmp_path / "restored").exists()


def test_a_chain_with_one_forged_incremental_is_refused(app, tmp_path, signer):
    backups = tmp_path / "backups"
    backup(app, backups, signer["host"][0])
    (app / "output" / "sentiment_summary.csv").write_text("label,count\npositive,1\n")
    middle = backup(app, backups, signer["host"][0], type="incremental", now=MOMENT + timedelta(hours=6))
    (app / "output" / "sentiment_summary.csv").write_text("label,count\npositive,2\n")
    tip = backup(app, backups, signer["host"][0], type="incremental", now=MOMENT + timedelta(hours=12))
    assert tip["parent"] == middle["name"]
    assert verify(tip["archive"], [signer["host"][1]])["valid"]
    assert restore_into(backups, tmp_path / "first", [signer["host"][1]])["authenticated"]
    meta = json.load(open(middle["archive"] + ".meta.json"))
    assert meta["parent_sha256"] == list_backups(str(backups))[0]["sha256"]
    # The middle link's archive is replaced by one the attacker made (its sidecars rewritten to match).
    forge(tmp_path, app, [b for b in list_backups(str(backups)) if b["name"] == middle["name"]][0])
    refused = verify(tip["archive"], [signer["host"][1]])
    assert refused["status"] == "invalid" and middle["name"] in refused["reason"], refused
    with pytest.raises(BackupError, match="refusing to restore"):
        restore_into(backups, tmp_path / "second", [signer["host"][1]])
    assert not (tmp_path / "second").exists()


def test_a_chain_link_whose_archive_alone_was_replaced_is_refused_by_restore(app, tmp_path, signer):
    backups = tmp_path / "backups"
    full = backup(app, backups, signer["host"][0])
    (app / "output" / "sentiment_summary.csv").write_text("label,count\npositive,1\n")
    tip = backup(app, backups, signer["host"][0], type="incremental", now=MOMENT + timedelta(hours=6))
    (app / "output" / "sentiment_summary.csv").write_text("LABEL,COUNT\n")  # the full backup's size
    other = backup(app, tmp_path / "elsewhere", now=MOMENT)  # a full backup of the same name and size, unsigned
    assert other["size"] and other["name"] == full["name"]
    shutil.copyfile(other["archive"], full["archive"])
    shutil.copyfile(other["archive"] + ".sha256", full["archive"] + ".sha256")
    with pytest.raises(BackupError, match="not the archive its signed catalog entry names"):
        restore_into(backups, tmp_path / "restored", [signer["host"][1]])
    assert not (tmp_path / "restored").exists()
    assert tip["signed"]


@pytest.mark.parametrize("damage", ["mode", "symlink", "owner", "missing"])
def test_a_signing_key_others_could_read_or_redirect_is_refused(app, tmp_path, signer, damage):
    key = signer["host"][0]
    given = key
    if damage == "mode":
        os.chmod(key, 0o644)
    elif damage == "symlink":
        given = str(tmp_path / "link")
        os.symlink(key, given)
    elif damage == "owner":
        os.chown(key, 65534, 65534)
    else:
        given = str(tmp_path / "nothing")
    with pytest.raises(BackupError, match="signing_key %s" % given) as raised:
        backup(app, tmp_path / "backups", given)
    assert "PRIVATE KEY" not in str(raised.value) and "OPENSSH" not in str(raised.value)
    assert not (tmp_path / "backups").exists() or not list_backups(str(tmp_path / "backups"))


def test_trusted_keys_are_public_key_lines(tmp_path, signer):
    secret = open(signer["host"][0]).read()
    with pytest.raises(BackupError, match="item 1 is a private key") as raised:
        with _signing.Trust(keys=[secret]):
            pass
    assert secret.splitlines()[1] not in str(raised.value)
    with pytest.raises(BackupError, match="item 2 is not an OpenSSH public key"):
        with _signing.Trust(keys=[signer["host"][1], "ssh-ed25519 notbase64"]):
            pass
    empty = tmp_path / "allowed"
    empty.write_text("# nobody\n")
    with pytest.raises(BackupError, match="names no key"):
        with _signing.Trust(allowed_signers=str(empty)):
            pass


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_the_application_user_cannot_sign_with_the_hosts_key(tmp_path):
    """What backup_create accepts as a signing key (root's, 0600) is a key an unprivileged user cannot sign with,
    even knowing its path in a folder they can enter."""
    import tempfile  # pylint: disable=import-outside-toplevel
    folder = tempfile.mkdtemp(prefix="signing-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)
        key = os.path.join(folder, "signing_key")
        ed25519(key)
        assert _signing.check_signing_key(key) == key
        attempt = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "ssh-keygen", "-Y",
                                  "sign", "-f", key, "-n", _signing.NAMESPACE], input=b"forged meta",
                                 capture_output=True, check=False)
        assert attempt.returncode != 0 and b"BEGIN SSH SIGNATURE" not in attempt.stdout
        assert b"BEGIN SSH SIGNATURE" in _signing.sign(key, b"genuine meta")
    finally:
        shutil.rmtree(folder)


def test_a_signed_entry_that_differs_from_the_manifest_inside_is_refused(app, tmp_path, signer):
    """The archive is the one the signed entry names (its sha256 matches), but the entry says something the
    manifest inside does not (here: another app root), as a signer fooled into signing a doctored entry would
    make: the catalog check compares the two, in every verify and in every restore, verify_first or not."""
    made = backup(app, tmp_path / "backups", signer["host"][0])
    meta_path = made["archive"] + ".meta.json"
    meta = json.load(open(meta_path))
    meta["app_root"] = "/srv/elsewhere"
    doctored = json.dumps(meta).encode()
    with open(meta_path, "wb") as handle:
        handle.write(doctored)
    with open(made["signature"], "wb") as handle:
        handle.write(_signing.sign(signer["host"][0], doctored))
    refused = verify(made["archive"], [signer["host"][1]])
    signature = [c for c in refused["checks"] if c["name"] == "signature"][0]
    assert signature["ok"], "the signature itself is sound: only the comparison with the manifest finds it"
    catalog = [c for c in refused["checks"] if c["name"] == "catalog"][0]
    assert refused["status"] == "invalid" and not catalog["ok"]
    assert "app_root is" in catalog["detail"] and "/srv/elsewhere" in catalog["detail"]
    with pytest.raises(BackupError, match="refusing to restore"):
        restore_into(tmp_path / "backups", tmp_path / "restored", [signer["host"][1]], verify_first=False)
    assert not (tmp_path / "restored").exists()
