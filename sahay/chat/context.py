"""What an answer may rest on: facts read off the Analysis, and retrieved passages, each numbered.

Facts are cited as ``[A1]``, ``[A2]``... and passages as ``[1]``, ``[2]``...; every sentence of an
answer must rest on one of them (``sahay.chat.verify``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sahay.analysis import Analysis
from sahay.knowledge.corpus import sentences_of
from sahay.knowledge.index import Passage
from sahay.statement import state


@dataclass(frozen=True)
class Fact:
    id: str
    """``A1``, ``A2``, ...: how answers cite it."""
    field: str
    """Where in the Analysis it comes from, e.g. ``findings[Effusion]``."""
    text: str
    label: str | None = None
    """The finding it is about, if any."""
    positive: bool | None = None
    """Whether the model calls that finding positive (``None`` for facts about no finding)."""


@dataclass
class Context:
    question: str
    audience: str
    kind: str = "general"
    """What the question asks for (``sahay.chat.questions.QuestionKind``)."""
    facts: list[Fact] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    """Best first: the sections the question names, then those for its kind, then search results."""
    answering: set[str] = field(default_factory=set)
    """Chunk ids of passages chosen because they answer the question (the section it names, or its
    kind's section for a finding in focus): their opening sentence is the answer."""
    uncovered: list[str] = field(default_factory=list)
    """Positive findings the question is about that no curated article explains."""

    def passage(self, number: int) -> Passage | None:
        return self.passages[number - 1] if 1 <= number <= len(self.passages) else None

    def fact(self, fact_id: str) -> Fact | None:
        return next((f for f in self.facts if f.id == fact_id), None)

    def as_prompt(self) -> str:
        """The context block every backend receives: data, never instructions."""
        lines = ["ANALYSIS FACTS (cite as [A1], [A2], ...):"]
        lines += [f"[{f.id}] {f.text}" for f in self.facts] or ["(no analysis in focus)"]
        lines.append("PASSAGES (cite as [1], [2], ...):")
        for number, passage in enumerate(self.passages, start=1):
            chunk = passage.chunk
            # The article's own [n] markers number its sources, not these passages: leave them out.
            text = re.sub(r"\s*\[\d+\]", "", chunk.text)
            lines.append(f"[{number}] {chunk.title} - {chunk.section}: {text}")
        return "\n".join(lines)


MAX_NOTE_FACTS = 12
_NOTE_CERTAINTY = {"positive": "states", "negative": "negates", "uncertain": "is uncertain about"}
_NOTICE_FIELDS = {"demonstration": "demonstration_notice", "forced": "quality", "out-of-domain": "quality"}


def analysis_facts(analysis: Analysis) -> list[Fact]:
    """Numbered facts: the model, each finding with its threshold, where it looked, the note, warnings."""
    facts: list[Fact] = []

    def add(where: str, text: str, label: str | None = None, positive: bool | None = None) -> None:
        facts.append(Fact(f"A{len(facts) + 1}", where, text, label, positive))

    model = analysis.model
    # One sentence, so that its citation stays with it: the intended use may run to several.
    intended_use = "; ".join(s.rstrip(".") for s in sentences_of(model.intended_use)) or "not stated"
    add("model", f"The image was analysed by model {model.name} {model.version}, made for: {intended_use}.")
    statement = state(analysis)
    for notice in statement.notices:  # the same notices, in the same words, as every output
        add(_NOTICE_FIELDS.get(notice.kind, "notices"), notice.text)
    by_label = {f.label: f for f in analysis.findings}
    for decision in statement.decisions:  # the same words as every other output
        finding = by_label[decision.label]
        result = "positive" if finding.positive else "negative"
        add(
            f"findings[{finding.label}]",
            f"{finding.label}: model {decision.reason}, so the model calls it {result}.",
            finding.label,
            finding.positive,
        )
        if finding.explanation is not None:
            add(
                f"findings[{finding.label}].explanation",
                finding.explanation.summary,
                finding.label,
                finding.positive,
            )
    if analysis.notes is not None:
        for index, entity in enumerate(analysis.notes.entities[:MAX_NOTE_FACTS]):
            said = _NOTE_CERTAINTY[entity.certainty]
            when = "" if entity.temporality == "current" else f", {entity.temporality}"
            add(
                f"notes.entities[{index}]",
                f'The clinical note {said} "{entity.text}" ({entity.concept}{when}).',
            )
    if analysis.fusion is not None:
        for text in analysis.fusion.discordances:
            add("fusion.discordances", text)
        for fused in analysis.fusion.findings:
            if fused.evidence:
                add(f"fusion[{fused.label}]", fused.explanation, fused.label, fused.image_positive)
    return facts
