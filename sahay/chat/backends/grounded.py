"""The offline default: a deterministic composer that needs no model weights. It answers first.

The engine has already put the passages in order, best first, and marked those chosen because they
answer the question (``Context.answering``: the section the question names, or its kind's section
for each finding in focus). The composer writes:

1. the answer: the opening sentence of the first answering passage, which by the corpus's rule
   answers its heading directly ("BI-RADS 4 means ..."); with several findings in focus, the
   opening sentence of each one's section; with no answering passage, the sentence of the
   retrieved passages that shares the most words with the question;
2. at most ``SUPPORTING`` supporting sentences: the rest of the answering section, then the best
   sentences of the other passages that share words with the question, never a near-repeat.

Every sentence is cited ``[n]`` by its passage; the engine turns those into one number a source.
"""

from __future__ import annotations

import re

from sahay.chat.backends import TokenCallback, Turn
from sahay.chat.context import Context
from sahay.chat.safety import is_dosing, is_instruction
from sahay.chat.verify import near_repeat
from sahay.config import Settings
from sahay.knowledge.corpus import sentences_of

SUPPORTING = 3
"""Sentences after the answer."""
PER_FINDING = 2
"""Sentences of each finding's section when several findings are in focus."""
_ARTICLE_MARKER = re.compile(r"\s*\[\d+\]")
_WORD = re.compile(r"[a-z0-9]{3,}")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "was",
        "what",
        "does",
        "this",
        "that",
        "with",
        "from",
        "have",
        "has",
        "how",
        "why",
        "who",
        "which",
        "when",
        "where",
        "should",
        "can",
        "will",
        "would",
        "could",
        "about",
        "into",
        "your",
        "you",
        "our",
        "their",
        "there",
        "them",
        "they",
        "its",
        "is",
        "an",
        "of",
        "to",
        "in",
        "on",
        "be",
        "do",
        "mean",
        "means",
        "tell",
        "me",
        "my",
        "her",
        "his",
        "she",
        "he",
        "any",
    ]
)


class GroundedComposer:
    name = "grounded"

    def answer(
        self, context: Context, history: list[Turn], intent: str, on_token: TokenCallback | None = None
    ) -> str:
        question_words = _words(context.question)
        candidates = [
            (
                number,
                [s for s in _sentences(passage.chunk.text) if _usable(s)],
            )
            for number, passage in enumerate(context.passages, start=1)
        ]
        chunks = [passage.chunk for passage in context.passages]
        answering = [(n, ss) for n, ss in candidates if ss and chunks[n - 1].id in context.answering]
        chosen: list[tuple[str, int]] = []
        if answering:
            documents = {chunks[n - 1].document for n, _ in answering}
            per_passage = PER_FINDING if len(documents) > 1 else 1 + SUPPORTING
            for number, sentences in answering:
                chosen += [(s, number) for s in sentences[:per_passage]]
        limit = len(chosen) if len(chosen) > 1 + SUPPORTING else 1 + SUPPORTING
        ranked = sorted(
            (
                (len(question_words & _words(s)) - 0.1 * rank, s, number)
                for rank, (number, sentences) in enumerate(candidates)
                for s in sentences
                if question_words & _words(s)
            ),
            reverse=True,
        )
        chosen += [(s, number) for _, s, number in ranked]
        text = " ".join(_cite(s, str(n)) for s, n in _distinct(chosen)[:limit])
        if on_token is not None and text:
            on_token(text)
        return text


def _usable(sentence: str) -> bool:
    """A sentence that says something by itself: not a list's opening ("... the following:"), not a
    dose, not an instruction to the assistant."""
    return not sentence.rstrip().endswith(":") and not is_dosing(sentence) and not is_instruction(sentence)


def cite_each(text: str, marker: str) -> list[str]:
    """Every sentence of ``text`` with the citation before its full stop: a fact of several
    sentences stays verifiable sentence by sentence."""
    return [_cite(sentence, marker) for sentence in sentences_of(text)]


def _sentences(text: str) -> list[str]:
    return sentences_of(_ARTICLE_MARKER.sub("", text).strip())


def _distinct(chosen: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Each sentence once, and none that repeats one already chosen in other words."""
    kept: list[tuple[str, int]] = []
    for sentence, number in chosen:
        if not any(near_repeat(sentence, other) for other, _ in kept):
            kept.append((sentence, number))
    return kept


def _cite(sentence: str, marker: str) -> str:
    """ "It is common [2]." - the citation inside the sentence, before its full stop."""
    sentence = sentence.rstrip()
    end = sentence[-1] if sentence[-1:] in ".!?" else "."
    return f"{sentence.rstrip('.!?').rstrip()} [{marker}]{end}"


def _words(text: str) -> set[str]:
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in _STOP}


def from_settings(settings: Settings) -> GroundedComposer:
    return GroundedComposer()
