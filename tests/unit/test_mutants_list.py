"""The mutation list of `make mutants` stays true: every entry applies exactly once, every claim is still in its
doc, and docs/mutants.md is what the list generates (so the documented promises and the mutations cannot
drift apart)."""

from __future__ import annotations

import pytest

from tools import mutants


def test_every_mutation_applies_and_its_claim_is_in_its_doc():
    entries = mutants.load()
    assert [problem for entry in entries for problem in mutants.problems(entry)] == []


def test_the_mutants_doc_is_generated_from_the_list():
    with open(mutants.DOCS_FILE, encoding="utf-8") as handle:
        assert handle.read() == mutants.render_docs(mutants.load()), \
            "docs/mutants.md differs from tests/mutants.yml: run tools/mutants.py --write-docs"


def test_a_mutation_that_no_longer_applies_is_named(tmp_path):
    entry = dict(mutants.load()[0], original="text that is nowhere in the code")
    assert any("occurs 0 times" in problem for problem in mutants.problems(entry))
    entry = dict(mutants.load()[0], claim="a promise nobody wrote")
    assert any("no longer in" in problem for problem in mutants.problems(entry))


@pytest.mark.parametrize("text, error", [("[]", "must be a YAML list"), ("- {id: a}", "lacks promise"),
                                         ("- &e {id: a, promise: p, doc: d, claim: c, file: f, original: o,\n"
                                          "     replacement: r, tests: [t]}\n- *e", "appears twice")])
def test_a_malformed_list_is_refused_clearly(tmp_path, text, error):
    path = tmp_path / "mutants.yml"
    path.write_text(text)
    with pytest.raises(mutants.ListError, match=error):
        mutants.load(str(path))
