"""The glossary explains at least 150 report phrases, each answered and cited in its first sentence."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from sahay.knowledge.corpus import sentences
from sahay.knowledge.glossary import glossary_entries, glossary_terms, heading_terms

ENTRIES = glossary_entries()


def test_there_are_at_least_150_distinct_phrases() -> None:
    phrases = {entry.phrase.lower() for entry in ENTRIES}
    assert len(phrases) >= 150, f"only {len(phrases)} glossary phrases"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.phrase)
def test_every_first_sentence_answers_with_a_citation(entry) -> None:
    first = sentences(entry.body)[0]
    assert re.search(r"\[\d+\]", first), f"uncited first sentence: {first!r}"
    assert " means " in first, f"the first sentence does not say what {entry.phrase!r} means: {first!r}"


def test_every_phrase_and_spelling_names_one_section() -> None:
    named = Counter(term.lower() for entry in ENTRIES for term in {entry.phrase, *entry.spellings})
    repeated = sorted(term for term, count in named.items() if count > 1)
    assert not repeated, f"phrases explained by more than one section: {repeated}"


def test_every_term_parses_to_its_section() -> None:
    terms = glossary_terms()
    for entry in ENTRIES:
        for term in (entry.phrase, *entry.spellings):
            assert term and "(" not in term and ")" not in term and term == term.strip()
            assert terms[term.lower()] == (entry.article_id, entry.heading)


@pytest.mark.parametrize(
    ("phrase", "article", "heading_start"),
    [
        ("blunting of the costophrenic angle", "glossary-pleura", "Blunting of the costophrenic angle"),
        ("cp angle blunting", "glossary-pleura", "Blunting of the costophrenic angle"),
        ("kerley b lines", "glossary-lung-patterns", "Kerley B lines"),
        ("tree-in-bud", "glossary-lung-patterns", "Tree-in-bud"),
        ("cephalisation", "glossary-heart-and-mediastinum", "Cephalization"),
    ],
)
def test_known_phrases_are_found(phrase: str, article: str, heading_start: str) -> None:
    found_article, heading = glossary_terms()[phrase]
    assert found_article == article and heading.startswith(heading_start)


def test_headings_split_into_phrase_and_spellings() -> None:
    assert heading_terms("Bulla (bullae, bullous)") == ("Bulla", ("bullae", "bullous"))
    assert heading_terms("Halo sign") == ("Halo sign", ())


def test_the_returned_mapping_is_a_copy() -> None:
    glossary_terms().clear()
    assert glossary_terms()
