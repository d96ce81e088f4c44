"""The backup_server role through the operator's path (the backup server in its inventory group, the clients in
group_vars, the play run), on this machine with a real sshd on 127.0.0.1 that reads each client user's own
authorized_keys with StrictModes: two app "hosts" (two keys, two users) push, pull and prune through the
restriction with the collection's sync; an attacker holding host A's key, running as an unprivileged user, cannot
read, list, overwrite or delete host B's backups; the server's job (retention and metrics) runs each client's
check as that client's user, safely over a folder where the client planted links, FIFOs and fake folders."""

from __future__ import annotations

import glob
import json
import hashlib
import os
import pwd
import random
import re
import shutil
import stat
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from ansible_collections.devops.reddit_backup.plugins.module_utils._backup.create import BackupRequest, create_backup
from tests import ansiblerun
from tests.integration.runner import TARGET_PYTHON, run_tasks
from tests.integration.runnerhost import apphost, installed_from_inventory, wheelhouse  # noqa: F401
from tests.sampleapp import seed_app
from tests.servers import BackupServer

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/rrsync") or not shutil.which("setpriv"),
                                reason="rsync's rrsync and util-linux's setpriv are needed (tools/setup.sh)")

PREFIX = "rbt%04d-" % random.randrange(10000)  # this run's users: never an account of the machine
CLIENTS = ("app-a", "app-b")


def _at(day: str) -> datetime:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)


class Fleet:
    """The backup server (this machine) and what the two app hosts hold: their keys and the server's host key."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.base = os.path.join(root, "srv")
        self.lib = os.path.join(root, "lib")
        self.units = os.path.join(root, "systemd")
        self.textfile_dir = os.path.join(root, "textfile")
        self.config = os.path.join(root, "etc", "clients.json")
        self.keys = os.path.join(root, "keys")  # nobody's: the attacker's copy of host A's key
        os.makedirs(self.keys, 0o700)
        for name in CLIENTS:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", self.key(name)],
                           check=True)
        self.sshd = BackupServer(os.path.join(root, "sshd"), users=[self.user(name) for name in CLIENTS])
        shutil.copy(self.sshd.known_hosts, os.path.join(self.keys, "known_hosts"))
        nobody = pwd.getpwnam("nobody")
        for name in os.listdir(self.keys):
            os.chown(os.path.join(self.keys, name), nobody.pw_uid, nobody.pw_gid)
        os.chown(self.keys, nobody.pw_uid, nobody.pw_gid)
        self.inventory = os.path.join(root, "inventory")
        os.makedirs(os.path.join(self.inventory, "group_vars"))
        with open(os.path.join(self.inventory, "hosts.yml"), "w") as handle:
            yaml.safe_dump({"all": {"children": {"backup_servers": {"hosts": {"localhost": {
                "ansible_connection": "local", "ansible_python_interpreter": TARGET_PYTHON}}}}}}, handle)
        self.playbook = os.path.join(root, "backup_server.yml")
        with open(self.playbook, "w") as handle:
            yaml.safe_dump([{"name": "The backup server", "hosts": "backup_servers", "gather_facts": False,
                             "roles": [{"role": "devops.reddit_backup.backup_server"}]}], handle)

    @staticmethod
    def user(name: str) -> str:
        return PREFIX + name

    def key(self, name: str) -> str:
        return os.path.join(self.keys, name)

    def folder(self, name: str) -> str:
        return os.path.join(self.base, name, "backups")

    def remote(self, name: str) -> str:
        """The app host's reddit_backup_remote: the root of its own folder."""
        return "ssh://%s@127.0.0.1:%d/" % (self.user(name), self.sshd.port)

    def sync_options(self, name: str) -> dict:
        return {"remote": self.remote(name), "ssh_key": self.key(name), "known_hosts": self.sshd.known_hosts}

    def settings(self, clients: list = None, **extra) -> dict:
        if clients is None:
            clients = [{"name": "app-a", "public_key": self.public_key("app-a"), "replica": True,
                        "retention_policy": {"full": {"keep_last": 1}}},
                       {"name": "app-b", "public_key": self.public_key("app-b"),
                        "retention_policy": {kind: {"keep_last": 100} for kind in ("full", "incremental")}}]
        return {"backup_server_clients": clients, "backup_server_base_dir": self.base,
                "backup_server_user_prefix": PREFIX, "backup_server_lib_dir": self.lib,
                "backup_server_config_dir": os.path.dirname(self.config), "backup_server_systemd_dir": self.units,
                "backup_server_textfile_dir": self.textfile_dir, "backup_server_manage_systemd": False,
                "backup_server_install_packages": False, **extra}

    def public_key(self, name: str) -> str:
        with open(self.key(name) + ".pub") as handle:
            return handle.read().strip()

    def apply(self, **settings):
        """What an operator does: the settings in group_vars/backup_servers.yml, the play run."""
        with open(os.path.join(self.inventory, "group_vars", "backup_servers.yml"), "w") as handle:
            yaml.safe_dump(self.settings(**settings), handle)
        return ansiblerun.run_playbook(os.path.join(self.root, ".ansible-home"), self.playbook,
                                       inventory=self.inventory)

    def ssh_as_nobody(self, name: str, *words: str, rsync: list = None, stdin: bytes = b""):
        """As nobody, with host ``name``'s key: ``ssh user@server words`` or ``rsync ... rsync-words``."""
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=%s/known_hosts" % self.keys,
               "-o", "StrictHostKeyChecking=yes", "-i", self.key(name), "-o", "IdentitiesOnly=yes",
               "-p", str(self.sshd.port)]
        if rsync is not None:
            command = ["rsync", "-e", " ".join(ssh)] + rsync
        else:
            command = ssh + ["%s@127.0.0.1" % self.user(name)] + list(words)
        return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + command,
                              input=stdin, capture_output=True, timeout=60, cwd="/", check=False,
                              env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})

    def sftp_as_nobody(self, name: str, command: str):
        """As nobody, with host ``name``'s key: one sftp batch command."""
        return subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "sftp", "-b", "-",
             "-o", "UserKnownHostsFile=%s/known_hosts" % self.keys, "-o", "IdentitiesOnly=yes", "-i", self.key(name),
             "-P", str(self.sshd.port), "%s@127.0.0.1" % self.user(name)],
            input=(command + "\n").encode(), capture_output=True, timeout=60, cwd="/", check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})

    def job(self) -> subprocess.CompletedProcess:
        """The server job's service command, as systemd runs it (root, a clean environment)."""
        with open(os.path.join(self.units, "reddit-backup-server.service")) as handle:
            exec_start = [line.split("=", 1)[1] for line in handle.read().splitlines()
                          if line.startswith("ExecStart=")][0]
        assert exec_start.startswith("/usr/bin/python3 -I ")
        return subprocess.run(exec_start.split(), capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                              timeout=600, check=False)

    def metrics(self) -> str:
        with open(os.path.join(self.textfile_dir, "reddit-backup-server.prom")) as handle:
            return handle.read()


def changed_tasks(result) -> list:
    return [task["task"]["name"] for play in result.data["plays"] for task in play["tasks"]
            if any(host.get("changed") for host in task["hosts"].values())]


def failed_tasks(result) -> str:
    return json.dumps([task for play in result.data["plays"] for task in play["tasks"]
                       if any(host.get("failed") for host in task["hosts"].values())])[-4000:]


def tree_digest(folder: str) -> dict:
    """{relative path: (mode, owner, sha256 or link target)} of everything under ``folder``."""
    found = {}
    for walked, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(walked, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                content = os.readlink(path)
            else:
                content = None
            found[os.path.relpath(path, folder)] = (info.st_mode, info.st_uid, info.st_mtime_ns, content)
    return found


def backups_of(folder: str) -> dict:
    """tree_digest without the hidden names (the locks of the folder's own checks)."""
    return {path: info for path, info in tree_digest(folder).items() if not os.path.basename(path).startswith(".")}


@pytest.fixture(scope="module")
def fleet():
    if not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")):
        pytest.skip("openssh-server is needed (tools/setup.sh installs it)")
    # Not under pytest's 0700 tmp folder: the client users must reach their homes, as on a real server.
    root = tempfile.mkdtemp(prefix="rb-backup-server-", dir="/var/tmp")
    os.chmod(root, 0o755)
    made = None
    try:
        made = Fleet(root)
        result = made.apply()
        assert not result.failed, failed_tasks(result)
        yield made
    finally:
        if made is not None:
            made.sshd.stop()
        for name in CLIENTS:
            subprocess.run(["userdel", Fleet.user(name)], capture_output=True, check=False)
            subprocess.run(["groupdel", Fleet.user(name)], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_each_client_has_its_user_folder_and_restricted_key_and_a_second_run_changes_nothing(fleet):
    for name in CLIENTS:
        user = pwd.getpwnam(fleet.user(name))
        home = os.stat(os.path.join(fleet.base, name))
        assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (0, 0o750)
        folder = os.stat(fleet.folder(name))
        assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (user.pw_uid, 0o700)
        keys = os.path.join(fleet.base, name, ".ssh", "authorized_keys")
        assert os.stat(keys).st_uid == 0 and stat.S_IMODE(os.stat(keys).st_mode) == 0o640
        with open(keys) as handle:
            line = [text for text in handle.read().splitlines() if text and not text.startswith("#")]
        assert line == ['restrict,command="%s/reddit-backup-gate %s %s" %s' % (
            fleet.lib, fleet.folder(name), os.path.join(fleet.base, name, "replica") if name == "app-a" else "-",
            fleet.public_key(name))]
    assert stat.S_IMODE(os.stat(fleet.config).st_mode) == 0o600
    # The controller's own bytecode stays behind: a new .pyc there must not make the next run a change.
    source_cache = os.path.join(ansiblerun.COLLECTIONS, "ansible_collections", "devops", "reddit_backup", "plugins",
                                "module_utils", "__pycache__")
    os.makedirs(source_cache, exist_ok=True)
    probe = os.path.join(source_cache, "probe-%d.cpython-311.pyc" % os.getpid())
    with open(probe, "wb") as handle:
        handle.write(b"controller bytecode")
    try:
        again = fleet.apply()
    finally:
        os.unlink(probe)
    installed = os.path.join(fleet.lib, "ansible_collections", "devops", "reddit_backup", "plugins", "module_utils")
    assert not os.path.exists(os.path.join(installed, "__pycache__", os.path.basename(probe)))
    assert not again.failed, ansiblerun.failure(again)
    assert changed_tasks(again) == []


def test_two_hosts_push_pull_and_prune_through_the_restriction_and_stay_apart(fleet, sample_app, tmp_path):
    made = {}
    for name in CLIENTS:
        backups = str(tmp_path / name / "backups")
        made[name] = [create_backup(BackupRequest(app_root=str(sample_app), backup_dir=backups, now=_at(day)))
                      for day in ("2025-05-26", "2025-05-27", "2025-05-28")]
    tasks = []
    for name in CLIENTS:
        backups = str(tmp_path / name / "backups")
        options = fleet.sync_options(name)
        tasks += [{"name": "push " + name, "devops.reddit_backup.backup_sync": {"backup_dir": backups, **options}},
                  {"name": "pull " + name, "devops.reddit_backup.backup_sync": {
                      "backup_dir": str(tmp_path / name / "restored"), "direction": "pull", "select": "latest",
                      "type": "full", **options}}]
    tasks.append({"name": "prune app-a on the server", "devops.reddit_backup.backup_prune": {
        "backup_dir": str(tmp_path / "app-a" / "backups"), "policy": {"full": {"keep_last": 2}},
        "now": "2025-05-28T12:00:00Z", **fleet.sync_options("app-a")}})
    result = run_tasks(tmp_path, tasks)
    assert not result.failed, ansiblerun.failure(result) + result.stderr[-2000:]
    for name in CLIENTS:
        assert len(result.result("push " + name)["transferred"]) == 3
        assert [item["name"] for item in result.result("pull " + name)["transferred"]] == [made[name][-1]["name"]]
    pruned = result.result("prune app-a on the server")["deleted"]
    assert [item["name"] for item in pruned] == [made["app-a"][0]["name"]]
    for name in CLIENTS:
        names = os.listdir(os.path.join(fleet.folder(name), "daily"))
        kept = made[name][1:] if name == "app-a" else made[name]
        assert sorted({n.split(".")[0] for n in names}) == sorted(b["name"] for b in kept)
        owner = fleet.user(name)
        assert {pwd.getpwuid(os.lstat(os.path.join(fleet.folder(name), "daily", n)).st_uid).pw_name
                for n in names} == {owner}


def test_reddit_backup_sync_pushes_and_prunes_through_the_restriction(fleet, apphost, tmp_path):  # noqa: F811
    """The operator's command on an app host whose reddit_backup_remote is its own user's folder root."""
    app = tmp_path / "synced-app"
    seed_app(str(app))
    backups = tmp_path / "backups"
    create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups), type="database",
                  now=datetime.now(timezone.utc) - timedelta(days=3)))
    settings = {
        "reddit_backup_app_root": str(app), "reddit_backup_backup_dir": str(backups),
        "reddit_backup_remote_sync": True, "reddit_backup_remote": fleet.remote("app-b"),
        "reddit_backup_remote_ssh_key": fleet.key("app-b"), "reddit_backup_remote_known_hosts": fleet.sshd.known_hosts,
        "reddit_backup_retention_days": {"full": 30, "incremental": 7, "config": 90, "database": 1},
        "runner_root": apphost.root, "runner_app_name": "fleetb", "runner_user": "root", "runner_group": "root",
        "runner_scheduler": "none", "runner_wheelhouse": wheelhouse(),
    }
    new = create_backup(BackupRequest(app_root=str(app), backup_dir=str(backups), type="database"))
    with installed_from_inventory(tmp_path, settings, ["runner"]):
        synced = apphost.run("--app", "fleetb", "sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        # the push, then the retention there (listing, sidecars and deletions through rrsync): what it removes
        # depends on what the earlier tests left in B's folder (full backups of 2025, older than 30 days)
        assert re.search(r"pushed 2 backups \([\d.]+ KiB\) to %s, removed \d+ there by the retention policy$"
                         % re.escape(fleet.remote("app-b")), synced.stdout.strip()), synced.stdout
        there = os.listdir(os.path.join(fleet.folder("app-b"), "database"))
        assert os.path.basename(new["archive"]) in there


ATTACKS = {
    "a pull of B's folder by ..": ["-r", "{a}@127.0.0.1:../app-b/backups/", "{dest}/"],
    "a pull of B's folder by its absolute path": ["-r", "{a}@127.0.0.1:{b_folder}/", "{dest}/"],
    "a listing of B's folder by ..": ["--list-only", "-r", "{a}@127.0.0.1:../app-b/backups/"],
    "a listing of the base folder": ["--list-only", "{a}@127.0.0.1:/../"],
    "a push into B's folder by ..": ["-r", "{payload}/", "{a}@127.0.0.1:../app-b/backups/daily/"],
    "a push into B's folder by its absolute path": ["-r", "{payload}/", "{a}@127.0.0.1:{b_folder}/daily/"],
    "a delete in B's folder": ["-r", "--delete", "{empty}/", "{a}@127.0.0.1:../app-b/backups/daily/"],
    "a pull through the planted link": ["-r", "{a}@127.0.0.1:/to-b/", "{dest}/"],
    "a pull through the planted link's folder": ["-r", "{a}@127.0.0.1:/to-b/daily/", "{dest}/"],
    "a push through the planted link": ["-r", "{payload}/", "{a}@127.0.0.1:/to-b/daily/"],
    "a delete through the planted link": ["-r", "--delete", "{empty}/", "{a}@127.0.0.1:/to-b/daily/"],
    "a pull through a link sent in a push": ["-r", "{a}@127.0.0.1:/sent-link/", "{dest}/"],
    "a push over its own key's restriction": ["-r", "{payload}/", "{a}@127.0.0.1:../.ssh/"],
    "a push over its own key's restriction by its absolute path": ["-r", "{payload}/", "{a}@127.0.0.1:{a_ssh}/"],
}
# {what: (the command, what refuses it)}: the gate, or rrsync for anything that starts as rsync's server.
COMMANDS = {
    "a shell": ([], b"only run rsync"),
    "another command": (["cat", "/etc/passwd"], b"only run rsync"),
    "a command that looks like rsync": (["rsync --server --sender -r . ../app-b/backups/; cat /etc/passwd"],
                                        b"rrsync error: do not use .."),
    "sftp-server by hand on B's folder": (["/usr/lib/openssh/sftp-server -d ../app-b/backups"], b"only run rsync"),
    "rrsync by hand on B's folder": (["/usr/bin/rrsync", "../app-b/backups"], b"only run rsync"),
}


def test_host_a_key_cannot_read_list_overwrite_or_delete_host_b_backups(fleet, sample_app, tmp_path):
    for name in CLIENTS:  # both folders hold backups, whatever ran before
        backups = str(tmp_path / name)
        create_backup(BackupRequest(app_root=str(sample_app), backup_dir=backups, now=_at("2025-06-01")))
        pushed = run_tasks(tmp_path, [{"name": "push", "devops.reddit_backup.backup_sync": {
            "backup_dir": backups, **fleet.sync_options(name)}}])
        assert not pushed.failed, ansiblerun.failure(pushed)
    a_folder, b_folder = fleet.folder("app-a"), fleet.folder("app-b")
    # A's own folder: a link to B's folder planted by A's user, and one A sends in a push (rsync -l).
    subprocess.run(["setpriv", "--reuid=%s" % fleet.user("app-a"), "--regid=%s" % fleet.user("app-a"),
                    "--clear-groups", "ln", "-s", b_folder, os.path.join(a_folder, "to-b")], check=True)
    scratch = os.path.join(fleet.keys, "scratch")  # nobody's folder for the attacker's files
    for folder in ("dest", "payload", "empty", "linkpush"):
        os.makedirs(os.path.join(scratch, folder))
    with open(os.path.join(scratch, "payload", "backup_20250601_000000.tar.zst"), "w") as handle:
        handle.write("not a backup")
    os.symlink(b_folder, os.path.join(scratch, "linkpush", "sent-link"))
    subprocess.run(["chown", "-R", "nobody:nogroup", scratch], check=True)
    sent = fleet.ssh_as_nobody("app-a", rsync=["-rl", scratch + "/linkpush/", "%s@127.0.0.1:/" % fleet.user("app-a")])
    before = tree_digest(b_folder)
    assert before, "host B pushed nothing"
    keys_before = tree_digest(os.path.join(fleet.base, "app-a", ".ssh"))
    values = {"a": fleet.user("app-a"), "b_folder": b_folder, "a_ssh": os.path.join(fleet.base, "app-a", ".ssh"),
              "dest": scratch + "/dest", "payload": scratch + "/payload", "empty": scratch + "/empty"}
    for attack, words in ATTACKS.items():
        done = fleet.ssh_as_nobody("app-a", rsync=[word.format(**values) for word in words])
        assert done.returncode != 0, "%s succeeded: %s" % (attack, done.stdout.decode(errors="replace"))
        assert os.listdir(scratch + "/dest") == [], attack
        assert b"backup_" not in done.stdout, attack  # nothing of B's listed
    for attack, (words, refusal) in COMMANDS.items():
        done = fleet.ssh_as_nobody("app-a", *words)
        assert done.returncode != 0 and b"root:" not in done.stdout, attack
        assert refusal in done.stderr, (attack, done.stderr)
    forward = fleet.ssh_as_nobody("app-a", "-W", "127.0.0.1:%d" % fleet.sshd.port)
    assert forward.returncode != 0 and b"SSH-2.0" not in forward.stdout
    remote_forward = fleet.ssh_as_nobody("app-a", "-o", "ExitOnForwardFailure=yes", "-N", "-R",
                                         "127.0.0.1:%d:127.0.0.1:%d" % (_free_port(), fleet.sshd.port))
    assert remote_forward.returncode != 0 and b"forwarding failed" in remote_forward.stderr.lower()
    # SFTP: A's key reaches its own replica folder; B's folder stays closed to it, by the kernel.
    own = fleet.sftp_as_nobody("app-a", "put %s/payload/backup_20250601_000000.tar.zst snapshot" % scratch)
    assert own.returncode == 0, own.stderr
    for command in ("ls %s/daily" % b_folder, "get -r %s %s/dest/" % (b_folder, scratch),
                    "put %s/payload/backup_20250601_000000.tar.zst %s/daily/" % (scratch, b_folder),
                    "rm %s/daily/*" % b_folder, "rename %s/daily ../stolen" % b_folder, "symlink %s link" % b_folder):
        attempt = fleet.sftp_as_nobody("app-a", command)
        assert attempt.returncode != 0, command
    assert os.listdir(scratch + "/dest") == [] and not os.path.lexists(os.path.join(fleet.base, "app-a", "replica",
                                                                                    "link"))
    b_sftp = fleet.ssh_as_nobody("app-b", "-s", "sftp")
    assert b_sftp.returncode != 0 and fleet.sftp_as_nobody("app-b", "ls /").returncode != 0  # B has no replica
    assert tree_digest(b_folder) == before
    assert tree_digest(os.path.join(fleet.base, "app-a", ".ssh")) == keys_before
    assert sent.returncode != 0 or not os.path.exists(os.path.join(a_folder, "sent-link")) \
        or os.path.islink(os.path.join(a_folder, "sent-link"))


def test_a_symlink_pushed_with_rsync_l_is_stored_munged_and_leads_nowhere(fleet, tmp_path):
    """rrsync -munge in the gate: a link a client pushes (rsync -l) lands in its folder pointing into
    /rsyncd-munged/, so nothing on the server follows it to its target, not even to the client's own folder; a pull
    gives the client its link back as it sent it."""
    a_folder = fleet.folder("app-a")
    scratch = os.path.join(fleet.keys, "munge")  # nobody's folder for the client's files
    os.makedirs(os.path.join(scratch, "push"))
    os.makedirs(os.path.join(scratch, "pulled"))
    target = a_folder  # exists on the server: a link stored as sent would lead there
    os.symlink(target, os.path.join(scratch, "push", "pushed-link"))
    subprocess.run(["chown", "-R", "nobody:nogroup", scratch], check=True)
    remote = "%s@127.0.0.1:/links/" % fleet.user("app-a")
    pushed = fleet.ssh_as_nobody("app-a", rsync=["-rl", scratch + "/push/", remote])
    assert pushed.returncode == 0, pushed.stderr
    stored = os.path.join(a_folder, "links", "pushed-link")
    try:
        assert os.path.isdir(target) and os.path.islink(stored)
        assert os.readlink(stored) == "/rsyncd-munged/" + target and not os.path.exists(stored)
        pulled = fleet.ssh_as_nobody("app-a", rsync=["-rl", remote, scratch + "/pulled/"])
        assert pulled.returncode == 0, pulled.stderr
        assert os.readlink(os.path.join(scratch, "pulled", "pushed-link")) == target
    finally:
        shutil.rmtree(os.path.join(a_folder, "links"))


def _free_port() -> int:
    from tests.servers import free_port  # pylint: disable=import-outside-toplevel
    return free_port()


def test_the_server_job_prunes_each_folder_as_its_own_user_and_publishes_freshness(fleet, sample_app, tmp_path):
    a_folder, b_folder = fleet.folder("app-a"), fleet.folder("app-b")
    backups = str(tmp_path / "a")
    for day in ("2025-07-01", "2025-07-02"):
        create_backup(BackupRequest(app_root=str(sample_app), backup_dir=backups, now=_at(day)))
    pushed = run_tasks(tmp_path, [{"name": "push", "devops.reddit_backup.backup_sync": {
        "backup_dir": backups, **fleet.sync_options("app-a")}}])
    assert not pushed.failed, ansiblerun.failure(pushed)
    # What a hostile client can plant in its own folder, as its own user: type folders that are links (to B's
    # folder, to /etc), an archive that is a FIFO, a sidecar that is a FIFO, a fake archive that is a folder.
    user = fleet.user("app-a")
    as_a = ["setpriv", "--reuid=%s" % user, "--regid=%s" % user, "--clear-groups"]
    daily = os.path.join(a_folder, "daily")
    plants = ["mkfifo {d}/backup_20250703_000000.tar.zst", "echo x > {d}/backup_20250703_000000.tar.zst.sha256",
              "echo {{}} > {d}/backup_20250703_000000.tar.zst.meta.json",
              "echo x > {d}/backup_20250704_000000.tar.zst", "echo x > {d}/backup_20250704_000000.tar.zst.sha256",
              "mkfifo {d}/backup_20250704_000000.tar.zst.meta.json",
              "mkdir -p {a}/database/database_20250705_000000.tar.zst",
              "ln -s {b}/daily {a}/manual", "ln -s /etc {a}/config",
              "echo x > {a}/../replica/generation-1.wal"]
    for plant in plants:
        subprocess.run(as_a + ["sh", "-c", plant.format(d=daily, a=a_folder, b=b_folder)], check=True)
    b_before = backups_of(b_folder)
    etc_before = os.stat("/etc").st_mtime_ns
    refused = fleet.job()
    # A folder whose type folders are links is never followed: that client's check fails (alerted), the
    # server vouches for none of its backups (0: the 25-hour alert fires), and every other client is checked.
    assert refused.returncode == 1 and "symbolic link" in refused.stderr and "app-a" in refused.stderr
    assert 'reddit_backup_server_check_success{host="app-a"} 0\n' in fleet.metrics()
    assert 'reddit_backup_server_newest_backup_timestamp_seconds{host="app-a",type="full"} 0\n' in fleet.metrics()
    assert 'reddit_backup_server_check_success{host="app-b"} 1\n' in fleet.metrics()
    assert backups_of(b_folder) == b_before and os.stat("/etc").st_mtime_ns == etc_before
    for link in ("manual", "config"):
        subprocess.run(as_a + ["rm", os.path.join(a_folder, link)], check=True)
    done = fleet.job()
    assert done.returncode == 0, done.stderr
    # keep_last 1 for A's full backups: only the newest is left, the planted pieces untouched (never judged);
    # B's (the default policy) untouched.
    left = set(os.listdir(daily))
    assert {name for name in left if name.startswith("backup_20250701")} == set()
    assert {"backup_20250702_000000.tar.zst", "backup_20250703_000000.tar.zst",
            "backup_20250704_000000.tar.zst.meta.json"} <= left
    assert stat.S_ISFIFO(os.lstat(os.path.join(daily, "backup_20250703_000000.tar.zst")).st_mode)
    assert backups_of(b_folder) == b_before and os.stat("/etc").st_mtime_ns == etc_before
    lock = [path for path in glob.glob(os.path.join(a_folder, ".*")) if "lock" in path]
    assert lock and all(os.lstat(path).st_uid == pwd.getpwnam(user).pw_uid for path in lock)  # ran as A's user
    metrics = fleet.metrics()
    assert 'reddit_backup_server_newest_backup_timestamp_seconds{host="app-a",type="full"} %d\n' % (
        _at("2025-07-02").timestamp()) in metrics
    assert 'reddit_backup_server_check_success{host="app-a"} 1\n' in metrics
    assert 'reddit_backup_server_check_success{host="app-b"} 1\n' in metrics
    assert 'reddit_backup_server_replica_newest_file_timestamp_seconds{host="app-a"}' in metrics
    assert 'replica_newest_file_timestamp_seconds{host="app-b"}' not in metrics
    assert stat.S_IMODE(os.stat(os.path.join(fleet.textfile_dir, "reddit-backup-server.prom")).st_mode) == 0o644


def test_a_client_set_absent_loses_its_access_and_its_data_becomes_roots(fleet):
    clients = [{"name": "app-a", "public_key": fleet.public_key("app-a"), "replica": True},
               {"name": "app-b", "state": "absent"}]
    kept = set(tree_digest(fleet.folder("app-b")))
    result = fleet.apply(clients=clients)
    assert not result.failed, ansiblerun.failure(result)
    with pytest.raises(KeyError):
        pwd.getpwnam(fleet.user("app-b"))
    assert not os.path.exists(os.path.join(fleet.base, "app-b", ".ssh", "authorized_keys"))
    assert set(tree_digest(fleet.folder("app-b"))) == kept
    assert {info[1] for info in tree_digest(fleet.folder("app-b")).values()} == {0}
    refused = fleet.ssh_as_nobody("app-b", rsync=["--list-only", "%s@127.0.0.1:/" % fleet.user("app-b")])
    assert refused.returncode != 0
    assert fleet.job().returncode == 0 and 'host="app-b"' not in fleet.metrics()
    again = fleet.apply(clients=clients)
    assert not again.failed and changed_tasks(again) == []
