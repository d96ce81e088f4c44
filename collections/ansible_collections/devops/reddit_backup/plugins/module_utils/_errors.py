# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's exceptions: each message names the thing and says what to do."""

from __future__ import annotations


class BackupError(Exception):
    """A failure a person can act on; the module turns it into fail_json(msg=str(error))."""


class LockTimeout(BackupError):
    """Another run holds the backup directory's lock for longer than we may wait."""


class NoSpace(BackupError):
    """The backup filesystem is (or would become) full."""
