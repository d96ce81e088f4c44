"""Real remotes for the sync tests, on 127.0.0.1 only, on free ports:

* a backup server: OpenSSH's sshd with a private config, its own host key and one authorized key, serving a
  folder of the test (rsync runs on it through ssh, as on the guide's backup server);
* an object store: moto's server mode, **an implementation of the S3 API** (no S3 server can be installed on
  these machines), on a thread of the test process.

Both are started and stopped by the fixtures here; nothing else is ever reached.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on %s:%d after %s s" % (LOOPBACK, port, timeout))


class BackupServer:
    """sshd on 127.0.0.1:<port>; ``remote`` is the ssh:// URL of its backup folder, ``ssh_key`` and
    ``known_hosts`` what a client needs, ``folder`` the folder on disk. With ``users``, a backup server as the
    backup_server role makes one: those users log in with the keys in their own ~/.ssh/authorized_keys, modes
    checked (StrictModes)."""

    def __init__(self, base, users=None) -> None:
        self.base = str(base)
        self.folder = os.path.join(self.base, "server", "backups")
        os.makedirs(self.folder, 0o700)
        self.port = free_port()
        self.host_key = os.path.join(self.base, "host_ed25519")
        self.ssh_key = os.path.join(self.base, "client_ed25519")
        self.known_hosts = os.path.join(self.base, "known_hosts")
        self.authorized_keys = os.path.join(self.base, "authorized_keys")
        for key in (self.host_key, self.ssh_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "reddit-backup-test", "-f", key],
                           check=True)
        shutil.copy(self.ssh_key + ".pub", self.authorized_keys)
        os.chmod(self.authorized_keys, 0o600)
        with open(self.host_key + ".pub") as handle:
            host_public = " ".join(handle.read().split()[:2])
        with open(self.known_hosts, "w") as handle:
            handle.write("[%s]:%d %s\n" % (LOOPBACK, self.port, host_public))
        config = os.path.join(self.base, "sshd_config")
        with open(config, "w") as handle:
            handle.write("\n".join([
                "ListenAddress %s:%d" % (LOOPBACK, self.port),
                "HostKey %s" % self.host_key,
                "AuthorizedKeysFile %s" % (".ssh/authorized_keys" if users else self.authorized_keys),
                "PidFile %s" % os.path.join(self.base, "sshd.pid"),
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
                "PermitRootLogin prohibit-password", "StrictModes %s" % ("yes" if users else "no"),
                "AllowUsers %s" % " ".join(users or [self.user]),
                *(["Subsystem sftp /usr/lib/openssh/sftp-server"] if users else []),
                "KexAlgorithms curve25519-sha256",  # the default post-quantum exchange is slow on small machines
                "MaxStartups 50", "LogLevel ERROR",
                "Subsystem sftp internal-sftp",  # Litestream replicates over SFTP
                ""]))
        os.makedirs("/run/sshd", 0o755, exist_ok=True)  # sshd's privilege separation folder
        self.log = open(os.path.join(self.base, "sshd.log"), "wb")
        self.process = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", config],
                                        stdout=self.log, stderr=self.log)
        wait_for_port(self.port)

    @property
    def user(self) -> str:
        import pwd  # pylint: disable=import-outside-toplevel
        return pwd.getpwuid(os.getuid()).pw_name

    @property
    def remote(self) -> str:
        return "ssh://%s@%s:%d%s" % (self.user, LOOPBACK, self.port, self.folder)

    def options(self) -> dict:
        """The backup_sync options that reach this server."""
        return {"remote": self.remote, "ssh_key": self.ssh_key, "known_hosts": self.known_hosts}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class S3Server:
    """moto's server mode on 127.0.0.1:<port>: an implementation of the S3 API, standing in for S3 (or MinIO,
    Ceph ...), reached through s3_endpoint_url. ``options(bucket)`` gives the backup_sync options."""

    ACCESS_KEY = "test-access-key"
    SECRET_KEY = "test-secret-key"

    def __init__(self) -> None:
        import logging  # pylint: disable=import-outside-toplevel

        from moto.server import ThreadedMotoServer  # pylint: disable=import-outside-toplevel
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log in the test output
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address=LOOPBACK, port=self.port, verbose=False)
        self.server.start()
        wait_for_port(self.port)
        self.endpoint_url = "http://%s:%d" % (LOOPBACK, self.port)

    def client(self):
        import boto3  # pylint: disable=import-outside-toplevel
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=self.ACCESS_KEY, aws_secret_access_key=self.SECRET_KEY)

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> dict:
        """{key: size} of every object in ``bucket``."""
        found = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["Size"]
        return found

    def options(self, bucket: str, prefix: str = "app1") -> dict:
        return {"remote": "s3://%s/%s" % (bucket, prefix), "s3_endpoint_url": self.endpoint_url,
                "s3_region": "us-east-1", "s3_access_key": self.ACCESS_KEY, "s3_secret_key": self.SECRET_KEY}

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def backup_server(tmp_path_factory):
    """An sshd on 127.0.0.1 serving a backup folder over rsync+ssh, for the tests of one module."""
    if not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")) or not shutil.which("rsync"):
        pytest.skip("openssh-server and rsync are needed (tools/setup.sh installs them)")
    server = BackupServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_server():
    """moto's server mode (an implementation of the S3 API) on 127.0.0.1, for the tests of one module."""
    pytest.importorskip("moto.server")
    server = S3Server()
    yield server
    server.stop()
