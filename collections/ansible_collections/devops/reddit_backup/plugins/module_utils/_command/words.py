# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a run names itself (in the log, the summary) and how an argument names a backup."""

from __future__ import annotations

import os


def describe(args) -> str:
    words = [args.command]
    for option in ("type", "name", "before"):
        value = getattr(args, option, None)
        if value and not (option == "type" and args.command == "list"):
            words += ["--" + option, str(value)]
    for flag in ("comprehensive", "dry_run"):
        if getattr(args, flag, False):
            words.append("--" + flag.replace("_", "-"))
    if getattr(args, "archive", None):
        words.append(args.archive)
    return " ".join(words)


def archive_or_name(value: str) -> dict:
    """An archive path (contains '/' or exists) or a backup name / archive file name from the catalog."""
    if "/" in value or os.path.exists(value):
        return {"archive": os.path.abspath(value)}
    return {"name": value}
