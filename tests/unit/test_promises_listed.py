"""tests/promises.yml is the checked list of the absolute words in the audited documents ("never", "always",
"atomic", "refused", "cannot", "guaranteed") in READMEs, docs and the modules' documentation: each claim is in its document, each test it names exists, and no
line of an audited document holds one of those words without an entry (a test, or the reason it is no promise)
unless its table row, or the paragraph it is in, names its own tests and every one of them exists (security.md's
and mutants.md's tables, security.md's "Proof: ..." paragraphs)."""

from __future__ import annotations

import functools
import glob
import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ABSOLUTE_WORDS = re.compile(r"\b(never|always|atomic|atomically|refused|refuses|cannot|guaranteed)\b", re.I)
# A test a line names itself: `test_x`, `file.py::test_x`, `unit::test_x`, `::test_x`, with an optional [id].
NAMED_TEST = re.compile(r"`(?:[\w/.-]*::)?(test_\w+)(?:\[[^\]`]*\])?`|`(?:[\w/.-]*/)?(test_\w+\.py)`")
# In a module or doc fragment, the documentation strings are the promise; RETURN's "returned: always" is Ansible's field.
DOC_STRING = re.compile(r"^\s*(DOCUMENTATION|EXAMPLES|RETURN) = r?(\'\'\'|\"\"\")(.*?)\2", re.M | re.S)
ANSIBLE_FIELD = re.compile(r"^\s*returned: always\s*$")
TEST_FILES = sorted(glob.glob(os.path.join(REPO, "tests", "**", "test_*.py"), recursive=True))


@functools.lru_cache(maxsize=None)
def listed() -> dict:
    with open(os.path.join(REPO, "tests", "promises.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@functools.lru_cache(maxsize=None)
def read(path: str) -> str:
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        return handle.read()


def defines(path: str, name: str) -> bool:
    return re.search(r"^def %s\(" % re.escape(name), read(path), re.M) is not None


def test_exists(node: str) -> bool:
    """A node id: a path under the repository or a test file's name, then optionally ::function[id]."""
    path, _, name = node.partition("::")
    name = name.split("[")[0]
    candidates = [os.path.join(REPO, path)] if os.sep in path else \
        [found for found in TEST_FILES if os.path.basename(found) == path]
    return any(os.path.isfile(found) and (not name or defines(found, name)) for found in candidates)


test_exists.__test__ = False  # a helper, not a test


def promise_lines(doc: str) -> list:
    """The indices of the lines that may promise: every line of a document, the documentation of a module."""
    text = read(doc)
    if not doc.endswith(".py"):
        return list(range(len(text.splitlines())))
    lines = text.splitlines()
    indices = []
    for found in DOC_STRING.finditer(text):
        first = text.count("\n", 0, found.start(3))
        indices += [first + offset for offset in range(found.group(3).count("\n") + 1)]
    return [index for index in indices if not ANSIBLE_FIELD.match(lines[index])]


@functools.lru_cache(maxsize=None)
def every_test_name() -> set:
    names = {os.path.basename(path) for path in TEST_FILES}
    for path in TEST_FILES:
        names.update(re.findall(r"^def (test_\w+)\(", read(path), re.M))
    return names


def citing_units(lines: list) -> list:
    """For each line, the text that may cite its tests: its table row, or else its paragraph."""
    units, paragraph = [""] * len(lines), []
    for number, line in enumerate(lines + [""]):
        if line.startswith("|") or not line.strip():
            for member in paragraph:
                units[member] = "\n".join(lines[index] for index in paragraph)
            paragraph = []
            if line.startswith("|"):
                units[number] = line
        else:
            paragraph.append(number)
    return units


def test_tests_listed_exist():
    missing = [node for entry in listed()["promises"] for node in entry.get("tests", []) if not test_exists(node)]
    assert missing == []


def test_each_entry_has_a_test_or_a_reason_and_its_claim_is_in_its_document():
    wrong = []
    for entry in listed()["promises"]:
        if bool(entry.get("tests")) == bool(entry.get("reason")):
            wrong.append("%s: %r needs tests or a reason, not both" % (entry["doc"], entry["claim"]))
        if not any(entry["claim"] in line for line in read(entry["doc"]).splitlines()):
            wrong.append("%s: %r is on no line of the document" % (entry["doc"], entry["claim"]))
    assert wrong == []


@pytest.mark.parametrize("doc", listed()["audited"])
def test_every_absolute_word_of_an_audited_document_is_listed(doc):
    sources = [doc] + listed().get("mirrors", {}).get(doc, [])
    claims = [entry["claim"] for entry in listed()["promises"] if entry["doc"] in sources]
    names = every_test_name()
    lines = read(doc).splitlines()
    units = citing_units(lines)
    unlisted = []
    for number in promise_lines(doc):
        line = lines[number]
        if not ABSOLUTE_WORDS.search(line) or any(claim in line for claim in claims):
            continue
        cited = {function or path for function, path in NAMED_TEST.findall(units[number])}
        if not cited or not cited <= names:
            unlisted.append("%s:%d: %s" % (doc, number + 1, line.strip()))
    assert unlisted == [], "list each in tests/promises.yml with its test, or reword it to what is true"
