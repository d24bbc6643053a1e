"""Radiology-report phrases in plain words: the glossary articles of the curated corpus.

Every ``##`` section of an article in ``sahay/knowledge/corpus/glossary/`` explains one phrase. Its
heading is the phrase, with other spellings in parentheses, separated by commas:
``## Blunting of the costophrenic angle (blunted costophrenic angle, CP angle blunting)``.
``glossary_terms`` maps each lower-cased phrase and spelling to the article and heading that
explain it, so that the chat can tell that a question about "Kerley B lines" is on topic and find
the section that answers it.

Example:
    >>> glossary_terms()["kerley b lines"]
    ('glossary-lung-patterns', 'Kerley B lines (Kerley lines, septal lines)')
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from sahay.knowledge.corpus import Article, builtin_articles

GLOSSARY_FOLDER = "glossary/"
_PARENTHESES = re.compile(r"\(([^)]*)\)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class GlossaryEntry:
    article_id: str
    heading: str
    phrase: str
    """The heading's phrase, without its other spellings."""
    spellings: tuple[str, ...]
    """Other spellings, as written in the heading's parentheses."""
    body: str


def glossary_terms() -> dict[str, tuple[str, str]]:
    """Each lower-cased phrase and other spelling -> (article id, section heading) (a copy)."""
    return dict(_terms())


def glossary_entries() -> list[GlossaryEntry]:
    """The glossary's sections, in corpus order."""
    return list(_entries())


def heading_terms(heading: str) -> tuple[str, tuple[str, ...]]:
    """A heading's phrase and its other spellings: "A (b, c)" -> ("A", ("b", "c"))."""
    spellings = tuple(
        _tidy(part) for inside in _PARENTHESES.findall(heading) for part in inside.split(",") if part.strip()
    )
    return _tidy(_PARENTHESES.sub(" ", heading)), spellings


@functools.cache
def _entries() -> tuple[GlossaryEntry, ...]:
    return tuple(
        entry
        for article in builtin_articles()
        if article.path.startswith(GLOSSARY_FOLDER)
        for entry in _article_entries(article)
    )


@functools.cache
def _terms() -> dict[str, tuple[str, str]]:
    terms: dict[str, tuple[str, str]] = {}
    for entry in _entries():
        for term in (entry.phrase, *entry.spellings):
            terms.setdefault(term.lower(), (entry.article_id, entry.heading))
    return terms


def _article_entries(article: Article) -> list[GlossaryEntry]:
    entries = []
    for section in re.split(r"^## ", article.body, flags=re.MULTILINE)[1:]:
        heading, _, body = section.partition("\n")
        phrase, spellings = heading_terms(heading.strip())
        entries.append(GlossaryEntry(article.id, heading.strip(), phrase, spellings, body.strip()))
    return entries


def _tidy(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
