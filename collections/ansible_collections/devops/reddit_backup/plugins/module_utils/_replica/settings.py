# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replica settings the litestream role writes on the host (``/etc/reddit-backup/<app>/replica.json``): the
binary, the configuration, the credentials and the databases a replica restore needs.

Root runs the binary they name, so every file is trusted only as root's and writable by root alone, and the
settings file is read without following a symlink."""

from __future__ import annotations

import json
import os
import stat

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError
from ansible_collections.devops.reddit_backup.plugins.module_utils._nofollow import Replaced, open_regular

SETTINGS_MAX_BYTES = 1 << 20
FORMAT = "devops.reddit_backup replica 1"


def load(path: str) -> dict:
    """{app_root, databases, config, binary, credentials} from the litestream role's settings file ``path``."""
    try:
        with open_regular(path) as handle:
            _check_root_only(path, os.fstat(handle.fileno()))
            settings = json.loads(handle.read(SETTINGS_MAX_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise BackupError("replica settings %s do not exist; apply the devops.reddit_backup.litestream role on this "
                          "host, or restore from an archive" % path) from None
    except (OSError, Replaced, UnicodeDecodeError, ValueError) as error:
        raise BackupError("replica settings %s cannot be read (%s); apply the devops.reddit_backup.litestream role "
                          "again" % (path, error)) from None
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        raise BackupError("replica settings %s are not the litestream role's (format %r); apply the role again"
                          % (path, settings.get("format") if isinstance(settings, dict) else None))
    _check_shape(path, settings)
    for name in ("config", "binary"):
        _check_root_only(settings[name], _lstat(settings[name], name))
    for name, credential in sorted(settings.get("credentials", {}).items()):
        _check_root_only(credential, _lstat(credential, "credential " + name))
    return settings


def _check_shape(path: str, settings: dict) -> None:
    strings = all(isinstance(settings.get(name), str) and settings[name] for name in ("app_root", "config", "binary"))
    databases = settings.get("databases")
    credentials = settings.get("credentials", {})
    if not isinstance(settings.get("replica_path") or "", str):
        raise BackupError("replica settings %s have a replica_path that is no path; apply the "
                          "devops.reddit_backup.litestream role again" % path)
    if not strings or not isinstance(databases, list) or not all(isinstance(item, str) for item in databases) \
            or not isinstance(credentials, dict) or not all(isinstance(item, str) for item in credentials.values()):
        raise BackupError("replica settings %s lack app_root, config, binary or a list of databases; apply the "
                          "devops.reddit_backup.litestream role again" % path)


def _lstat(path: str, what: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError as error:
        raise BackupError("the replica's %s %s cannot be found (%s); apply the devops.reddit_backup.litestream role "
                          "again" % (what, path, error.strerror)) from None


def _check_root_only(path: str, info: os.stat_result) -> None:
    """Root runs what these files say: each must be a regular file of root's that nobody else can write."""
    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise BackupError("%s is not a regular file of root's that only root can write (owner uid %d, mode %04o); "
                          "a restore does not run what others could have changed. Apply the "
                          "devops.reddit_backup.litestream role again" % (path, info.st_uid, info.st_mode & 0o7777))
