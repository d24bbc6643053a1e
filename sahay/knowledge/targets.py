"""Which knowledge-base sections a question names: "BI-RADS 4", "Kerley B lines", "pleural effusion".

Articles are written so that every ``##`` heading names what its section answers, with other
spellings in parentheses ("Blunting of the costophrenic angle (blunted costophrenic angle)"), and
the first sentence answers it. A question that holds a heading's words is about that section; a
question that holds an article's title words is about that article's sections. Headings shared by
many articles ("Usual next steps") name no target of their own: they are found through the title.

Words are compared as Snowball stems, in any order, so "bones broken" matches "broken bone" and
"screened" matches "screening"; "bi-rads 4" matches "BI-RADS 4" but not "BI-RADS 4A". Each word
weighs its inverse frequency among the headings, so "cardiomegaly" counts for more than "chest
X-ray". A heading with a stock opening ("Causes of pleural effusion", "Who is eligible for lung
cancer screening") also matches a question that names only its subject, at half weight; the
question's kind then picks among the sections (the chat's ``SECTION_AFFINITY``). A match weaker
than ``MIN_SCORE`` (one common word, such as "Sahay" or "chest") names nothing.

Example:
    >>> from sahay.knowledge.corpus import builtin_articles
    >>> targets = SectionTargets(builtin_articles())
    >>> targets.match("What does BI-RADS 0 mean?")[0].heading.startswith("BI-RADS 0")
    True
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sahay.knowledge.corpus import Article

GENERIC_HEADING_ARTICLES = 3
"""A heading used by this many articles or more is generic ("Which specialist")."""
MIN_SCORE = 4.5
"""The least weight of matched words that names a section: about one rare word (a word used in one
heading of 700 weighs 6.6; "chest" about 3.5)."""
_STOCK_OPENING = re.compile(
    r"^(?:causes? of|differential (?:diagnosis )?(?:of|for)|first (?:imaging )?test for(?: suspected)?|"
    r"imaging for(?: suspected)?|who is eligible for|who should (?:get|have)|what (?:is|are|does|a|an)|"
    r"how often to|how often|how long|when to stop|when to start|the)\s+"
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_STOP_WORDS = frozenset(
    re.findall(
        r"\w+",
        "a an the of for to in on at by with and or is are was does do did what which who how when it its "
        "this that mean means my your i me s some can could should would will be",
    )
)


@dataclass(frozen=True)
class SectionTarget:
    article_id: str
    heading: str
    heading_score: float
    """Weight of the heading's words the question holds (0: matched by the title only)."""
    title_score: float
    """Weight of the article's title words the question holds."""


def normalise(text: str) -> str:
    """Lower case, words separated by single spaces, padded so that ' phrase ' finds whole words."""
    return " " + " ".join(w for w in _WORD_SPLIT.split(text.lower()) if w) + " "


def heading_phrases(heading: str) -> list[tuple[str, float]]:
    """What a heading names, each with its weight: the heading, its part before a colon, its
    parenthesised spellings (full weight), and the heading without a stock opening (half)."""
    phrases: list[tuple[str, float]] = []
    outside = re.sub(r"\([^)]*\)", " ", heading)
    for inside in re.findall(r"\(([^)]*)\)", heading):
        phrases += [(p, 1.0) for p in re.split(r"[,;]| or ", inside) if p.strip()]
    for candidate in (outside, re.split(r":| - | – ", outside)[0]):
        phrases.append((candidate, 1.0))
        text = normalise(candidate).strip()
        stripped = _STOCK_OPENING.sub("", text)
        if stripped != text:
            phrases.append((stripped, 0.5))
    found: dict[str, float] = {}
    for phrase, weight in phrases:
        text = normalise(phrase).strip()
        if text and not text.isdigit():
            found[text] = max(weight, found.get(text, 0.0))
    return sorted(found.items())


class SectionTargets:
    """The heading and title phrases of a set of articles, matched against questions."""

    def __init__(self, articles: Iterable[Article]) -> None:
        articles = list(articles)
        headings_by_article = {a.id: headings(a.body) for a in articles}
        uses = Counter(h.lower() for hs in headings_by_article.values() for h in set(hs))
        self._sections: list[tuple[str, str, list[tuple[frozenset[str], float]]]] = []
        self._titles: dict[str, list[tuple[frozenset[str], float]]] = {}
        for article in articles:
            self._titles[article.id] = _stemmed(heading_phrases(article.title))
            for heading in headings_by_article[article.id]:
                named = uses[heading.lower()] < GENERIC_HEADING_ARTICLES
                self._sections.append(
                    (article.id, heading, _stemmed(heading_phrases(heading)) if named else [])
                )
        frequency = Counter(
            word for _, _, phrases in self._sections for word in set().union(*(p for p, _ in phrases))
        )
        frequency.update(
            word for phrases in self._titles.values() for word in set().union(*(p for p, _ in phrases))
        )
        total = len(self._sections) + len(self._titles)
        self._weight = {word: math.log(1 + total / count) for word, count in frequency.items()}

    def phrases(self) -> set[str]:
        """Every stemmed phrase a heading or title names, e.g. for telling on-topic questions."""
        found = {" ".join(sorted(p)) for _, _, phrases in self._sections for p, _ in phrases}
        return found | {" ".join(sorted(p)) for phrases in self._titles.values() for p, _ in phrases}

    def match(self, question: str) -> list[SectionTarget]:
        """Sections the question names, the strongest heading match first, then the title's."""
        words = frozenset(_stem_words(normalise(question)))
        titles = {article_id: self._score(words, phrases) for article_id, phrases in self._titles.items()}
        found = []
        for article_id, heading, phrases in self._sections:
            heading_score = self._score(words, phrases)
            if heading_score or titles[article_id]:
                found.append(SectionTarget(article_id, heading, heading_score, titles[article_id]))
        return sorted(found, key=lambda t: (-t.heading_score, -t.title_score))

    def _score(self, words: frozenset[str], phrases: list[tuple[frozenset[str], float]]) -> float:
        """The weight of the heaviest phrase all of whose words the question holds."""
        best = 0.0
        for phrase, weight in phrases:
            if phrase <= words:
                best = max(best, weight * sum(self._weight.get(w, 1.0) for w in phrase))
        return best if best >= MIN_SCORE else 0.0


def _stemmed(phrases: list[tuple[str, float]]) -> list[tuple[frozenset[str], float]]:
    stemmed = [(frozenset(_stem_words(f" {p} ")), weight) for p, weight in phrases]
    return [(words, weight) for words, weight in stemmed if words]


def _stem_words(text: str) -> list[str]:
    return [stem(w) for w in text.split() if w not in _STOP_WORDS]


def stem(word: str) -> str:
    """The Snowball (Porter 2) stem of an English word: "screened" and "screening" give "screen"."""
    return _stemmer().stemWord(word)


@functools.cache
def _stemmer() -> Any:
    import Stemmer  # PyStemmer, which the knowledge index's BM25 already uses

    return Stemmer.Stemmer("english")


def headings(body: str) -> list[str]:
    """The ``##`` headings of an article's body, in order."""
    return [line[3:].strip() for line in body.splitlines() if line.startswith("## ")]
