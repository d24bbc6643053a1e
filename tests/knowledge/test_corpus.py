"""The curated corpus keeps its rules: front matter, sources, and a citation on every number."""

from __future__ import annotations

import pytest
import torchxrayvision as xrv

from sahay.errors import BadInput
from sahay.knowledge.corpus import CORPUS_DIR, builtin_articles, check_article, parse_article

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
