# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the runner role wrote for one application (runner.json, settings.json, the monitoring role's
monitoring.json), the exit codes, and dropping root for the application's user."""

from __future__ import annotations

import json
import os
import pwd

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_INSTALLED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
DEFAULT_CONFIG_DIR = "/etc/reddit-backup"
COLLECTION = "devops.reddit_backup"
# Commands a root caller runs as the application's user.
AS_APP_USER = ("create", "list", "verify", "cleanup", "sync", "recovery-test")
READS_REPLICA = ("list", "recovery-test")
REQUIRED_KEYS = ("app_root", "backup_dir", "venv", "collections_path", "ansible_cfg", "state_dir", "log_file")


class ConfigError(Exception):
    """The runner's settings are missing or wrong: re-run the runner role."""


class NotInstalled(Exception):
    """The playbook a command needs is not in the installed collection (yet)."""


class UsageError(Exception):
    """The command was asked for something that cannot be (a backup name no catalog has): exit 2, not recorded."""


class Settings:
    """runner.json (written by the runner role), settings.json (the reddit_backup_* settings the playbooks honour,
    as the inventory gives them) and, when present, monitoring.json (the monitoring role)."""

    def __init__(self, config_dir: str, app: str = None) -> None:
        self.config_dir = config_dir
        self.app = app or os.environ.get("REDDIT_BACKUP_APP") or self._only_app()
        self.dir = os.path.join(config_dir, self.app)
        self.runner = self._load("runner.json", required=True)
        self.monitoring = self._load("monitoring.json", required=False)
        self._playbook_settings = None
        for key in REQUIRED_KEYS:
            if not self.runner.get(key):
                raise ConfigError("%s has no %r; re-run the devops.reddit_backup.runner role"
                                  % (os.path.join(self.dir, "runner.json"), key))

    def _only_app(self) -> str:
        try:
            apps = sorted(name for name in os.listdir(self.config_dir)
                          if os.path.isfile(os.path.join(self.config_dir, name, "runner.json")))
        except OSError:
            apps = []
        if len(apps) == 1:
            return apps[0]
        if not apps:
            raise ConfigError("no application is set up in %s; install one with the devops.reddit_backup.runner "
                              "role" % self.config_dir)
        raise ConfigError("several applications are set up here (%s): choose one with --app" % ", ".join(apps))

    def _load(self, name: str, required: bool):
        path = os.path.join(self.dir, name)
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            if required:
                raise ConfigError("application %r is not set up: %s is missing; install it with the "
                                  "devops.reddit_backup.runner role" % (self.app, path)) from None
            return None
        except (OSError, ValueError) as error:
            raise ConfigError("cannot read %s: %s" % (path, getattr(error, "strerror", None) or error)) from None

    def __getattr__(self, key):
        try:
            return self.__dict__["runner"][key]
        except KeyError:
            raise AttributeError(key) from None

    def setting(self, name: str, default=None):
        """A reddit_backup_* setting exactly as the playbooks get it (``reddit_backup_`` left out of ``name``)."""
        if self._playbook_settings is None:
            self._playbook_settings = self._load("settings.json", required=True)
        value = self._playbook_settings.get("reddit_backup_" + name)
        return default if value is None else value

    @property
    def collection_root(self) -> str:
        return os.path.join(self.collections_path, "ansible_collections", "devops", "reddit_backup")

    def require_playbook(self, playbook: str) -> None:
        if not os.path.isfile(os.path.join(self.collection_root, "playbooks", playbook + ".yml")):
            raise NotInstalled("the playbook %s.%s is not installed yet (it is not in %s); update the collection "
                               "on this host once it is released (re-run the runner role). Nothing was done."
                               % (COLLECTION, playbook, self.collection_root))


def verify_keys(settings: Settings) -> dict:
    """The keys the inventory gives verifications (the age identity, the trusted signing keys): only those set."""
    keys = settings.runner.get("verify_keys") or {}
    return {option: value for option, value in keys.items() if value}


def runs_as_app_user(settings: Settings, command: str) -> bool:
    """Commands that only touch backups drop root, unless backups are signed: the signing key is root's alone; and
    those that read the Litestream replica keep root where there is one: its settings are root's alone too."""
    if command not in AS_APP_USER or settings.runner.get("signing_key"):
        return False
    return not (command in READS_REPLICA and os.path.lexists(replica_settings(settings)))


def replica_settings(settings: Settings) -> str:
    """The settings file of the app's Litestream replica (reddit_backup_replica), the litestream role's by default."""
    try:
        chosen = settings.setting("replica")
    except ConfigError:  # no settings.json (a runner role older than it): the litestream role's place
        chosen = None
    return chosen or os.path.join(settings.dir, "replica.json")


def become_app_user(settings: Settings) -> None:
    """Run as the application's user when root calls a command that only touches backups."""
    user = settings.runner.get("user")
    if os.geteuid() != 0 or not user or user == "root":
        return
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError("the application's user %r does not exist on this host" % user) from None
    os.initgroups(user, account.pw_gid)
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.environ.update({"HOME": account.pw_dir, "USER": user, "LOGNAME": user})
