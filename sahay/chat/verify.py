"""Check an answer sentence by sentence against its context, whatever backend wrote it.

A sentence passes when:

* it cites at least one fact (``[A3]``) or passage (``[2]``) that exists in the context, and no
  citation that does not (a fixed policy sentence needs none: it states no fact);
* every number in it appears in the context: in a cited item, or failing that anywhere in the
  facts and passages (an invented number fails);
* its polarity agrees with the analysis facts it cites: it does not call the image normal, or a
  finding absent, while citing a finding the model calls positive, nor call a finding present
  while citing the model's negative call on it. A sentence that calls the whole image normal and
  cites any analysis fact is checked against every finding of the analysis;
* it gives no disposition advice ("can be discharged", "no follow-up needed", ...) unless a
  passage it cites says something of the kind (an analysis fact never supports it).

The word lists of the last two checks are the ``*_CUES`` tuples below, in one place. Failing
sentences are removed (``on_failure="remove"``) or kept with an "[unverified: ...]" mark
(``"mark"``), never passed on silently. ``SentenceStream`` does the same while an answer is being
written, so that only verified sentences are shown.

Example:
    >>> from sahay.chat.context import Context, Fact
    >>> context = Context("Is the image normal?", "clinician", facts=[Fact(
    ...     "A1", "findings[Effusion]", "Effusion: the model calls it positive.", "Effusion", True)])
    >>> verify("The image is normal [A1].", context).dropped[0].problem
    'calls the image normal, but [A1] is a finding the model calls positive (Effusion)'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from sahay.chat.context import Context, Fact
from sahay.chat.safety import POLICY_SENTENCES

_CITATION = re.compile(r"\[(A?\d+)\]")
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?![\w])")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_TRAILING_CITATIONS = re.compile(r"([.!?])((?:\s*\[A?\d+\])+)")

# What a sentence claims: plain patterns, matched without regard to case. ----------------------

NORMAL_CUES = (
    r"\b(?:is|are|was|were|looks?|appears?|seems?) (?:completely |entirely |otherwise )?normal\b",
    r"\bnormal (?:image|x-?ray|scan|study|film|radiograph|result|chest|findings?)\b",
    r"\bwithin normal limits\b",
    r"\bunremarkable\b",
    r"\bno (?:positive |abnormal |significant |relevant |acute )?(?:findings?|abnormalit(?:y|ies))\b",
    r"\bnothing (?:abnormal|wrong|of concern|concerning|significant)\b",
    r"\b(?:is|are|looks?|appears?|seems?) (?:all |completely )?clear\b(?! (?:that|whether|if|how|why|what))",
    r"\b(?:image|x-?ray|scan|study|radiograph|result) (?:is|was) negative\b(?! for)",
)
"""The whole image called normal, or free of findings."""

ABSENT_CUES = (
    r"\bnegative for {finding}",
    r"\bno (?:evidence|signs?|indication|suggestion) of {finding}",
    r"\b(?:no|without|free of|excludes?|excluded|rules? out|ruled out) {finding}",
    r"(?:\bnot|n't|\bnever) (?:\w+ )?(?:show|shows|showing|reveal|suggest|indicate|detect|find|see|have|has|"
    r"consistent with|positive for) {finding}",
    r"{finding} (?:is|are|was|were|has been|have been) (?:absent|ruled out|excluded|negative|"
    r"not (?:present|seen|visible|detected|found|shown|positive))",
    r"\b(?:calls?|called|rates?|rated|reads?|classif(?:y|ies|ied)) {it} (?:as )?negative",
)
"""A finding said to be absent; ``{finding}`` stands for its label, ``{it}`` also for "it"
when the sentence cites facts about one finding only."""

PRESENT_CUES = (
    r"\bpositive for {finding}",
    r"\b(?:shows?|showing|shown|reveals?|demonstrates?|detects?|detected|finds|found|suggests?|"
    r"suggestive of) {finding}",
    r"\b(?:consistent with|suspicious (?:for|of)|evidence of|signs? of) {finding}",
    r"\b(?:there is|there are|has|have) {finding}",
    r"{finding} (?:is|are|was|were) (?:present|seen|visible|detected|found|shown|confirmed|positive)",
    r"\b(?:calls?|called|rates?|rated|reads?|classif(?:y|ies|ied)) {it} (?:as )?positive",
)
"""A finding said to be present (read only when no ``ABSENT_CUES`` pattern matches)."""

DISPOSITION_CUES = (
    r"\b(?:can|could|may|should|will) (?:\w+ly )?be (?:\w+ly )?(?:discharged|sent home)",
    r"\bdischarged? (?:home|today|now)\b",
    r"\b(?:safe|fit|ready|okay|ok|fine) (?:to|for) (?:go home|leave|be discharged|discharge)",
    r"\b(?:can|could|may) (?:\w+ly )?(?:go|return) home",
    r"\bno (?:further |more |other )?(?:follow-?up|tests?|imaging|investigations?|treatment|action|review)s? "
    r"(?:is |are )?(?:needed|necessary|required|indicated)",
    r"\b(?:does not|doesn't|do not|don't|will not|won't) (?:\w+ly )?need (?:any |further |more )?"
    r"(?:follow-?up|tests?|imaging|investigations?|treatment|review|to see a doctor|a doctor)",
    r"\bno need (?:for (?:any |further )?(?:follow-?up|tests?|imaging|treatment|review|a doctor)|"
    r"to (?:see|worry|come back|return|follow up))",
    r"\bnothing (?:more|further|else) (?:needs to be|to be|can be) done",
)
"""Advice that the patient can leave care, or needs nothing more."""

_FINDING_WORDS = r"(?:(?!(?:no|not|never|without|but|is|are|was|were|with|also|however)\b)[a-z-]+\s+){0,3}"
"""Up to three words before a finding's name ("a small left pleural ..."), none that turns the sense."""
_NORMAL = re.compile("|".join(NORMAL_CUES), re.IGNORECASE)
_DISPOSITION = re.compile("|".join(DISPOSITION_CUES), re.IGNORECASE)


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


class SentenceStream:
    """Verify an answer while it is written: ``feed`` it the backend's tokens; each sentence is
    checked once it is complete (the next one has begun), and ``on_verified`` gets those that pass.
    ``finish`` checks the last sentence and returns what was kept and dropped."""

    def __init__(
        self, context: Context, on_verified: Callable[[CheckedSentence], None] | None = None
    ) -> None:
        self.context = context
        self.on_verified = on_verified
        self.raw = ""
        self.kept: list[CheckedSentence] = []
        self.dropped: list[CheckedSentence] = []
        self._checked = 0

    def feed(self, token: str) -> None:
        self.raw += token
        sentences = split_sentences(self.raw)
        # A sentence is complete when the next has begun; one that begins with "[" may still be
        # a citation of the sentence before it ("... done. [2]").
        if len(sentences) > 1 and not sentences[-1].startswith("["):
            self._check(sentences[:-1])

    def finish(self) -> Verification:
        self._check(split_sentences(self.raw))
        return Verification(self.kept, self.dropped)

    def _check(self, sentences: list[str]) -> None:
        for sentence in sentences[self._checked :]:
            checked = check_sentence(sentence, self.context)
            if checked.problem is not None:
                self.dropped.append(checked)
                continue
            self.kept.append(checked)
            if self.on_verified is not None:
                self.on_verified(checked)
        self._checked = max(self._checked, len(sentences))


def check_sentence(sentence: str, context: Context) -> CheckedSentence:
    cited = _CITATION.findall(sentence)
    checked = CheckedSentence(sentence, evidence=cited)
    if sentence in POLICY_SENTENCES or _CITATION.sub("", sentence).strip() in POLICY_SENTENCES:
        return checked
    if not cited:
        checked.problem = "no citation"
        return checked
    facts: list[Fact] = []
    passages: list[str] = []
    for marker in cited:
        if marker.startswith("A"):
            fact = context.fact(marker)
            if fact is not None:
                facts.append(fact)
                continue
        else:
            passage = context.passage(int(marker))
            if passage is not None:
                passages.append(passage.chunk.text)
                continue
        checked.problem = f"cites [{marker}], which is not in the context"
        return checked
    claim = _CITATION.sub("", sentence)
    cited_text = " ".join([*(f.text for f in facts), *passages])
    everything = " ".join([*(f.text for f in context.facts), *(p.chunk.text for p in context.passages)])
    for number in _NUMBER.findall(claim):
        if not _mentions(cited_text, number) and not _mentions(everything, number):
            checked.problem = f"the number {number} is not in the context"
            return checked
    checked.problem = _contradiction(claim, facts, context) or _unsupported_disposition(claim, passages)
    return checked


def _unsupported_disposition(claim: str, passages: list[str]) -> str | None:
    """Disposition advice stands only on a cited passage that gives such advice itself."""
    if _DISPOSITION.search(claim) and not any(_DISPOSITION.search(text) for text in passages):
        return "gives disposition advice that no cited passage supports"
    return None


def _contradiction(claim: str, facts: list[Fact], context: Context) -> str | None:
    """Why the claim contradicts an analysis fact, or None. A sentence that states a cited fact
    word for word agrees with it."""
    if any(_plain(claim) == _plain(fact.text) for fact in facts):
        return None
    findings = [f for f in facts if f.label is not None and f.positive is not None]
    if facts and _NORMAL.search(claim):
        # A claim about the whole image rests on every finding, cited or not.
        for fact in [*findings, *context.facts]:
            if fact.positive and fact.label is not None:
                why = f"is a finding the model calls positive ({fact.label})"
                return f"calls the image normal, but [{fact.id}] {why}"
    one_finding = len({f.label for f in findings}) == 1
    for fact in findings:
        assert fact.label is not None
        stance = _stance(claim, fact.label, one_finding)
        if fact.positive and stance == "absent":
            return f"says {fact.label} is absent, but [{fact.id}] is the model calling it positive"
        if not fact.positive and stance == "present":
            return f"says {fact.label} is present, but [{fact.id}] is the model calling it negative"
    return None


def _stance(claim: str, label: str, pronoun: bool) -> Literal["absent", "present"] | None:
    absent, present = _stance_patterns(label, pronoun)
    if absent.search(claim):
        return "absent"
    if present.search(claim):
        return "present"
    return None


@lru_cache(maxsize=256)
def _stance_patterns(label: str, pronoun: bool) -> tuple[re.Pattern[str], re.Pattern[str]]:
    name = r"[\s_-]+".join(re.escape(word) for word in re.split(r"[\s_-]+", label.strip()))
    finding = rf"{_FINDING_WORDS}{name}(?:e?s)?\b"
    it = rf"(?:{finding}|it|this finding|the finding|this)" if pronoun else finding

    def compile_cues(cues: tuple[str, ...]) -> re.Pattern[str]:
        filled = [cue.replace("{finding}", finding).replace("{it}", it) for cue in cues]
        return re.compile("|".join(filled), re.IGNORECASE)

    return compile_cues(ABSENT_CUES), compile_cues(PRESENT_CUES)


def near_repeat(sentence: str, earlier: str, share: float = 0.6) -> bool:
    """Whether ``sentence`` says what ``earlier`` said: the same numbers, and at least ``share`` of
    their words in common (Jaccard, citations left out). Sentences with different numbers state
    different facts ("under 6 mm ... no routine follow-up", "under 6 mm ... CT at 12 months")."""
    a, b = _CITATION.sub("", sentence), _CITATION.sub("", earlier)
    if sorted(_NUMBER.findall(a)) != sorted(_NUMBER.findall(b)):
        return False
    words_a, words_b = set(re.findall(r"[a-z]{3,}", a.lower())), set(re.findall(r"[a-z]{3,}", b.lower()))
    return bool(words_a and words_b) and len(words_a & words_b) / len(words_a | words_b) >= share


def _plain(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(" .!?")


def _mentions(text: str, number: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(number)}(?![\w])", text) is not None
