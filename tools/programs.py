#!/usr/bin/env python3
"""The external programs the project calls, found in its code, and the Debian packages declared for them.

`tools/packages.txt` declares the Debian packages of each `make` step and which package gives each program the
code calls. tools/packages.py reads that file; this module scans the code for the programs it runs, so
tests/unit/test_package_lists.py fails when someone calls a new program without declaring it.

    python3 tools/programs.py            every program found, where, and what provides it
    python3 tools/programs.py --check    what is called but not declared (exit 1 if anything)

What counts as a call (precise enough to keep English words out, broad enough to catch a new program):
  Python    the first string of a list or tuple literal, the argument of which()/_require()/require_*(), a
            string default of a parameter named tool/program/binary/executable, an UPPER_CASE = "word" constant;
  YAML      the first item of an `argv:` list, the command words of `cmd:`/`shell:`/`command:` strings;
  shell     the words in command position (line start, after | ; && || $( and before them exec, sudo...).
A word counts only when it is a program: on PATH, or declared. Stdlib only (it runs before the venv exists).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from packages import ROOT, parse_packages, step_packages  # noqa: E402,F401  (tools/ is no package; tests read both here)

COLLECTION = Path("collections/ansible_collections/devops/reddit_backup")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Where each step's programs are called from (relative to the repo root). The engine, roles and playbooks run
# under the unit and integration suites; tools/setup.sh and the Makefile run before every step (base).
STEP_SOURCES = {
    "base": ["tools/setup.sh", "tools/packages.py", "tools/programs.py", ".ci/run"],
    # (The test helpers a step's files import, such as tests/servers.py, are followed: see files_of.)
    "unit": ["tests/unit", "tests/conftest.py", "tests/promtool", "examples", str(COLLECTION / "plugins"),
             str(COLLECTION / "roles/runner/files")],
    "integration": ["tests/integration", "tests/servers.py", "tests/notifyservers.py", "tests/promtool",
                    "tests/sampleapp.py", "examples", "playbooks", str(COLLECTION / "plugins"),
                    str(COLLECTION / "roles"), str(COLLECTION / "playbooks")],
    "sanity": ["tools/sanity.sh"],
    "matrix": ["tools/matrix.sh"],
    "docs": ["tools/docs.sh"],
    # tools/molecule.py and the create/destroy playbooks run on this host; the scenarios run inside the image.
    "molecule": ["tools/molecule.py"] + ["molecule/%s/%s.yml" % (scenario, playbook) for scenario in
                                         ("default", "recovery", "pre_maintenance", "disaster_recovery")
                                         for playbook in ("create", "destroy")],
    "molecule-image": ["molecule"],
    "demo": ["playbooks/demo.yml"],
    "bench": ["bench"],
    "fresh-check": ["tools/fresh-check.sh"],
}

# The scenarios' playbooks also run tasks on the molecule host (delegate_to: localhost), whose packages count.
STEP_ALSO = {"molecule-image": ["molecule"]}

WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]*$")
SHELL_COMMAND = re.compile(
    r"(?:^|[|;&`{]|(?<![=$])\(|\$\(|\b(?:then|do|else|exec|sudo|as_root|nice(?: -n \d+)?|timeout \d+|xargs(?: -r)?|command -v)\s)"
    r"\s*(?:[A-Z_]+=[^\s(]\S*\s+)*([A-Za-z][A-Za-z0-9_.+-]*)")
WHICH_FUNCTIONS = re.compile(r"^(which|_?require(_\w+)?)$")
PROGRAM_PARAMETERS = {"tool", "program", "binary", "executable"}
# In a shell script these are the shell's own commands, whatever /usr/bin holds.
SHELL_BUILTINS = {"kill", "echo", "printf", "test", "read", "cd", "exit", "trap", "wait", "command", "type",
                  "local", "export", "set", "shift", "source", "return", "exec", "true", "false", "pwd", "time"}
# A file names a program it runs only when present (its fallback is in the code) with a comment:
# `optional-program: NAME` (the scan then does not count NAME in that file).
OPTIONAL_MARK = re.compile(r"optional-program:\s*([A-Za-z][A-Za-z0-9_.+-]*)")
YAML_COMMAND_KEYS = {"cmd", "shell", "command", "ansible.builtin.shell", "ansible.builtin.command",
                     "ansible.builtin.raw", "raw"}


def _python_calls(text: str) -> tuple[set, set]:
    """(maybe, sure): words in command position; sure ones must be programs (a which() or require() argument)."""
    maybe: set = set()
    sure: set = set()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return maybe, sure

    def word(node) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and WORD.match(node.value):
            return node.value
        return ""

    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts and word(node.elts[0]):
            maybe.add(word(node.elts[0]))
        elif isinstance(node, ast.Call) and node.args and word(node.args[0]):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if WHICH_FUNCTIONS.match(name):
                sure.add(word(node.args[0]))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.args[len(node.args.args) - len(node.args.defaults):]
            for argument, default in zip(arguments, node.args.defaults):
                if argument.arg in PROGRAM_PARAMETERS and word(default):
                    sure.add(word(default))
        elif isinstance(node, ast.Assign) and word(node.value):
            if any(isinstance(target, ast.Name) and target.id.isupper() for target in node.targets):
                maybe.add(word(node.value))
    return maybe, sure


def _shell_calls(text: str) -> set:
    found: set = set()
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line)
        found.update(SHELL_COMMAND.findall(line))
    return found - SHELL_BUILTINS


def _yaml_calls(text: str) -> set:
    found: set = set()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        argv = re.match(r"^\s*argv:\s*(.*)$", line)
        if argv:
            rest = argv.group(1).strip()
            first = rest[1:].split(",")[0] if rest.startswith("[") else ""
            if not rest and index + 1 < len(lines):
                first = re.sub(r"^\s*-\s*", "", lines[index + 1])
            first = first.strip().strip("\"'")
            if WORD.match(first):
                found.add(first)
            continue
        command = re.match(r"^\s*-?\s*([\w.]+):\s*(.+)$", line)
        if command and command.group(1) in YAML_COMMAND_KEYS and not command.group(2).startswith(("{{", "|", ">")):
            found.update(_shell_calls(command.group(2).strip("\"'")))
    return found


def calls_in(path: Path) -> tuple[set, set]:
    """(maybe, sure) program words called in one file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return set(), set()
    optional = set(OPTIONAL_MARK.findall(text))
    maybe: set = set()
    sure: set = set()
    if path.suffix == ".py":
        maybe, sure = _python_calls(text)
    elif path.suffix in (".yml", ".yaml"):
        maybe = _yaml_calls(text)
    elif path.suffix == ".sh" or text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/sh"):
        maybe = _shell_calls(text)
    return maybe - optional, sure - optional


LOCAL_IMPORT = re.compile(r"^\s*(?:from|import)\s+((?:tests|bench)(?:\.\w+)+)", re.MULTILINE)


def _listed_files(step: str, root: Path):
    for source in STEP_SOURCES[step]:
        path = root / source
        if path.is_file():
            yield path
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and "tests/output" not in child.as_posix() and "__pycache__" not in child.parts:
                    yield child


def files_of(step: str, root: Path = ROOT):
    """The step's files, and the project's test helpers they import (a fixture's programs are the step's too)."""
    pending = list(_listed_files(step, root))
    seen: set = set()
    while pending:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.add(path)
        yield path
        if path.suffix == ".py":
            for module in LOCAL_IMPORT.findall(path.read_text(encoding="utf-8", errors="replace")):
                imported = root / (module.replace(".", "/") + ".py")
                if imported.is_file():
                    pending.append(imported)


@functools.lru_cache(maxsize=None)
def on_system_path(program: str) -> bool:
    return bool(shutil.which(program, path=SYSTEM_PATH))


def programs_called(step: str, declared: dict, root: Path = ROOT) -> dict:
    """program -> the files of `step` that call it: declared programs, sure calls, and words on the PATH."""
    found: dict = {}
    for path in files_of(step, root):
        maybe, sure = calls_in(path)
        for word in maybe | sure:
            if word in sure or word in declared or on_system_path(word):
                found.setdefault(word, set()).add(path.relative_to(root).as_posix())
    return found


@functools.lru_cache(maxsize=None)
def _dpkg_files() -> dict:
    """Every path an installed package ships -> that package (dpkg's own lists; one read, not a dpkg -S each)."""
    owners: dict = {}
    for listing in Path("/var/lib/dpkg/info").glob("*.list"):
        package = listing.name[:-len(".list")].split(":", 1)[0]
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            owners.setdefault(line, package)
    return owners


@functools.lru_cache(maxsize=None)
def providing_package(program: str) -> str:
    """The installed Debian package that provides `program` on the system PATH, or '' if none."""
    executable = shutil.which(program, path=SYSTEM_PATH)
    if not executable:
        return ""
    owners = _dpkg_files()
    candidates = [executable, os.path.realpath(executable)]
    candidates += [os.path.join(directory, program) for directory in ("/bin", "/sbin", "/usr/bin", "/usr/sbin")]
    for candidate in candidates:
        if candidate in owners:
            return owners[candidate]
    return ""


@functools.lru_cache(maxsize=None)
def is_required_package(package: str) -> bool:
    """Priority: required packages are in every Debian system (debootstrap --variant=minbase installs them)."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", package], capture_output=True, text=True,
                            check=False)
    return result.returncode == 0 and result.stdout.strip() == "required"


def problems(step: str, steps: dict, declared: dict, root: Path = ROOT) -> list:
    """What is wrong with the declared lists for the programs `step` calls (empty when all is covered)."""
    found = []
    packages = set(steps.get("base", [])) | set(steps.get(step, []))
    for other in STEP_ALSO.get(step, []):
        packages |= set(steps.get(other, []))
    for program, files in sorted(programs_called(step, declared, root).items()):
        where = ", ".join(sorted(files))
        package = declared.get(program)
        if package == "-":
            continue
        if package is None:
            provider = providing_package(program)
            if provider and is_required_package(provider):
                continue
            found.append("%s calls `%s` (%s): declare `program %s PACKAGE` in tools/packages.txt and add the "
                         "package to step %s" % (where, program, provider or "not installed here", program, step))
        elif package not in packages:
            found.append("%s calls `%s`: its package %s is not in step %s (nor base) of tools/packages.txt"
                         % (where, program, package, step))
    return found


def main(argv: list) -> int:
    if argv == ["--check"]:
        steps, declared = parse_packages()
        found = [problem for step in STEP_SOURCES for problem in problems(step, steps, declared)]
        print("\n".join(found) or "every program the code calls is declared")
        return 1 if found else 0
    steps, declared = parse_packages()
    for step in STEP_SOURCES:
        for program, files in sorted(programs_called(step, declared).items()):
            package = declared.get(program) or providing_package(program) or "?"
            print("%-12s %-18s %-24s %s" % (step, program, package, ", ".join(sorted(files)[:3])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
