"""Which knowledge-base sections a question names: "BI-RADS 4", "Kerley B lines", "pleural effusion".

Articles are written so that every ``##`` heading names what its section answers, with other
spellings in parentheses ("Blunting of the costophrenic angle (blunted costophrenic angle)"), and
the first sentence answers it. A question that contains a heading's phrase is about that section;
a question that contains an article's title phrase is about that article's sections. Headings
shared by many articles ("Usual next steps") name no target of their own: they are found through
the article's title.

Matching is on whole words after lower-casing and turning punctuation into spaces, in any order
and with plural "s" ignored: "bi-rads 4" matches "BI-RADS 4" but not "BI-RADS 4A", and "bones
broken" matches "broken bone". A heading phrase of several words also matches when all but one of
its content words are in the question (scored one lower), so that "what does a probability of 0.7
mean" finds "Does a probability of 0.7 mean a 70% chance".

Example:
    >>> from sahay.knowledge.corpus import builtin_articles
    >>> targets = SectionTargets(builtin_articles())
    >>> targets.match("What does BI-RADS 0 mean?")[0].article_id
    'bi-rads'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sahay.knowledge.corpus import Article

GENERIC_HEADING_ARTICLES = 3
"""A heading used by this many articles or more is generic ("Which specialist")."""
_LEADING_STOCK = re.compile(
    r"^(?:causes? of|differential (?:diagnosis )?(?:of|for)|first (?:imaging )?test for(?: suspected)?|"
    r"imaging for(?: suspected)?|who is eligible for|who should (?:get|have)|what (?:is|are|does)|"
    r"how (?:often|long)|when to stop|the)\s+"
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "for",
        "to",
        "in",
        "on",
        "at",
        "by",
        "with",
        "and",
        "or",
        "is",
        "are",
        "was",
        "does",
        "do",
        "did",
        "what",
        "which",
        "who",
        "how",
        "when",
        "it",
        "its",
        "this",
        "that",
        "mean",
        "means",
        "my",
        "your",
        "i",
        "me",
        "s",
    ]
)


@dataclass(frozen=True)
class SectionTarget:
    article_id: str
    heading: str
    heading_words: int
    """Words of the longest heading phrase the question contains (0: matched by title only)."""
    title_words: int
    """Words of the longest title phrase of the article the question contains."""


def normalise(text: str) -> str:
    """Lower case, words separated by single spaces, padded so that ' phrase ' finds whole words."""
    return " " + " ".join(w for w in _WORD_SPLIT.split(text.lower()) if w) + " "


def heading_phrases(heading: str) -> list[str]:
    """What a heading names: the heading, its part before a colon or dash, its parenthesised spellings,
    and the heading without a stock opening ("Causes of ...")."""
    phrases: list[str] = []
    outside = re.sub(r"\([^)]*\)", " ", heading)
    for inside in re.findall(r"\(([^)]*)\)", heading):
        phrases += [p for p in re.split(r"[,;]| or ", inside) if p.strip()]
    for candidate in (outside, re.split(r":| - | – ", outside)[0]):
        phrases.append(candidate)
        phrases.append(_LEADING_STOCK.sub("", normalise(candidate).strip()))
    cleaned = {normalise(p).strip() for p in phrases}
    return sorted(p for p in cleaned if p and not p.isdigit())


def title_phrases(title: str) -> list[str]:
    return heading_phrases(title)


class SectionTargets:
    """The heading and title phrases of a set of articles, matched against questions."""

    def __init__(self, articles: Iterable[Article]) -> None:
        articles = list(articles)
        headings_by_article = {a.id: _headings(a.body) for a in articles}
        uses = Counter(h.lower() for hs in headings_by_article.values() for h in set(hs))
        self._sections: list[tuple[str, str, list[str]]] = []
        self._titles: dict[str, list[str]] = {}
        for article in articles:
            self._titles[article.id] = title_phrases(article.title)
            for heading in headings_by_article[article.id]:
                named = uses[heading.lower()] < GENERIC_HEADING_ARTICLES
                self._sections.append((article.id, heading, heading_phrases(heading) if named else []))

    def phrases(self) -> set[str]:
        """Every phrase a heading or title names, e.g. for telling on-topic questions."""
        found = {p for _, _, phrases in self._sections for p in phrases}
        return found | {p for phrases in self._titles.values() for p in phrases}

    def match(self, question: str) -> list[SectionTarget]:
        """Sections the question names, the longest match first (heading words, then title words)."""
        text = normalise(question)
        title_words = {article_id: _longest(text, phrases) for article_id, phrases in self._titles.items()}
        found = []
        for article_id, heading, phrases in self._sections:
            heading_words = _longest(text, phrases, partial=True)
            if heading_words or title_words[article_id]:
                found.append(SectionTarget(article_id, heading, heading_words, title_words[article_id]))
        return sorted(found, key=lambda t: (-t.heading_words, -t.title_words))


def _longest(text: str, phrases: Sequence[str], partial: bool = False) -> int:
    """The number of content words of the best phrase whose words the text holds (``partial``: all
    but one of four or more, scored one lower)."""
    words = _content(text)
    best = 0
    for phrase in phrases:
        wanted = _content(phrase)
        if not wanted:
            continue
        missing = len(wanted - words)
        if missing == 0:
            best = max(best, len(wanted))
        elif partial and missing == 1 and len(wanted) >= 4:
            best = max(best, len(wanted) - 2)
    return best


def _content(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in text.split() if w not in _STOP_WORDS)


def stem(word: str) -> str:
    """A crude English stem, enough to match "screened" with "screening" and "bones" with "bone"."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _headings(body: str) -> list[str]:
    return [line[3:].strip() for line in body.splitlines() if line.startswith("## ")]
