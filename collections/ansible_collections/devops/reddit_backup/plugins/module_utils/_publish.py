# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic writes of files that other users or services read (metrics for node_exporter, units for systemd, cron
files): _fs.atomic_write_bytes writes them private, so they get their mode before they take their name."""

from __future__ import annotations

import os

from ansible_collections.devops.reddit_backup.plugins.module_utils import _fs
from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

PUBLIC_FILE_MODE = 0o644


def write_public(path: str, data: bytes, mode: int = PUBLIC_FILE_MODE) -> None:
    """Atomically replace ``path`` with ``data`` at ``mode``: written with _fs.atomic_write_bytes to a hidden
    name beside it (0600), given its mode, then renamed over ``path``, so readers never see a part or a file
    they may not read."""
    directory = os.path.dirname(path) or "."
    staged = _fs.temp_path(directory, os.path.basename(path))
    try:
        _fs.atomic_write_bytes(staged, data)
        os.chmod(staged, mode)
        os.replace(staged, path)
    except OSError as error:
        _fs.remove_quietly(staged)
        raise _fs.as_backup_error(error, path) from error
    except BackupError:
        _fs.remove_quietly(staged)
        raise
    _fs.fsync_dir(directory)
