"""The offline default: a deterministic composer that needs no model weights.

It states the analysis facts that bear on the question (each cited ``[A#]``), then the key
sentences of the retrieved passages (each cited ``[n]``): for passages chosen for the question's
intent (a finding's "Usual next steps", say) their opening sentences, otherwise the sentences
sharing the most words with the question.
"""

from __future__ import annotations

import re

from sahay.chat.backends import TokenCallback, Turn
from sahay.chat.context import Context, Fact
from sahay.chat.safety import NOT_FOUND, is_dosing, is_instruction
from sahay.config import Settings

MAX_SENTENCES = 8
_ARTICLE_MARKER = re.compile(r"\s*\[\d+\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
_WORD = re.compile(r"[a-z]{3,}")
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
    ]
)


class GroundedComposer:
    name = "grounded"

    def answer(
        self, context: Context, history: list[Turn], intent: str, on_token: TokenCallback | None = None
    ) -> str:
        sentences = [_cite(fact.text, fact.id) for fact in _relevant_facts(context, intent)]
        question_words = _words(context.question)
        for number, passage in enumerate(context.passages, start=1):
            candidates = [
                s
                for s in _SENTENCE.split(_ARTICLE_MARKER.sub("", passage.chunk.text).strip())
                if s and not is_dosing(s) and not is_instruction(s)
            ]
            if passage.score == 0.0:  # chosen for the intent: its opening sentences answer it
                chosen = candidates[:2]
            else:
                scored = sorted(candidates, key=lambda s: len(question_words & _words(s)), reverse=True)
                chosen = [s for s in scored[:2] if question_words & _words(s)]
            sentences += [_cite(s, str(number)) for s in chosen]
            if len(sentences) >= MAX_SENTENCES:
                break
        text = " ".join(sentences[:MAX_SENTENCES]) or NOT_FOUND
        if on_token is not None:
            on_token(text)
        return text


def _relevant_facts(context: Context, intent: str) -> list[Fact]:
    facts = context.facts
    if not facts:
        return []
    asked = {f.label for f in facts if f.label and f.label.lower() in context.question.lower()}
    positive = {f.label for f in facts if f.label and "calls it positive" in f.text}
    if intent in ("findings", "next_steps", "specialist", "urgency"):
        wanted = asked or positive
        chosen = [f for f in facts if f.label in wanted and f.field.startswith("findings[")]
        if intent == "findings":
            chosen = [f for f in facts if f.field in ("model", "demonstration_notice")] + chosen
            chosen += [f for f in facts if f.field.startswith("fusion") or f.field == "quality"]
            if not wanted:
                chosen += [f for f in facts if f.field.startswith("findings[") and "." not in f.field][:3]
        return chosen
    return [f for f in facts if f.label in asked and f.field.startswith("findings[")]


def _cite(sentence: str, marker: str) -> str:
    """ "It is common [2]." - the citation inside the sentence, before its full stop."""
    sentence = sentence.rstrip()
    end = sentence[-1] if sentence[-1:] in ".!?" else "."
    return f"{sentence.rstrip('.!?').rstrip()} [{marker}]{end}"


def _words(text: str) -> set[str]:
    return {w[:6] for w in _WORD.findall(text.lower()) if w not in _STOP}


def from_settings(settings: Settings) -> GroundedComposer:
    return GroundedComposer()
