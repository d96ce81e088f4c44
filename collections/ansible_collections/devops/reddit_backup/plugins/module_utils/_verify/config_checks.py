# Copyright: devops.reddit_backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configuration files parsed the way their readers parse them, never executed: ``*.env`` as KEY=VALUE lines,
``logging*.conf`` as the INI that ``logging.config.fileConfig`` needs, YAML (when a YAML parser is installed),
JSON, and systemd unit files. Each check returns (status, detail) with status passed, failed or skipped."""

from __future__ import annotations

import configparser
import json
import re

TEXT_LIMIT = 4 << 20
CONFIG_DIRS = ("config/", "monitoring/", "systemd/")
UNIT_SUFFIXES = (".service", ".timer", ".socket", ".target", ".path", ".mount")
_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_UNIT_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def _text(data: bytes):
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return None, ("failed", "not UTF-8 text (%s)" % error)


def check_env(data: bytes) -> tuple:
    """KEY=VALUE lines (systemd EnvironmentFile=, `set -a; . file`): comments and blank lines allowed, quoted
    values balanced."""
    text, failure = _text(data)
    if failure:
        return failure
    keys = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(stripped)
        if not match:
            return "failed", "line %d is not KEY=VALUE: %s" % (number, stripped[:80])
        value = match.group(2).strip()
        if value[:1] in ("'", '"') and (len(value) < 2 or value[-1] != value[0]):
            return "failed", "line %d (%s): its quoted value is not closed" % (number, match.group(1))
        keys += 1
    return "passed", "%d KEY=VALUE settings" % keys


def check_logging(data: bytes) -> tuple:
    """The INI that logging.config.fileConfig reads: [loggers], [handlers], [formatters] with keys=, a section
    for each key, a root logger, handlers with a class, references that resolve. Nothing is imported or run."""
    text, failure = _text(data)
    if failure:
        return failure
    parser = configparser.RawConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as error:
        return "failed", "not INI: %s" % str(error).splitlines()[0]
    keys = {}
    for kind in ("loggers", "handlers", "formatters"):
        if not parser.has_option(kind, "keys"):
            return "failed", "section [%s] with keys= is missing" % kind
        keys[kind] = [key.strip() for key in parser.get(kind, "keys").split(",") if key.strip()]
    if "root" not in keys["loggers"]:
        return "failed", "[loggers] keys= does not name root"
    for kind, prefix in (("loggers", "logger_"), ("handlers", "handler_"), ("formatters", "formatter_")):
        for key in keys[kind]:
            if not parser.has_section(prefix + key):
                return "failed", "[%s%s] is missing (named in [%s] keys=)" % (prefix, key, kind)
    for key in keys["handlers"]:
        section = "handler_" + key
        if not parser.has_option(section, "class"):
            return "failed", "[%s] has no class=" % section
        formatter = parser.get(section, "formatter", fallback="").strip()
        if formatter and formatter not in keys["formatters"]:
            return "failed", "[%s] uses formatter %s, which [formatters] does not name" % (section, formatter)
    for key in keys["loggers"]:
        section = "logger_" + key
        for handler in (h.strip() for h in parser.get(section, "handlers", fallback="").split(",")):
            if handler and handler not in keys["handlers"]:
                return "failed", "[%s] uses handler %s, which [handlers] does not name" % (section, handler)
    return "passed", "logging configuration: %d loggers, %d handlers, %d formatters" % (
        len(keys["loggers"]), len(keys["handlers"]), len(keys["formatters"]))


def check_yaml(data: bytes) -> tuple:
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        return "skipped", "skipped: no YAML parser on this host (install python3-yaml to check YAML files)"
    try:
        yaml.safe_load(data)
    except yaml.YAMLError as error:
        return "failed", "not YAML: %s" % " ".join(str(error).split())
    return "passed", "YAML parses"


def check_json(data: bytes) -> tuple:
    try:
        json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return "failed", "not JSON: %s" % error
    return "passed", "JSON parses"


def check_unit(data: bytes) -> tuple:
    """A systemd unit file: [Section] headers, Key=Value lines, comments, backslash continuations."""
    text, failure = _text(data)
    if failure:
        return failure
    section = None
    continued = False
    sections = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if continued:
            continued = stripped.endswith("\\")
            continue
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]") or len(stripped) < 3:
                return "failed", "line %d is not a [Section] header: %s" % (number, stripped[:80])
            section = stripped[1:-1]
            sections += 1
            continue
        if section is None:
            return "failed", "line %d is outside any [Section]" % number
        key, sep, _value = stripped.partition("=")
        if not sep or not _UNIT_KEY.match(key.strip()):
            return "failed", "line %d in [%s] is not Key=Value: %s" % (number, section, stripped[:80])
        continued = stripped.endswith("\\")
    if not sections:
        return "failed", "no [Section] at all"
    return "passed", "systemd unit: %d sections" % sections


def checker_for(path: str):
    """The check for a configuration file at ``path`` (relative to the app root), or None."""
    if not path.startswith(CONFIG_DIRS):
        return None
    name = path.rsplit("/", 1)[-1]
    if name.endswith(".env"):
        return check_env
    if name.startswith("logging") and name.endswith((".conf", ".ini")):
        return check_logging
    if name.endswith((".yml", ".yaml")):
        return check_yaml
    if name.endswith(".json"):
        return check_json
    if path.startswith("systemd/") and name.endswith(UNIT_SUFFIXES):
        return check_unit
    return None
