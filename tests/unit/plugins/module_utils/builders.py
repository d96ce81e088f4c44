"""What several engine tests build, in one place: app trees and databases, archives written by hand (hostile ones
too), backups, keys, processes that hold a lock, and the repository's paths. Tests import these; no test file
imports another."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.devops.reddit_backup.plugins.module_utils._archive import manifest as _manifest
from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import catalog as _catalog
from ansible_collections.devops.reddit_backup.plugins.module_utils._repository import signing as _signing
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
from ansible_collections.devops.reddit_backup.plugins.module_utils._verify.verify import verify_archive


# app trees and databases
def make_db(path, rows: int = 100, journal_mode: str = "wal") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=%s" % journal_mode)
    conn.execute("CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.executemany("INSERT INTO posts (body) VALUES (?)", [("post %d " % n * 20,) for n in range(rows)])
    conn.commit()
    conn.close()


def write(path, text: str = "x", mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


# from _archive.test_crypto
SAMPLE_LOGGING = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "examples", "sample_app", "skeleton",
                              "config", "logging.conf")


def make_key(path) -> str:
    """A real age identity file (0600) at ``path``; returns its public key."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    os.chmod(str(path), 0o600)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True,
                          text=True).stdout.strip()


# from _archive.test_reader
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


# from _backup.test_create
NOW = datetime(2025, 5, 28, 2, 0, 0, tzinfo=timezone.utc)


def read_archive(path: str) -> dict:
    """Every member of an archive as {name: (TarInfo, bytes)}, in order, decompressed with the real tools."""
    if path.endswith(".zst"):
        data = subprocess.run(["zstd", "-d", "-c", path], check=True, capture_output=True).stdout
    elif path.endswith(".gz"):
        data = subprocess.run(["gzip", "-d", "-c", path], check=True, capture_output=True).stdout
    else:
        data = open(path, "rb").read()
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            content = tar.extractfile(member).read() if member.isfile() else b""
            members[member.name] = (member, content)
    return members


# from _backup.test_create_incremental
def churn(app, rows: int = 50) -> None:
    conn = sqlite3.connect(str(app / "data" / "reddit_sentiment.db"))
    conn.executemany("INSERT INTO posts (body) VALUES (?)", [("new post %d" % n,) for n in range(rows)])
    conn.execute("UPDATE posts SET body = 'edited' WHERE id = 3")
    conn.commit()
    conn.close()


# from _remote.test_sync
T0 = datetime(2025, 5, 26, 2, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def three_backups(app, tmp_path):
    """Two daily full backups a day apart and a configuration backup after them."""
    backup_dir = tmp_path / "backups"
    made = [create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), now=T0)),
            create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), now=T0 + timedelta(days=1))),
            create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), type="config",
                                        now=T0 + timedelta(days=1, hours=3)))]
    return backup_dir, made


@pytest.fixture
def server_folder(backup_server):  # noqa: F811
    """The backup server's folder, emptied for each test."""
    subprocess.run(["rm", "-rf", backup_server.folder], check=True)
    os.makedirs(backup_server.folder, 0o700)
    return backup_server


# from _repository.test_catalog
def fake_backup(backup_dir, backup_type: str, created: datetime, complete: bool = True, name=None) -> str:
    """A catalog entry as backup_create leaves it (the catalog reads only names and sidecars)."""
    folder = os.path.join(str(backup_dir), _catalog.NAMED_DIR if name else _catalog.TYPE_DIRS[backup_type])
    os.makedirs(folder, exist_ok=True)
    stem = name or "%s_%s" % (_catalog.NAME_PREFIXES[backup_type], created.strftime(_catalog.STAMP_FORMAT))
    archive = os.path.join(folder, stem + ".tar.zst")
    with open(archive, "wb") as handle:
        handle.write(b"archive")
    meta = {"type": backup_type, "name": stem, "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "size": 7,
            "sha256": "0" * 64, "parent": None, "host": "app1", "files": 1, "bytes": 7, "databases": []}
    with open(archive + ".meta.json", "w") as handle:
        json.dump(meta, handle)
    if complete:
        with open(archive + ".sha256", "wb") as handle:
            handle.write(_catalog.checksum_line("0" * 64, archive))
    return archive


# from _repository.test_signing
MOMENT = datetime(2025, 5, 28, 2, 0, 0, tzinfo=timezone.utc)


def ed25519(path) -> str:
    """A real ed25519 key pair made by ssh-keygen; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", os.path.basename(str(path)), "-f",
                    str(path)], check=True)
    return open(str(path) + ".pub").read().strip()


def signed_backup(app, backup_dir, key=None, recipients=None, now=MOMENT, **options):
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(backup_dir), signing_key=key,
                                       encryption_recipients=recipients, now=now, **options))


def forge(tmp_path, app, target: dict, recipients=None, tag="evil"):
    """What someone who can write the store but holds no signing key does: back up a tree of their own choosing
    (another production.env) at the target's time, and put its archive in place of the target's with a .sha256
    and .meta.json recomputed to match, under the target's name, type and parent (the age public key is in the
    target's .meta.json for anyone to read)."""
    fake_app = tmp_path / ("forged-app-" + tag)
    shutil.copytree(str(app), str(fake_app), symlinks=True)
    (fake_app / "config" / "production.env").write_text("DATABASE_PATH=data/reddit_sentiment.db\nEVIL=1\n")
    made = signed_backup(fake_app, tmp_path / ("workshop-" + tag), recipients=recipients,
                  now=datetime.strptime(target["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc))
    genuine = json.load(open(target["archive"] + ".meta.json"))
    meta = json.load(open(made["archive"] + ".meta.json"))
    meta.update({key: genuine[key] for key in ("name", "type", "parent", "parent_sha256", "depth") if key in genuine})
    shutil.copyfile(made["archive"], target["archive"])
    with open(target["archive"] + ".sha256", "w") as handle:
        handle.write("%s  %s\n" % (made["sha256"], os.path.basename(target["archive"])))
    with open(target["archive"] + ".meta.json", "w") as handle:
        json.dump(meta, handle)
    return made


# from _restore.test_restore
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


DB = "data/reddit_sentiment.db"


def tree(root) -> dict:
    """Everything under ``root``: relative path -> (type, mode, sha256 or link target). {} when missing."""
    root = str(root)
    if not os.path.lexists(root):
        return {}
    found = {".": _describe(root)}
    if os.path.isdir(root) and not os.path.islink(root):
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                found[os.path.relpath(path, root)] = _describe(path)
    return found


def _describe(path: str) -> tuple:
    info = os.lstat(path)
    if os.path.islink(path):
        return ("symlink", os.readlink(path))
    if os.path.isdir(path):
        return ("dir", info.st_mode & 0o7777)
    return ("file", info.st_mode & 0o7777, hashlib.sha256(open(path, "rb").read()).hexdigest())


def rows(db_path: str, table: str = "posts") -> int:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture(name="backup")
def restore_backup(app, tmp_path):
    """A full backup of the small app (with a logging configuration that verification accepts)."""
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(tmp_path / "backups")))


def damage(app) -> None:
    """What the recovery scenarios start from: changed configuration, database, units and logs."""
    (app / "config" / "production.env").write_text("DATABASE_PATH=somewhere/else.db\n")
    conn = sqlite3.connect(str(app / DB))
    conn.execute("DELETE FROM posts WHERE id > 10")
    conn.commit()
    conn.close()
    (app / "systemd" / "reddit-sentiment-pipeline.service").write_text("[Service]\nExecStart=/bin/false\n")
    (app / "logs" / "new.log").write_text("after the backup\n")


DRIVER = """
import json, os, signal, sys
sys.path[:0] = [sys.argv[5]]
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore import swap as _swap
from ansible_collections.devops.reddit_backup.plugins.module_utils._restore.restore import RestoreRequest, restore
if os.environ.get("NO_EXCHANGE"):
    _swap.exchange = lambda first, second: False
def pause(step):
    if step == sys.argv[3]:
        os.kill(os.getpid(), signal.SIGKILL)
result = restore(RestoreRequest(dest=sys.argv[2], archive=sys.argv[1], scope=json.loads(sys.argv[4])), pause=pause)
print(json.dumps(result))
"""


def _run_driver(archive, dest, kill_at, scope, no_exchange=False) -> int:
    env = dict(os.environ, NO_EXCHANGE="1" if no_exchange else "")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    completed = subprocess.run([python, "-c", DRIVER, archive, str(dest), kill_at, json.dumps(scope),
                                os.path.join(REPO, "collections")], env=env, capture_output=True, text=True)
    return completed.returncode


def _chain(app, tmp_path):
    """full -> incremental (database, configuration, a new and a deleted file) -> database backups (page deltas)."""
    from datetime import datetime, timedelta, timezone
    backups, start = str(tmp_path / "backups"), datetime.now(timezone.utc) - timedelta(hours=1)
    (app / "config" / "logging.conf").write_bytes(open(os.path.join(
        REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"), "rb").read())
    made = {"full": create_backup(BackupRequest(app_root=str(app), backup_dir=backups, now=start))}
    conn = sqlite3.connect(str(app / DB))
    conn.execute("DELETE FROM posts WHERE id > 300")
    conn.commit()
    conn.close()
    (app / "config" / "production.env").write_text("DATABASE_PATH=data/reddit_sentiment.db\nLOG_LEVEL=DEBUG\n")
    (app / "output" / "new.csv").write_text("a,b\n")
    (app / "output" / "sentiment_summary.csv").unlink()
    made["incremental"] = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, type="incremental",
                                                      now=start + timedelta(minutes=10)))
    made["state"] = tree(app)
    made["base"] = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, type="database",
                                               now=start + timedelta(minutes=20)))
    conn = sqlite3.connect(str(app / DB))
    conn.execute("DELETE FROM posts WHERE id > 200")
    conn.commit()
    conn.close()
    made["delta"] = create_backup(BackupRequest(app_root=str(app), backup_dir=backups, type="database",
                                                now=start + timedelta(minutes=30)))
    return backups, made


# from _restore.test_restore_hostile_fs
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


# Debian's: a venv's interpreter may need files under /root that nobody cannot read (pyenv's libpython3.12).
NOBODY_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def as_nobody(script: str, *args) -> None:
    """Run the attacker's step (Python) as the unprivileged user nobody."""
    subprocess.run(NOBODY + [NOBODY_PYTHON, "-c", script] + [str(arg) for arg in args], check=True, timeout=60)


@pytest.fixture
def world():
    yield from hostile_world()


def hostile_world():
    """base/ (root, 0755): home/ and home/app/ owned by nobody (the app user), backups/ and outside/ root's."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="reddit-backup-hostile-"))
    os.chmod(str(base), 0o755)
    app = base / "home" / "app"
    make_db(str(app / "data" / "reddit_sentiment.db"), rows=50)
    write(str(app / "data" / "notes" / "keep.txt"), "note\n")
    write(str(app / "config" / "production.env"), "DATABASE_PATH=data/reddit_sentiment.db\n")
    write(str(app / "config" / "monitoring.yml"), "interval: 30\n")
    shutil.copy(os.path.join(REPO, "examples", "sample_app", "skeleton", "config", "logging.conf"),
                str(app / "config" / "logging.conf"))
    write(str(app / "scripts" / "run.sh"), "#!/bin/sh\n", 0o755)
    outside = base / "outside"
    write(str(outside / "sudoers.d" / "README"), "root only\n")
    write(str(outside / "victim" / "precious.txt"), "do not delete\n")
    (outside / "notes").mkdir()  # an empty folder named like one in the app's data folder
    subprocess.run(["chown", "-R", "nobody:nogroup", str(base / "home")], check=True)
    yield base
    shutil.rmtree(str(base))


def hostile_backup(app, backups, **options) -> dict:
    return create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups), compression="none", **options))


PLANT_STAGING = """
import json, os, sys
folder, outside = sys.argv[1], sys.argv[2]
os.mkdir(folder, 0o700)
with open(os.path.join(folder, "staged1"), "w") as handle:
    handle.write("staged")
with open(os.path.join(folder, "payload"), "w") as handle:
    handle.write("ALL ALL=(ALL) NOPASSWD: ALL\\n")
staged1 = os.path.join(folder, "staged1")
units = [{"path": "x", "staged": staged1, "inode": os.lstat(staged1).st_ino, "exists": True,
          "target": os.path.join(outside, "sudoers.d", "evil"), "safety": os.path.join(folder, "payload")},
         {"path": "y", "staged": os.path.join(outside, "victim"), "inode": 1, "exists": True,
          "target": os.path.join(outside, "victim"), "safety": None}]
journal = {"units": units, "aside": [], "safety_root": None, "format": "devops.reddit_backup restore journal 2",
           "dest": sys.argv[3], "folder": [os.lstat(folder).st_dev, os.lstat(folder).st_ino]}
for name in ("journal.json", "made-by-reddit-backup.json"):
    with open(os.path.join(folder, name), "w") as handle:
        json.dump(journal if name == "journal.json" else {"format": "devops.reddit_backup restore staging 1",
                  "folder": journal["folder"], "dest": sys.argv[3]}, handle)
"""


def _make_chain(world, full_links: dict, incremental_links: dict):
    """A real full backup with ``full_links`` (path -> target) in the app, then an incremental one after adding
    ``incremental_links``: each link of the chain is harmless alone."""
    app = world / "home" / "app"
    (app / "d").mkdir()
    for path, target in full_links.items():
        os.symlink(target, str(app / path))
    full = hostile_backup(app, world / "backups")
    for path, target in incremental_links.items():
        os.symlink(target, str(app / path))
    incremental = hostile_backup(app, world / "backups", type="incremental")
    assert incremental["parent"] == full["name"]
    return app, full, incremental


def rewrite(archive: str, extra: list = (), deleted: list = (), header=None) -> None:
    """Rewrite an uncompressed archive as an attacker with write access to the store would: members added (with
    manifest records), paths added to the deletion list, keys of ``header`` set in the manifest and the catalog
    entry, the checksum sidecar recomputed."""
    with tarfile.open(archive) as source:
        members = [(info, source.extractfile(info).read() if info.isfile() else None) for info in source]
    manifest = json.loads(dict((info.name, data) for info, data in members)[_manifest.MANIFEST_NAME])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.name != _manifest.MANIFEST_NAME:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        for path, target in extra:
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 1
            tar.addfile(info)
            manifest["members"].append({"path": path, "type": "symlink", "size": 0, "mode": "0777", "mtime": 1,
                                        "sha256": None, "target": target})
        manifest["deleted"] = sorted(set(manifest.get("deleted") or []) | set(deleted))
        manifest.update(header or {})
        data = _manifest.encode(manifest)
        info = tarfile.TarInfo(_manifest.MANIFEST_NAME)
        info.size, info.mode, info.mtime = len(data), 0o600, 1
        tar.addfile(info, io.BytesIO(data))
    with open(archive, "wb") as handle:
        handle.write(buffer.getvalue())
    resign(archive)
    with open(archive + ".meta.json") as handle:
        meta = json.load(handle)
    meta.update(header or {}, deleted=manifest["deleted"])
    with open(archive + ".meta.json", "w") as handle:
        json.dump(meta, handle)


# from test_lock
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from ansible_collections.devops.reddit_backup.plugins.module_utils._lock import DirectoryLock
with DirectoryLock(sys.argv[1], 5, "test holder"):
    print("held", flush=True)
    time.sleep(60)
"""


COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4, "collections"))


def hold_in_child(directory):
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), COLLECTIONS], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "held"
    return child


# from test_signing.py (more)
@pytest.fixture(autouse=True)
def sound_logging_conf(app):
    shutil.copy(SAMPLE_LOGGING, str(app / "config" / "logging.conf"))  # one that passes the configuration checks


@pytest.fixture
def signer(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    return {name: (str(folder / name), ed25519(folder / name)) for name in ("host", "attacker")}


@pytest.fixture
def age_key(tmp_path):
    path = tmp_path / "age.key"
    return str(path), make_key(path)


def restore_into(backups_dir, dest, trusted=None, identity=None, **options):
    return restore(RestoreRequest(dest=str(dest), backup_dir=str(backups_dir), trusted_signing_keys=trusted,
                                  identity_file=identity, **options))


def verify(archive, trusted=None, identity=None, level="comprehensive", allowed_signers=None):
    trust = _signing.trust_from(allowed_signers, trusted)
    if trust is None:
        return verify_archive(archive, level, identity_file=identity)
    with trust:
        return verify_archive(archive, level, identity_file=identity, trust=trust)


# from test_sync.py (more)
def listing(folder) -> dict:
    """{relative path: size} of every file under ``folder`` (hidden ones included)."""
    found = {}
    for dirpath, _dirs, files in os.walk(str(folder)):
        for name in files:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, str(folder))] = os.path.getsize(path)
    return found
