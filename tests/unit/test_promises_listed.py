"""tests/promises.yml is the checked list of the absolute words in the audited documents ("never", "always",
"atomic", "refused", "cannot", "guaranteed"): each claim is in its document, each test it names exists, and no
line of an audited document holds one of those words without an entry (a test, or the reason it is no promise)."""

from __future__ import annotations

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ABSOLUTE_WORDS = re.compile(r"\b(never|always|atomic|atomically|refused|refuses|cannot|guaranteed)\b", re.I)


def listed() -> dict:
    with open(os.path.join(REPO, "tests", "promises.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def read(doc: str) -> str:
    with open(os.path.join(REPO, doc), encoding="utf-8") as handle:
        return handle.read()


def test_tests_listed_exist():
    missing = []
    for entry in listed()["promises"]:
        for node in entry.get("tests", []):
            path, _, name = node.partition("::")
            name = name.split("[")[0]
            if not os.path.isfile(os.path.join(REPO, path)):
                missing.append(node)
            elif name and not re.search(r"^def %s\(" % re.escape(name), read(path), re.M):
                missing.append(node)
    assert missing == []


def test_each_entry_has_a_test_or_a_reason_and_its_claim_is_in_its_document():
    wrong = []
    for entry in listed()["promises"]:
        if bool(entry.get("tests")) == bool(entry.get("reason")):
            wrong.append("%s: %r needs tests or a reason, not both" % (entry["doc"], entry["claim"]))
        if " ".join(entry["claim"].split()) not in " ".join(read(entry["doc"]).split()):
            wrong.append("%s: %r is not in the document" % (entry["doc"], entry["claim"]))
    assert wrong == []


@pytest.mark.parametrize("doc", listed()["audited"])
def test_every_absolute_word_of_an_audited_document_is_listed(doc):
    claims = [entry["claim"] for entry in listed()["promises"] if entry["doc"] == doc]
    unlisted = ["%s:%d: %s" % (doc, number, line.strip()) for number, line in enumerate(read(doc).splitlines(), 1)
                if ABSOLUTE_WORDS.search(line) and not any(claim in line for claim in claims)]
    assert unlisted == [], "list each in tests/promises.yml with its test, or reword it to what is true"
