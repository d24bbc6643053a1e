"""Check an answer sentence by sentence against its context, whatever backend wrote it.

A sentence passes when:

* it cites at least one fact (``[A3]``) or passage (``[2]``) that exists in the context, and no
  citation that does not (a fixed policy sentence needs none: it states no fact);
* every number in it appears in the context: in a cited item, or failing that anywhere in the
  facts and passages (an invented number fails).

Failing sentences are removed (``on_failure="remove"``) or kept with an "[unverified: ...]"
mark (``"mark"``), never passed on silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from sahay.chat.context import Context
from sahay.chat.safety import POLICY_SENTENCES

_CITATION = re.compile(r"\[(A?\d+)\]")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?![\w])")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_TRAILING_CITATIONS = re.compile(r"([.!?])((?:\s*\[A?\d+\])+)")


@dataclass
class CheckedSentence:
    text: str
    evidence: list[str] = field(default_factory=list)
    """The cited facts and passages: ``A1``, ``2``, ..."""
    problem: str | None = None


@dataclass
class Verification:
    sentences: list[CheckedSentence]
    dropped: list[CheckedSentence]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


def split_sentences(text: str) -> list[str]:
    """Sentences, with citations written after the full stop ("... done. [2]") moved before it."""
    text = _TRAILING_CITATIONS.sub(lambda m: f" {m.group(2).strip()}{m.group(1)}", text)
    return [s.strip() for line in text.splitlines() for s in _SENTENCE.split(line) if s.strip()]


def verify(answer: str, context: Context, on_failure: Literal["remove", "mark"] = "remove") -> Verification:
    kept: list[CheckedSentence] = []
    dropped: list[CheckedSentence] = []
    for sentence in split_sentences(answer):
        checked = check_sentence(sentence, context)
        if checked.problem is None:
            kept.append(checked)
        elif on_failure == "mark":
            checked.text = f"{checked.text} [unverified: {checked.problem}]"
            kept.append(checked)
        else:
            dropped.append(checked)
    return Verification(kept, dropped)


def check_sentence(sentence: str, context: Context) -> CheckedSentence:
    cited = _CITATION.findall(sentence)
    checked = CheckedSentence(sentence, evidence=cited)
    if sentence in POLICY_SENTENCES or _CITATION.sub("", sentence).strip() in POLICY_SENTENCES:
        return checked
    if not cited:
        checked.problem = "no citation"
        return checked
    texts = []
    for marker in cited:
        item = context.fact(marker) if marker.startswith("A") else context.passage(int(marker))
        if item is None:
            checked.problem = f"cites [{marker}], which is not in the context"
            return checked
        texts.append(item.text if marker.startswith("A") else item.chunk.text)  # type: ignore[union-attr]
    cited_text = " ".join(texts)
    everything = " ".join([*(f.text for f in context.facts), *(p.chunk.text for p in context.passages)])
    for number in _NUMBER.findall(_CITATION.sub("", sentence)):
        if not _mentions(cited_text, number) and not _mentions(everything, number):
            checked.problem = f"the number {number} is not in the context"
            return checked
    return checked


def _mentions(text: str, number: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(number)}(?![\w])", text) is not None
