"""From spaCy spans to entities: each target the pipeline found becomes a :class:`NoteEntity`.

An entity takes its ConText flags from the cues in its scope (and from its rule's attributes
and its section), its laterality, location and measurement from the nearest such cue, and its
value from :data:`sahay.notes.values.VALUE_READERS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from medspacy.target_matcher import TargetRule
from spacy.tokens import Doc, Span

from sahay.analysis import NoteEntity
from sahay.notes.nlp import SPAN_GROUP, longest_matches, text_of
from sahay.notes.sections import FINDINGS_NOT_CURRENT, SECTION_FLAGS, SectionTracker
from sahay.notes.values import VALUE_READERS, measurement_mm

# ConText categories and target-rule attributes that set an entity's flags.
CONTEXT_FLAGS = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "uncertain",
    "HISTORICAL": "historical",
    "FAMILY": "family",
    "HYPOTHETICAL": "hypothetical",
}
RESOLVED = "RESOLVED"  # ConText category of "resolution of", "has cleared": temporality, not a flag
RULE_FLAGS = {
    "is_negated": "negated",
    "is_uncertain": "uncertain",
    "is_historical": "historical",
    "is_family": "family",
    "is_hypothetical": "hypothetical",
}
LATERALITY_WORD = re.compile(r"\b(left|right|bilateral)\b", re.IGNORECASE)


@dataclass
class Mention:
    """An entity plus what only the risk-factor and link steps need."""

    entity: NoteEntity
    duration_text: str | None = None
    sentence_start: int = 0  # token positions in the piece's Doc
    token_end: int = 0
    link_cue_start: int | None = None  # where a "may represent"-like cue reaching it starts


def _targets(doc: Doc) -> list[Span]:
    spans = list(doc.spans[SPAN_GROUP]) if SPAN_GROUP in doc.spans else []
    kept = longest_matches([(i, span.start, span.end) for i, span in enumerate(spans)])
    return [spans[i] for i, _, _ in kept]


def _nearest_modifiers(span: Span, modifiers: Iterable[Any]) -> dict[str, Any]:
    """For each cue category, the cue closest to the span; on a tie, the one before it ('left effusion')."""
    nearest: dict[str, tuple[tuple[int, int], Any]] = {}
    for modifier in modifiers:
        start, end = modifier.modifier_span
        if end <= span.start:
            key = (span.start - end, 0)
        elif start >= span.end:
            key = (start - span.end, 1)
        else:
            key = (0, 0)
        known = nearest.get(modifier.category)
        if known is None or key < known[0]:
            nearest[modifier.category] = (key, modifier)
    return {category: modifier for category, (_, modifier) in nearest.items()}


def _metadata(modifier: Any) -> dict[str, Any]:
    return dict(modifier.rule.metadata or {}) if modifier is not None else {}


def _laterality(text: str, nearest: dict[str, Any]) -> str | None:
    written = LATERALITY_WORD.search(text)
    if written:  # "blunting of the left costophrenic angle"
        return written.group(1).lower()
    for category in ("LATERALITY", "LOCATION"):  # "RLL" says right too
        laterality = _metadata(nearest.get(category)).get("laterality")
        if laterality:
            return str(laterality)
    return None


def _location(span: Span, nearest: dict[str, Any]) -> str | None:
    modifier = nearest.get("LOCATION")
    if modifier is None:
        return None
    return str(_metadata(modifier).get("location") or _modifier_text(span, modifier).lower())


def _modifier_text(span: Span, modifier: Any) -> str:
    start, end = modifier.modifier_span
    return " ".join(span.doc[start:end].text.split())


def _flags(rule: TargetRule, modifiers: Iterable[Any], section: str | None, kind: str) -> dict[str, Any]:
    """ConText's flags, read from the cues themselves (the same as its Span attributes, faster),
    with the three-valued certainty, temporality and experiencer they come to."""
    flags: dict[str, Any] = dict.fromkeys(CONTEXT_FLAGS.values(), False)
    resolved = False
    for modifier in modifiers:
        if modifier.category in CONTEXT_FLAGS:
            flags[CONTEXT_FLAGS[modifier.category]] = True
        resolved |= modifier.category == RESOLVED
    for attribute, value in (rule.attributes or {}).items():  # "afebrile" is Fever, negated
        if attribute in RULE_FLAGS and value:
            flags[RULE_FLAGS[attribute]] = True
        resolved |= attribute == "is_resolved" and bool(value)
    if section in SECTION_FLAGS:
        flags[SECTION_FLAGS[section]] = True
    if kind == "finding" and section in FINDINGS_NOT_CURRENT:
        # The request form and the comparison are not today's film: "rule out pneumonia" is a
        # question (hypothetical), "history: pneumonia" a past finding.
        if flags["uncertain"]:
            flags["uncertain"], flags["hypothetical"] = False, True
        elif not (flags["negated"] or flags["hypothetical"]):
            flags["historical"] = True
    doubtful = flags["uncertain"] or flags["hypothetical"]
    flags["certainty"] = "negative" if flags["negated"] else "uncertain" if doubtful else "positive"
    flags["temporality"] = "resolved" if resolved else "historical" if flags["historical"] else "current"
    flags["experiencer"] = "family" if flags["family"] else "patient"
    return flags


def _mention(span: Span, offset: int, section: str | None) -> Mention:
    rule = span._.target_rule
    modifiers = span._.modifiers
    metadata = rule.metadata or {}
    concept = span.label_
    text = text_of(span.doc)
    entity_text = text[span.start_char : span.end_char]
    nearest = _nearest_modifiers(span, modifiers)
    measured = nearest.get("MEASUREMENT")
    measurement = _modifier_text(span, measured) if measured is not None else None
    reader = VALUE_READERS.get(concept)
    value = reader(entity_text) if reader else metadata.get("value")
    sentence = span.sent
    kind = metadata.get("kind", "other")
    entity = NoteEntity(
        text=entity_text,
        concept=concept,
        kind=kind,
        start=span.start_char + offset,
        end=span.end_char + offset,
        **_flags(rule, modifiers, section, kind),
        suggests=list(metadata.get("suggests", [])),
        section=section,
        laterality=_laterality(entity_text, nearest),
        location=_location(span, nearest),
        measurement=measurement,
        measurement_mm=measurement_mm(measurement) if measurement else None,
        value=None if value is None else str(value),
        sentence=text[sentence.start_char : sentence.end_char].strip(),
    )
    duration = nearest.get("DURATION")
    links = [
        m.modifier_span[0]
        for m in modifiers
        if m.category == "POSSIBLE_EXISTENCE"
        and _metadata(m).get("link")
        and m.modifier_span[0] >= sentence.start
    ]
    return Mention(
        entity,
        _modifier_text(span, duration) if duration is not None else None,
        sentence_start=sentence.start,
        token_end=span.end,
        link_cue_start=min(links) if links else None,
    )


def _mark_inferred(mentions: list[Mention]) -> None:
    """A finding reached by a linking cue after a sign in the same sentence ("hyperexpanded lungs,
    suggestive of emphysema"; "opacity which may represent atelectasis") is what the sign may
    mean, a weaker link: it records the sign's concept as ``inferred_from``."""
    for mention in mentions:
        cue = mention.link_cue_start
        if cue is None or mention.entity.kind not in ("finding", "other"):
            continue
        signs = [
            other
            for other in mentions
            if other is not mention
            and other.sentence_start == mention.sentence_start
            and other.token_end <= cue
            and other.entity.kind == "finding"
            and other.entity.concept != mention.entity.concept
            and other.link_cue_start is None
        ]
        if signs:
            mention.entity.inferred_from = max(signs, key=lambda m: m.token_end).entity.concept


def find_mentions(parts: list[tuple[int, Doc]]) -> tuple[list[Mention], list[str]]:
    """Mentions and section categories of a note read in one or more pieces, in text order."""
    mentions: list[Mention] = []
    sections = SectionTracker()
    for offset, doc in parts:
        found = [_mention(span, offset, sections.section_of(span)) for span in _targets(doc)]
        _mark_inferred(found)
        mentions += found
        sections.end_piece(doc)
    return mentions, sections.categories
