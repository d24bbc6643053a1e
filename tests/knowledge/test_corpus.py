"""The curated corpus keeps its rules: front matter, sources, and a citation on every number."""

from __future__ import annotations

import re

import pytest
import torchxrayvision as xrv

from sahay.errors import BadInput
from sahay.knowledge.corpus import CORPUS_DIR, builtin_articles, check_article, parse_article, sentences

ARTICLE_FILES = sorted(CORPUS_DIR.rglob("*.md"))


def test_the_corpus_is_deep_enough() -> None:
    articles = builtin_articles()
    assert len(articles) >= 40
    assert len({a.id for a in articles}) == len(articles), "article ids must be unique"


@pytest.mark.parametrize("path", ARTICLE_FILES, ids=lambda p: p.stem)
def test_every_article_follows_the_rules(path) -> None:
    article = parse_article(path.read_text(encoding="utf-8"), path.name)
    assert article.id == path.stem
    assert check_article(article) == []
    assert 2 <= len(article.sources) <= 6
    assert article.last_reviewed is not None


def test_every_chest_finding_of_the_default_model_has_an_article() -> None:
    explained = {label for article in builtin_articles() for label in article.findings}
    missing = set(xrv.datasets.default_pathologies) - explained
    assert not missing, f"no article explains {sorted(missing)}"


def test_the_rules_catch_uncited_numbers_and_unknown_sources() -> None:
    text = """---
id: demo
title: Demo
sources:
  - {id: 1, title: A page, publisher: NHS, url: "https://www.nhs.uk/"}
---
# Demo
## Facts
About 40% of people have it. It is common [1]. Follow-up at 3 months is advised [2].
"""
    problems = check_article(parse_article(text, "demo.md"))
    assert any("has no citation: 'About 40% of people have it.'" in p for p in problems)
    assert any("unknown source(s) [2]" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no front matter", "no YAML front matter"),
        ("---\nid: [\n---\nbody", "invalid YAML"),
        ("---\nid: Bad Id\ntitle: x\n---\nbody", "front matter field id"),
    ],
)
def test_malformed_articles_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_article(text, "x.md")


IMAGE_SPECIFIC = re.compile(
    r"\bthis (chest )?(x-ray|film|image|scan)\b|\bcomputer thinks\b|\byour (image|x-ray|film)\b",
    re.IGNORECASE,
)
POSITIVE_ONLY_SECTION = "If Sahay calls it positive"


def _sections(body: str) -> list[tuple[str, str]]:
    parts = re.split(r"^## ", body, flags=re.MULTILINE)[1:]
    return [(head.strip(), text) for head, _, text in (part.partition("\n") for part in parts)]


def test_image_specific_wording_is_only_in_the_positive_section() -> None:
    # The chat uses general passages for any question; "this X-ray" belongs only to the section it
    # uses when the finding is positive in the analysis in focus.
    offending = [
        f"{article.id} / {heading}: {match.group(0)!r}"
        for article in builtin_articles()
        for heading, text in _sections(article.body)
        if heading != POSITIVE_ONLY_SECTION
        for match in [IMAGE_SPECIFIC.search(text)]
        if match
    ]
    assert not offending, "\n".join(offending)


def test_the_rule_for_image_specific_wording_catches_it() -> None:
    assert IMAGE_SPECIFIC.search("The computer thinks this chest X-ray may show a fracture.")
    assert not IMAGE_SPECIFIC.search("A chest X-ray can show a fracture.")


def test_every_finding_article_names_its_causes_and_its_positive_section() -> None:
    for article in builtin_articles():
        if not article.path.startswith("findings/"):
            continue
        headings = [heading for heading, _ in _sections(article.body)]
        assert any(h.startswith("Causes of ") for h in headings), (
            f"{article.id} has no 'Causes of ...' section"
        )
        assert POSITIVE_ONLY_SECTION in headings, f"{article.id} has no '{POSITIVE_ONLY_SECTION}' section"


@pytest.mark.parametrize("path", ARTICLE_FILES, ids=lambda p: p.stem)
def test_section_headings_are_unique_within_an_article(path) -> None:
    headings = [h for h, _ in _sections(parse_article(path.read_text(encoding="utf-8"), path.name).body)]
    assert len(headings) == len(set(headings))


@pytest.mark.parametrize(
    ("article_id", "heading"),
    [
        ("bi-rads", "BI-RADS 4: suspicious (BI-RADS category 4)"),
        ("lung-rads", "Lung-RADS 4A: suspicious (Lung-RADS category 4A)"),
        ("lung-cancer-screening", "Who is eligible for lung cancer screening"),
        ("screening-and-early-detection", "How often to screen for breast cancer"),
        ("curb-65", "CURB-65"),
        (
            "first-line-imaging-chest",
            "First imaging test for suspected pulmonary embolism (imaging for suspected PE)",
        ),
    ],
)
def test_guideline_targets_have_a_section_whose_first_sentence_is_cited(
    article_id: str, heading: str
) -> None:
    (article,) = [a for a in builtin_articles() if a.id == article_id]
    text = dict(_sections(article.body))[heading]
    first = sentences(text)[0]
    assert re.search(r"\[\d+\]", first), first
