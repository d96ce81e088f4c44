# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module's last line of defence: every path option (and every number, for nan and inf) is checked in words
before the engine sees it, and an unexpected exception becomes a message that says it is a bug, what was being done
and where to report it, never the exception's text (which may quote an option value or a secret)."""

from __future__ import annotations

import contextlib
import math
import os
import re
import traceback
from typing import Iterator, Optional

from ansible_collections.devops.reddit_backup.plugins.module_utils._errors import BackupError

ISSUES_URL = "https://example.invalid/devops/reddit_backup/issues"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def path_problem(option: str, value: str) -> Optional[str]:
    """None for a path option's value a file system can take as meant, else what is wrong, without quoting it."""
    if value == "":
        return "%s is empty; give a path (or leave the option out)" % option
    if "\x00" in value:
        return "%s holds a NUL byte, which no path can hold; remove it" % option
    if "\n" in value or "\r" in value:
        return ("%s ends in or holds a line break (what a YAML | block adds); remove it, e.g. with >- or "
                "| trim" % option)
    if CONTROL_CHARACTERS.search(value):
        return "%s holds a control character; remove it" % option
    return None


def option_values(spec: dict, params: dict, kinds: tuple, prefix: str = "") -> Iterator:
    """(option name, value) of every value given of these types: options, list elements, and inside suboptions."""
    for option, option_spec in spec.items():
        value, name = (params or {}).get(option), prefix + option
        if value is None:
            continue
        kind = option_spec.get("type")
        if kind in kinds:
            yield name, value
        elif kind == "list" and option_spec.get("elements") in kinds:
            for item in value:
                yield name, item
        elif option_spec.get("options"):
            for item in value if kind == "list" else [value]:
                yield from option_values(option_spec["options"], item, kinds, name + ".")


def options_problem(spec: dict, params: dict) -> Optional[str]:
    """The first problem with any path or number option of a module, or None."""
    for name, value in option_values(spec, params, ("path",)):
        problem = path_problem(name, str(value))
        if problem:
            return problem
    for name, value in option_values(spec, params, ("float",)):
        if not math.isfinite(value):
            return "%s must be a number, not %s" % (name, value)
    return None


def bug_report(module_name: str, doing: str, error: BaseException) -> str:
    """What a person reads when the collection itself failed: a bug, while doing what, where in the code, and where
    to report it. The exception's text is left out: it may quote an option value or a secret."""
    frames = traceback.extract_tb(error.__traceback__)
    place = "%s line %d" % (os.path.basename(frames[-1].filename), frames[-1].lineno) if frames else "unknown place"
    return ("a bug in devops.reddit_backup stopped %s while %s (an unexpected %s at %s); nothing in your options "
            "explains it. Please report it at %s with this message and the task's options (leave out secrets)"
            % (module_name, doing, type(error).__name__, place, ISSUES_URL))


@contextlib.contextmanager
def guarded(module, doing: str) -> Iterator[None]:
    """Run a module's work: bad paths and BackupError fail in words; any other exception is reported as a bug.

    ``module`` is the AnsibleModule (its argument_spec, params, fail_json); ``doing`` says what the module was doing,
    e.g. "creating a backup". The traceback (frames only, no exception text) goes to ``exception`` for -vvv.
    """
    problem = options_problem(module.argument_spec, module.params)
    if problem:
        module.fail_json(msg=problem)
    try:
        yield
    except BackupError as error:
        module.fail_json(msg=str(error))
    except Exception as error:  # pylint: disable=broad-except  # the last line of defence, reported as a bug
        frames = "".join(traceback.format_tb(error.__traceback__))
        module.fail_json(msg=bug_report(getattr(module, "_name", "the module"), doing, error), exception=frames)
