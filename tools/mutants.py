#!/usr/bin/env python3
"""`make mutants`: break each safety promise on purpose, one at a time, and require its tests to notice.

The list is tests/mutants.yml: each entry names the promise, the doc line that makes it (the doc file and a
quoted claim that must still be in it), one exact text substitution in one source file (the original must occur
exactly once, so a refactor that moves the code fails here loudly instead of passing silently), and the test
node ids that must fail once it is applied. Every mutation runs on a scratch copy of the repository (never the
work tree), with only its tests. Exit status 0 only when every mutation applied and was killed.

  tools/mutants.py                 run every mutation (2 workers)
  tools/mutants.py ID [ID...]      run only these
  tools/mutants.py --list          check the list (applies, claims in the docs) without running tests
  tools/mutants.py --write-docs    regenerate docs/mutants.md from the list
  tools/mutants.py --check-docs    fail when docs/mutants.md is not what the list generates
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST_FILE = os.path.join(ROOT, "tests", "mutants.yml")
COLLECTION = "collections/ansible_collections/devops/reddit_backup"
DOCS_FILE = os.path.join(ROOT, COLLECTION, "docs", "mutants.md")
# What the scratch copy leaves out: the venv, build output, caches and VCS data are not needed by the tests.
SKIPPED = {".git", ".venv", "build", ".ansible", ".pytest_cache", "demo", "__pycache__"}
KEYS = ("id", "promise", "doc", "claim", "file", "original", "replacement", "tests")
TEST_TIMEOUT = 600


class ListError(Exception):
    """The mutation list is malformed, or an entry no longer applies to the code or the docs."""


def expand(path: str) -> str:
    """A path of the list: relative to the repository, ``coll:`` standing for the collection's folder."""
    return COLLECTION + "/" + path[len("coll:"):] if path.startswith("coll:") else path


def load(list_file: str = LIST_FILE) -> list:
    with open(list_file, encoding="utf-8") as handle:
        entries = yaml.safe_load(handle)
    if not isinstance(entries, list) or not entries:
        raise ListError("%s must be a YAML list of mutations" % list_file)
    seen = set()
    for number, entry in enumerate(entries, 1):
        missing = [key for key in KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise ListError("entry %d of %s lacks %s" % (number, list_file, ", ".join(missing)))
        if entry["id"] in seen:
            raise ListError("mutation id %s appears twice in %s" % (entry["id"], list_file))
        seen.add(entry["id"])
        if not entry["tests"] or not all(isinstance(test, str) for test in entry["tests"]):
            raise ListError("mutation %s names no tests" % entry["id"])
    return entries


def problems(entry: dict, root: str = ROOT) -> list:
    """Why ``entry`` no longer applies to the tree at ``root`` (empty when it does)."""
    found = []
    source = os.path.join(root, expand(entry["file"]))
    if not os.path.isfile(source):
        found.append("%s: %s does not exist" % (entry["id"], entry["file"]))
    else:
        count = open(source, encoding="utf-8").read().count(entry["original"])
        if count != 1:
            found.append("%s: the original text occurs %d times in %s (must be exactly once): the code moved, "
                         "update the entry" % (entry["id"], count, entry["file"]))
    if entry["original"] == entry["replacement"]:
        found.append("%s: the replacement is the original" % entry["id"])
    doc = os.path.join(root, expand(entry["doc"]))
    if not os.path.isfile(doc):
        found.append("%s: doc %s does not exist" % (entry["id"], entry["doc"]))
    elif entry["claim"] not in " ".join(open(doc, encoding="utf-8").read().split()):
        found.append("%s: the claim %r is no longer in %s: the promise was reworded, update the entry"
                     % (entry["id"], entry["claim"], entry["doc"]))
    for test in entry["tests"]:
        if not os.path.isfile(os.path.join(root, test.split("::")[0])):
            found.append("%s: test file %s does not exist" % (entry["id"], test.split("::")[0]))
    return found


def doc_line(entry: dict, root: str = ROOT):
    """The line of its doc where the claim starts (whitespace-insensitive), for the report."""
    text, starts = "", []
    with open(os.path.join(root, expand(entry["doc"])), encoding="utf-8") as handle:
        for line in handle:
            starts.append(len(text))
            text += " ".join(line.split()) + " "
    found = text.find(" ".join(entry["claim"].split()))
    return None if found < 0 else sum(1 for start in starts if start <= found)


def render_docs(entries: list) -> str:
    lines = [
        "# Mutants: every safety promise has a test that fails when it breaks",
        "",
        "Generated by `tools/mutants.py --write-docs` from `tests/mutants.yml`; a unit test fails when the two "
        "differ. `make mutants` applies each mutation below, one at a time, to a scratch copy of the repository and "
        "runs only its tests: each must fail (the mutation is *killed*). A mutation that survives, or that no "
        "longer applies (its original text is not found exactly once, or its claim left the doc), fails the run.",
        "",
        "To add a promise: add an entry to `tests/mutants.yml` (`id`, `promise`, `doc` and `claim`: the doc file "
        "and words of it that make the promise; `file`, `original`, `replacement`: one exact substitution; "
        "`tests`: the pytest node ids that must catch it), check it with `tools/mutants.py --list ID` and "
        "`tools/mutants.py ID`, then run `tools/mutants.py --write-docs`.",
        "",
        "| mutation | the promise it breaks | where it is promised | what is changed | tests that must fail |",
        "|---|---|---|---|---|",
    ]
    for entry in entries:
        lines.append("| `%s` | %s | `%s`: \"%s\" | `%s`: `%s` → `%s` | %s |" % (
            entry["id"], _cell(entry["promise"]), entry["doc"].replace("coll:", ""), _cell(entry["claim"]),
            entry["file"].replace("coll:", ""), _code(entry["original"]), _code(entry["replacement"]),
            "<br>".join("`%s`" % test.replace("tests/unit/plugins/module_utils/", "")
                        for test in entry["tests"])))
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    text = " ".join(text.split())
    return (text if len(text) <= 70 else text[:67] + "...").replace("|", "\\|").replace("`", "'")


def scratch_copy(into: str) -> str:
    target = os.path.join(into, "repo")
    shutil.copytree(ROOT, target, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if n in SKIPPED or n.endswith(".pyc")])
    return target


def run_tests(root: str, tests: list) -> tuple:
    """(exit status, last lines of output) of pytest on ``tests`` in the copy at ``root``."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"),
               ANSIBLE_HOME=os.path.join(root, ".ansible"), ANSIBLE_LOCAL_TEMP=os.path.join(root, ".ansible", "tmp"))
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-o",
               "addopts=--strict-markers"] + tests
    try:
        completed = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                   timeout=TEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, "timed out after %d s" % TEST_TIMEOUT
    return completed.returncode, "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-3:])


def run_mutation(entry: dict, root: str) -> dict:
    """Apply ``entry`` in the copy at ``root``, run its tests, undo it. Killed means pytest reported failures
    (exit 1); an error collecting or running them (any other status) is reported as such, not as a kill."""
    path = os.path.join(root, expand(entry["file"]))
    original = open(path, encoding="utf-8").read()
    started = time.monotonic()
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(original.replace(entry["original"], entry["replacement"], 1))
        status, tail = run_tests(root, entry["tests"])
    finally:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(original)
    outcome = "killed" if status == 1 else "SURVIVED" if status == 0 else "ERROR (pytest exit %d)" % status
    return {"id": entry["id"], "outcome": outcome, "seconds": time.monotonic() - started, "tail": tail}


def run_all(entries: list, workers: int) -> list:
    """Baseline first (every named test passes unmutated, or no kill means anything), then each mutation on a
    scratch copy of its worker's own."""
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        copies = [scratch_copy(os.path.join(scratch, "worker-%d" % n)) for n in range(workers)]
        tests = sorted({test for entry in entries for test in entry["tests"]})
        started = time.monotonic()
        status, tail = run_tests(copies[0], tests)
        verdict = "pass" if status == 0 else "FAIL"
        print("baseline: %d test ids, unmutated: %s in %.0f s" % (len(tests), verdict, time.monotonic() - started),
              flush=True)
        if status != 0:
            print(tail)
            return [{"id": "(baseline)", "outcome": "ERROR (the tests fail without any mutation)",
                     "seconds": 0, "tail": tail}]
        free = list(copies)
        lock = threading.Lock()

        def one(entry: dict) -> dict:
            with lock:
                root = free.pop()
            try:
                result = run_mutation(entry, root)
            finally:
                with lock:
                    free.append(root)
            print("%-34s %-9s %5.1f s" % (result["id"], result["outcome"], result["seconds"]), flush=True)
            return result

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, entries))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="check the list without running tests")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--check-docs", action="store_true")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("MUTANTS_WORKERS", "2")))
    args = parser.parse_args(argv)
    try:
        entries = load()
    except (OSError, ListError, yaml.YAMLError) as error:
        print("mutants: %s" % error, file=sys.stderr)
        return 2
    if args.write_docs:
        with open(DOCS_FILE, "w", encoding="utf-8") as handle:
            handle.write(render_docs(entries))
        print("wrote %s" % os.path.relpath(DOCS_FILE, ROOT))
        return 0
    if args.check_docs:
        current = open(DOCS_FILE, encoding="utf-8").read() if os.path.exists(DOCS_FILE) else ""
        if current != render_docs(entries):
            print("mutants: %s is not what tests/mutants.yml generates; run tools/mutants.py --write-docs"
                  % os.path.relpath(DOCS_FILE, ROOT), file=sys.stderr)
            return 1
        return 0
    unknown = sorted(set(args.ids) - {entry["id"] for entry in entries})
    if unknown:
        print("mutants: no mutation named %s in tests/mutants.yml" % ", ".join(unknown), file=sys.stderr)
        return 2
    chosen = [entry for entry in entries if not args.ids or entry["id"] in args.ids]
    stale = [problem for entry in chosen for problem in problems(entry)]
    if stale:
        print("mutants: the list no longer applies:\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    if args.list:
        for entry in chosen:
            print("%-34s %s:%s  %s" % (entry["id"], expand(entry["doc"]), doc_line(entry), entry["promise"]))
        return 0
    started = time.monotonic()
    results = run_all(chosen, max(1, min(args.workers, len(chosen))))
    failed = [result for result in results if result["outcome"] != "killed"]
    print("\n%d mutations, %d killed, %d not, in %.0f s" % (len(results), len(results) - len(failed),
                                                            len(failed), time.monotonic() - started))
    for result in failed:
        print("NOT KILLED: %s (%s)\n  %s" % (result["id"], result["outcome"], result["tail"].replace("\n", "\n  ")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
