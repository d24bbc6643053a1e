"""Read a clinical note with medspaCy: target rules, ConText and the sectionizer, all rules as data.

The pipeline is a blank spaCy English model with medspaCy's clinical tokenizer (plus a few
abbreviations such as "y.o."), spaCy's ``sentencizer`` (about 7x faster than PyRuSH; a small
component also starts a sentence at a line break unless the next line continues in lower case),
medspaCy's sectionizer, target matcher and ConText. Rules live in ``sahay/notes/rules/*.json``;
see :mod:`sahay.notes` for the file format and how a site adds its own.

ConText runs one sentence at a time (it compares every pair of cues it is given), and long
notes are read in pieces of about ``PIECE_CHARS`` characters cut at blank lines, line ends or
sentence ends: some medspaCy steps grow faster than the length of a document (1 MB in one
document took 76 s, in pieces 8 s). Sections carry over from one piece to the next. A note
longer than ``max_chars`` is refused before any work is done.

Two medspaCy 1.3.1 behaviours are worked around here, each where it happens: overlapping
matches are pruned to the longest ones, and scope-ending cues have a one-token scope in the
rule file (its overlap test misses a scope that contains another).
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import spacy
from medspacy.common.medspacy_matcher import MedspacyMatcher
from medspacy.context import ConText, ConTextGraph, ConTextModifier, ConTextRule
from medspacy.custom_tokenizer import create_medspacy_tokenizer
from medspacy.section_detection import Sectionizer, SectionRule
from medspacy.target_matcher import TargetMatcher, TargetRule
from spacy.language import Language
from spacy.symbols import ORTH
from spacy.tokens import Doc, Span
from spacy.util import compile_suffix_regex

from sahay.analysis import ENTITY_KINDS, NoteEntity, NoteReading, RiskFactors
from sahay.errors import BadInput, describe_error

RULES_DIR = Path(__file__).parent / "rules"
BUILTIN_RULE_FILES = (
    "findings.json",
    "other.json",
    "breast.json",
    "pathology.json",
    "symptoms.json",
    "risk_factors.json",
    "context.json",
    "sections.json",
)
RULE_KEYS = ("target_rules", "context_rules", "section_rules")
SPAN_GROUP = "sahay_notes"
TEXT_KEY = "sahay_text"
PIECE_CHARS = 20_000
DEFAULT_MAX_CHARS = 1_000_000

# Tokens that end in a full stop without ending a sentence ("Pt is a 64 y.o. male.").
ABBREVIATIONS = (
    "y.o.", "yo.", "yrs.", "approx.", "dr.", "pt.", "vs.", "e.g.", "i.e.", "mr.", "mrs.", "ms.", "st.",
    "b.i.d.", "t.i.d.", "q.d.", "p.r.n.", "wk.", "wks.", "mo.", "mos.",
)  # fmt: skip

# ConText categories and target-rule attributes that set an entity's flags.
CONTEXT_FLAGS = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "uncertain",
    "HISTORICAL": "historical",
    "FAMILY": "family",
    "HYPOTHETICAL": "hypothetical",
}
RULE_FLAGS = {
    "is_negated": "negated",
    "is_uncertain": "uncertain",
    "is_historical": "historical",
    "is_family": "family",
    "is_hypothetical": "hypothetical",
}
LATERALITY_WORD = re.compile(r"\b(left|right|bilateral)\b", re.IGNORECASE)

# Sections whose content is not the patient's present state.
SECTION_FLAGS = {"family_history": "family", "past_medical_history": "historical"}


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


@dataclass
class RuleSet:
    """Rules for the three medspaCy components, plus ConText's map of which categories end which."""

    targets: list[TargetRule] = field(default_factory=list)
    context: list[ConTextRule] = field(default_factory=list)
    sections: list[SectionRule] = field(default_factory=list)
    terminating_types: dict[str, list[str]] = field(default_factory=dict)

    def extend(self, other: RuleSet) -> None:
        self.targets += other.targets
        self.context += other.context
        self.sections += other.sections
        for category, enders in other.terminating_types.items():
            known = self.terminating_types.setdefault(category.upper(), [])
            known += [e.upper() for e in enders if e.upper() not in known]

    def kinds_by_concept(self) -> dict[str, str]:
        return {rule.category: rule.metadata["kind"] for rule in self.targets}


def load_rules(extra_rules_dir: Path | None = None) -> RuleSet:
    """The built-in rules, then every ``*.json`` in ``extra_rules_dir`` (in name order)."""
    rules = RuleSet()
    for name in BUILTIN_RULE_FILES:
        rules.extend(load_rule_file(RULES_DIR / name))
    if extra_rules_dir is not None:
        for path in _site_rule_files(Path(extra_rules_dir)):
            rules.extend(load_rule_file(path, rules.kinds_by_concept()))
    return rules


def _site_rule_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BadInput(f"extra rules folder {folder} does not exist or is not a folder")
    return sorted(folder.glob("*.json"))


def load_rule_file(path: Path, known_kinds: dict[str, str] | None = None) -> RuleSet:
    """One JSON rule file; any of ``target_rules``, ``context_rules``, ``section_rules`` may be present."""
    data = _read_json(path)
    if not any(key in data for key in RULE_KEYS):
        raise BadInput(f"rule file {path} has none of the keys {', '.join(RULE_KEYS)}")
    kinds = known_kinds or {}
    try:
        rules = RuleSet(
            targets=[_target_rule(d, data.get("kind"), kinds) for d in data.get("target_rules", [])],
            context=[_context_rule(d) for d in data.get("context_rules", [])],
            sections=[SectionRule.from_dict(d) for d in data.get("section_rules", [])],
            terminating_types=dict(data.get("terminating_types", {})),
        )
        for rule in [*rules.targets, *rules.context, *rules.sections]:
            _check_pattern(rule)
    except (ValueError, TypeError, KeyError, AttributeError, re.error) as exc:
        raise BadInput(f"rule file {path}: {describe_error(exc)}") from exc
    return rules


def _check_pattern(rule: Any) -> None:
    """Fail here, naming the file, rather than when the matchers are built."""
    pattern = rule.pattern
    if isinstance(pattern, str):
        re.compile(pattern)
    elif pattern is not None and not (
        isinstance(pattern, list) and all(isinstance(p, dict) for p in pattern)
    ):
        raise ValueError(f"rule {rule.literal!r}: a pattern is a regex string or a list of token patterns")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"rule file {path} is not readable JSON: {describe_error(exc)}") from exc
    if not isinstance(data, dict):
        raise BadInput(f"rule file {path} must hold a JSON object, not {type(data).__name__}")
    return data


def _target_rule(data: dict[str, Any], file_kind: str | None, known_kinds: dict[str, str]) -> TargetRule:
    rule = TargetRule.from_dict(data)
    metadata = dict(rule.metadata or {})
    # A site synonym for a known concept keeps that concept's kind unless it says otherwise.
    kind = metadata.get("kind") or file_kind or known_kinds.get(rule.category) or "other"
    if kind not in ENTITY_KINDS:
        raise ValueError(f"rule {rule.literal!r} has kind {kind!r}; use one of {', '.join(ENTITY_KINDS)}")
    metadata["kind"] = kind
    rule.metadata = metadata
    return rule


def _context_rule(data: dict[str, Any]) -> ConTextRule:
    # ConTextRule takes terminated_by but its from_dict does not: accept it here.
    data = dict(data)
    terminated_by = data.pop("terminated_by", None) or []
    rule = ConTextRule.from_dict(data)
    rule.terminated_by = {category.upper() for category in terminated_by}
    return rule


# ---------------------------------------------------------------------------------------------
# The spaCy pipeline
# ---------------------------------------------------------------------------------------------


def build_pipeline(rules: RuleSet) -> Language:
    nlp = spacy.blank("en")
    # Set the tokenizer first: medspaCy's matchers tokenize their phrases with nlp.tokenizer.
    nlp.tokenizer = _clinical_tokenizer(nlp)
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("sahay_line_breaks")
    sectionizer = nlp.add_pipe(
        "medspacy_sectionizer",
        config={"rules": None, "span_attrs": None, "apply_sentence_boundary": True},
    )
    targets = nlp.add_pipe(
        "medspacy_target_matcher", config={"result_type": "group", "span_group_name": SPAN_GROUP}
    )
    context = nlp.add_pipe(
        "sahay_context",
        config={
            "rules": None,
            "input_span_type": "group",
            "span_group_name": SPAN_GROUP,
            # A cue inside a target ("not" in "does not smoke") belongs to that target.
            "prune_on_target_overlap": True,
        },
    )
    for component, private_name in (
        (sectionizer, "_Sectionizer__matcher"),
        (targets, "_TargetMatcher__matcher"),
        (context, "_ConText__matcher"),
    ):
        _prune_to_longest_matches(component, private_name)
    _add_rules(sectionizer, rules.sections)
    _add_rules(targets, rules.targets)
    _add_rules(context, _with_terminations(rules))
    return nlp


def _with_terminations(rules: RuleSet) -> list[ConTextRule]:
    # Applied here, not through ConText's terminating_types setting: spaCy's config validation
    # turns those lists into one-shot iterators, so only the first rule of a category got them.
    for rule in rules.context:
        rule.terminated_by |= set(rules.terminating_types.get(rule.category, []))
    return rules.context


def _add_rules(component: Sectionizer | TargetMatcher | ConText, rules: list[Any]) -> None:
    if rules:
        component.add(rules)


def _clinical_tokenizer(nlp: Language) -> Any:
    tokenizer = create_medspacy_tokenizer(nlp)
    # "BI-RADS 4A." must end the sentence: split the full stop after a digit-letter code.
    suffixes = list(nlp.Defaults.suffixes or ())
    tokenizer.suffix_search = compile_suffix_regex([*suffixes, r"(?<=[0-9][A-Za-z])\."]).search
    for abbreviation in ABBREVIATIONS:
        for form in {abbreviation, abbreviation.upper(), abbreviation.capitalize()}:
            tokenizer.add_special_case(form, [{ORTH: form}])
    return tokenizer


def _text_of(doc: Doc) -> str:
    """``doc.text``, built once: spaCy joins every token again on each call."""
    text = doc.user_data.get(TEXT_KEY)
    if text is None:
        text = doc.user_data[TEXT_KEY] = doc.text
    return str(text)


LINE_BREAK = re.compile(r"\n([ \t\r\f\v]*\n?)\s*(?=\S)")


@Language.component("sahay_line_breaks")
def _line_breaks(doc: Doc) -> Doc:
    """Start a sentence after a line break, unless the next line goes on in lower case (a wrapped line).

    Report lines often have no full stop ("FINDINGS: No pneumothorax" then "IMPRESSION: ..."),
    and a negation must not run from one line into the next.
    """
    text = _text_of(doc)
    for line_break in LINE_BREAK.finditer(text):
        following = doc.char_span(line_break.end(), line_break.end() + 1, alignment_mode="expand")
        if following is None:
            continue
        if "\n" in line_break.group(1) or not text[line_break.end()].islower():
            following[0].is_sent_start = True
    return doc


class _LongestMatches:
    """Stands in for a component's MedspacyMatcher: runs its three matchers, keeps the longest matches.

    It works around two medspaCy 1.3.1 issues: its pruning keeps two overlapping matches when three
    overlap ("no history of", "no", "history of" kept "history of", which then ended the negation),
    and its regex matcher rebuilds ``doc.text`` for every pattern. Regex ``on_match`` callbacks are
    not called (JSON rules cannot define them).
    """

    def __init__(self, inner: MedspacyMatcher) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, doc: Doc) -> list[tuple[int, int, int]]:
        inner = self._inner
        matches: list[tuple[int, int, int]] = []
        for name in ("_MedspacyMatcher__matcher", "_MedspacyMatcher__phrase_matcher"):
            matcher = getattr(inner, name)
            if len(matcher):  # spaCy warns when a matcher without patterns is called
                matches += matcher(doc)
        matches += _regex_matches(doc, inner._MedspacyMatcher__regex_matcher._patterns)
        return longest_matches(matches)


def _regex_matches(doc: Doc, patterns: dict[int, list[re.Pattern[str]]]) -> list[tuple[int, int, int]]:
    """Regex matches widened to whole tokens, as medspaCy's RegexMatcher does by default."""
    if not patterns:
        return []
    text = _text_of(doc)
    matches = []
    for match_id, compiled in patterns.items():
        for pattern in compiled:
            for found in pattern.finditer(text):
                span = doc.char_span(found.start(), found.end(), alignment_mode="expand")
                if span is not None and len(span):
                    matches.append((match_id, span.start, span.end))
    return matches


def _prune_to_longest_matches(component: Any, private_name: str) -> None:
    setattr(component, private_name, _LongestMatches(getattr(component, private_name)))


@Language.factory("sahay_context")
class SentenceConText(ConText):
    """medspaCy's ConText, run one sentence at a time.

    Scopes never cross a sentence, so the result is the same, but ConText compares every pair of
    cues in what it is given: per sentence that stays linear in the length of the note.
    """

    def __call__(self, doc: Doc, targets: str | None = None) -> Doc:
        spans = list(doc.spans[self.span_group_name]) if self.span_group_name in doc.spans else []
        matcher = self._ConText__matcher
        modifiers = [
            ConTextModifier(matcher.rule_map[self.nlp.vocab[match_id].text], start, end, doc)
            for match_id, start, end in matcher(doc)
        ]
        sentence_starts = [sentence.start for sentence in doc.sents]
        by_sentence: dict[int, tuple[list[Span], list[ConTextModifier]]] = {}
        for span in spans:
            by_sentence.setdefault(bisect_right(sentence_starts, span.start), ([], []))[0].append(span)
        for modifier in modifiers:
            group = by_sentence.get(bisect_right(sentence_starts, modifier.modifier_span[0]))
            if group is not None:  # a sentence with no target needs no ConText
                group[1].append(modifier)
        edges = []
        for sentence_targets, sentence_modifiers in by_sentence.values():
            graph = ConTextGraph(
                targets=sentence_targets,
                modifiers=sentence_modifiers,
                prune_on_modifier_overlap=self.prune_on_target_overlap,
            )
            graph.update_scopes()
            graph.apply_modifiers()
            edges += graph.edges
        for target, modifier in edges:
            target._.modifiers += (modifier,)
        if self.context_attributes_mapping:
            self.set_context_attributes(edges)
        doc._.context_graph = ConTextGraph(targets=spans, modifiers=modifiers, edges=edges)
        return doc


def longest_matches(matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Non-overlapping matches, longest first, then leftmost; returned in text order."""
    taken: set[int] = set()
    kept = []
    for match in sorted(matches, key=lambda m: (m[1] - m[2], m[1])):
        tokens = range(match[1], match[2])
        if not taken.intersection(tokens):
            taken.update(tokens)
            kept.append(match)
    return sorted(kept, key=lambda m: (m[1], m[2]))


# ---------------------------------------------------------------------------------------------
# Numbers read from matched text
# ---------------------------------------------------------------------------------------------

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "few": 3, "several": 3,
}  # fmt: skip
UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}
SLASH_UNIT_DAYS = {"7": 1, "52": 7, "12": 30}  # 3/7 = 3 days, 3/52 = 3 weeks, 3/12 = 3 months
ROMAN = {"i": 1, "ii": 2, "iii": 3, "one": 1, "two": 2, "three": 3}
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def duration_days(text: str) -> int | None:
    """'3 weeks' -> 21, 'a month' -> 30, '3/52' -> 21; None when no duration is found."""
    slash = re.search(r"(\d+)\s*/\s*(7|52|12)\b", text)
    if slash:
        return int(slash.group(1)) * SLASH_UNIT_DAYS[slash.group(2)]
    match = re.search(r"(\d+|[a-z]+)\s*-?\s*(d|w|mo|m|y)", text.lower())
    if not match:
        return None
    amount = int(match.group(1)) if match.group(1).isdigit() else NUMBER_WORDS.get(match.group(1))
    if amount is None:
        return None
    return amount * UNIT_DAYS[match.group(2)[0]]


def measurement_mm(text: str) -> float | None:
    """Largest dimension in millimetres: '1.2 x 0.8 cm' -> 12.0, '5 mm' -> 5.0."""
    numbers = [float(n) for n in NUMBER.findall(text)]
    if not numbers:
        return None
    scale = 10.0 if re.search(r"c(?:m|entimet)", text.lower()) else 1.0
    return round(max(numbers) * scale, 3)


def pack_years(text: str) -> float | None:
    """'40 pack-years' -> 40; '2 packs a day for 20 years' -> 40."""
    numbers = [float(n) for n in NUMBER.findall(text)]
    if not numbers:
        return None
    per_day = re.search(r"ppd|pks?\b|packs?\s*(?:a|per|/)?\s*day|packs?\s*(?:x|for|times|over)", text.lower())
    if per_day and len(numbers) >= 2:
        return numbers[0] * numbers[1]
    return numbers[0]


def _age(text: str) -> str | None:
    match = re.search(r"\d{1,3}", text)
    return match.group() if match and 0 < int(match.group()) <= 120 else None


def _birads(text: str) -> str | None:
    match = re.search(r"([0-6])\s*([abc])?\s*$", text, re.IGNORECASE)
    return (match.group(1) + (match.group(2) or "").upper()) if match else None


def _grade(text: str) -> str | None:
    match = re.search(r"grade\s*:?\s*([1-3]|iii|ii|i|one|two|three)\b", text, re.IGNORECASE)
    if not match:
        return None
    word = match.group(1).lower()
    return word if word.isdigit() else str(ROMAN[word])


def _pack_years_value(text: str) -> str | None:
    amount = pack_years(text)
    return None if amount is None else f"{amount:g}"


def brca_genes(text: str) -> list[str]:
    """'BRCA1/2 mutation' -> ['BRCA1', 'BRCA2']; 'BRCA carrier' -> ['BRCA']."""
    digits = re.findall(r"[12]", re.sub(r"(?i)^.*?brca", "", text))
    return [f"BRCA{d}" for d in sorted(set(digits))] or ["BRCA"]


def _sex_after_age(text: str) -> str | None:
    match = re.search(r"\d\s*(?:[a-zA-Z./-]*\s*)?([MF])$", text.strip())
    return {"M": "male", "F": "female"}[match.group(1)] if match else None


VALUE_READERS: dict[str, Callable[[str], str | None]] = {
    "Age": _age,
    "BI-RADS": _birads,
    "Grade": _grade,
    "Pack-Years": _pack_years_value,
    "BRCA": lambda text: ", ".join(brca_genes(text)),
}


# ---------------------------------------------------------------------------------------------
# From spaCy spans to entities
# ---------------------------------------------------------------------------------------------


@dataclass
class _Mention:
    """An entity plus what only the risk-factor step needs."""

    entity: NoteEntity
    duration_text: str | None = None


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


def _flags(rule: TargetRule, modifiers: Iterable[Any], section: str | None) -> dict[str, bool]:
    """ConText's flags, read from the cues themselves (the same as its Span attributes, faster)."""
    flags = dict.fromkeys(CONTEXT_FLAGS.values(), False)
    for modifier in modifiers:
        if modifier.category in CONTEXT_FLAGS:
            flags[CONTEXT_FLAGS[modifier.category]] = True
    for attribute, value in (rule.attributes or {}).items():  # "afebrile" is Fever, negated
        if attribute in RULE_FLAGS and value:
            flags[RULE_FLAGS[attribute]] = True
    if section in SECTION_FLAGS:
        flags[SECTION_FLAGS[section]] = True
    return flags


def _mention(span: Span, offset: int, section: str | None) -> _Mention:
    rule = span._.target_rule
    modifiers = span._.modifiers
    metadata = rule.metadata or {}
    concept = span.label_
    text = _text_of(span.doc)
    entity_text = text[span.start_char : span.end_char]
    nearest = _nearest_modifiers(span, modifiers)
    measured = nearest.get("MEASUREMENT")
    measurement = _modifier_text(span, measured) if measured is not None else None
    reader = VALUE_READERS.get(concept)
    value = reader(entity_text) if reader else metadata.get("value")
    sentence = span.sent
    entity = NoteEntity(
        text=entity_text,
        concept=concept,
        kind=metadata.get("kind", "other"),
        start=span.start_char + offset,
        end=span.end_char + offset,
        **_flags(rule, modifiers, section),
        section=section,
        laterality=_laterality(entity_text, nearest),
        location=_location(span, nearest),
        measurement=measurement,
        measurement_mm=measurement_mm(measurement) if measurement else None,
        value=None if value is None else str(value),
        sentence=text[sentence.start_char : sentence.end_char].strip(),
    )
    duration = nearest.get("DURATION")
    return _Mention(entity, _modifier_text(span, duration) if duration is not None else None)


def _mentions(parts: list[tuple[int, Doc]]) -> tuple[list[_Mention], list[str]]:
    """Mentions and section categories of a note read in one or more pieces, in text order."""
    mentions: list[_Mention] = []
    sections: list[str] = []
    carried: str | None = None  # the section a piece starts in, from the piece before
    for offset, doc in parts:
        for span in _targets(doc):
            found = span[0]._.section
            section = (found.category if found is not None else None) or carried
            mentions.append(_mention(span, offset, section))
        for section_ in doc._.sections:
            if section_.category:
                carried = section_.category
                if section_.category not in sections:
                    sections.append(section_.category)
    return mentions, sections


# ---------------------------------------------------------------------------------------------
# Risk factors
# ---------------------------------------------------------------------------------------------

CANCER_CONCEPTS = ("Breast Cancer", "Lung Cancer", "Cancer")
SMOKING_PRIORITY = ("former", "current", "never")  # quitting is the more specific statement


def _about_patient(entity: NoteEntity) -> bool:
    """Said of the patient as a fact (it may be past): not negated, uncertain, hypothetical or family."""
    return not (entity.negated or entity.uncertain or entity.hypothetical or entity.family)


def _of(mentions: list[_Mention], *concepts: str) -> list[NoteEntity]:
    return [m.entity for m in mentions if m.entity.concept in concepts]


def _first(entities: Iterable[NoteEntity]) -> NoteEntity | None:
    return next(iter(entities), None)


def _smoking_status(entity: NoteEntity) -> str | None:
    status = entity.value
    if entity.negated:  # "denies smoking"
        return "never" if status == "current" else None
    if entity.historical and status == "current":  # "history of smoking"
        return "former"
    return status


def _smoking(mentions: list[_Mention]) -> tuple[str | None, str | None]:
    found: dict[str, str] = {}
    for entity in _of(mentions, "Smoking"):
        if entity.family or entity.hypothetical or entity.uncertain:
            continue
        status = _smoking_status(entity)
        if status:
            found.setdefault(status, entity.text)
    for status in SMOKING_PRIORITY:
        if status in found:
            return status, found[status]
    return None, None


def _sex(mentions: list[_Mention]) -> tuple[str | None, str | None]:
    for mention in mentions:
        entity = mention.entity
        if entity.family or entity.concept not in ("Sex", "Age"):
            continue
        sex = entity.value if entity.concept == "Sex" else _sex_after_age(entity.text)
        if sex in ("male", "female"):
            return sex, entity.text
    return None, None


def _symptom_duration(mentions: list[_Mention]) -> tuple[int | None, str | None]:
    """The longest duration written next to a symptom the patient has."""
    best: tuple[int | None, str | None] = (None, None)
    for mention in mentions:
        entity = mention.entity
        if entity.kind != "symptom" or not _about_patient(entity) or not mention.duration_text:
            continue
        days = duration_days(mention.duration_text)
        if days is not None and (best[0] is None or days > best[0]):
            best = (days, mention.duration_text)
    return best


def _birads_entity(mentions: list[_Mention]) -> NoteEntity | None:
    """The assessment in the impression if there is one, else the last one written."""
    stated = [e for e in _of(mentions, "BI-RADS") if e.value and not (e.negated or e.hypothetical)]
    in_impression = [e for e in stated if e.section == "impression"]
    chosen = in_impression or stated
    return chosen[-1] if chosen else None


def _risk_factors(mentions: list[_Mention]) -> RiskFactors:
    facts: dict[str, Any] = {}
    evidence: dict[str, str] = {}

    def note(name: str, value: Any, text: str | None) -> None:
        if value not in (None, [], False) and text:
            facts[name] = value
            evidence[name] = text

    age = _first(e for e in _of(mentions, "Age") if not e.family and e.value)
    note("age", int(age.value) if age and age.value else None, age.text if age else None)
    note("sex", *_sex(mentions))
    note("smoking", *_smoking(mentions))
    packs = _first(e for e in _of(mentions, "Pack-Years") if _about_patient(e) and e.value)
    note("pack_years", float(packs.value) if packs and packs.value else None, packs.text if packs else None)
    cancers = [e for e in _of(mentions, *CANCER_CONCEPTS) if _about_patient(e)]
    note("prior_cancer", _unique(e.value or e.concept.lower() for e in cancers), _joined(cancers))
    tb = [e for e in _of(mentions, "Tuberculosis") if _about_patient(e) and e.historical]
    note("tb_history", bool(tb), _joined(tb))
    immune = [e for e in _of(mentions, "Immunosuppression") if _about_patient(e)]
    note("immunosuppression", _unique(e.value or e.text.lower() for e in immune), _joined(immune))
    family_bc = [
        e
        for e in _of(mentions, "Breast Cancer")
        if e.family and not (e.negated or e.hypothetical or e.uncertain)
    ]
    note("family_history_breast_cancer", bool(family_bc), _joined(family_bc))
    brca = [e for e in _of(mentions, "BRCA") if _about_patient(e)]
    note("brca", _unique(g for e in brca for g in brca_genes(e.text)), _joined(brca))
    note("symptom_duration_days", *_symptom_duration(mentions))
    birads = _birads_entity(mentions)
    note("birads", birads.value if birads else None, birads.text if birads else None)
    grades = [e for e in _of(mentions, "Grade") if e.value and not (e.negated or e.hypothetical)]
    worst = max(grades, key=lambda e: int(e.value or 0), default=None)
    note("grade", int(worst.value) if worst and worst.value else None, worst.text if worst else None)
    return RiskFactors(**facts, evidence=evidence)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _joined(entities: list[NoteEntity]) -> str:
    return "; ".join(_unique(e.text for e in entities))


def _conflicts(entities: list[NoteEntity]) -> list[str]:
    """Concepts the note both asserts and negates: worth a human look."""
    asserted = {e.concept for e in entities if e.asserted}
    negated = {e.concept for e in entities if e.negated and not e.family}
    return [
        f"{concept} is both reported and negated in this note; check the text"
        for concept in sorted(asserted & negated)
    ]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def split_for_reading(text: str, size: int = PIECE_CHARS) -> list[tuple[int, str]]:
    """(offset, piece) pairs covering ``text``, each at most ``size`` characters, cut at a blank
    line, a line end, a sentence end or a space when one is in the second half of the window."""
    pieces = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _cut_before(text, start, end)
        pieces.append((start, text[start:end]))
        start = end
    return pieces


def _cut_before(text: str, start: int, end: int) -> int:
    half = start + (end - start) // 2
    for separator in ("\n\n", "\n", ". ", " "):
        cut = text.rfind(separator, half, end)
        if cut != -1:
            return cut + len(separator)
    return end


class NotesReader:
    """Reads clinical notes into :class:`NoteReading` objects. Build it once: building takes seconds.

    >>> reader = NotesReader()
    >>> reading = reader.read("No pneumothorax. Small left pleural effusion.")
    >>> [(e.concept, e.negated, e.laterality) for e in reading.entities]
    [('Pneumothorax', True, None), ('Effusion', False, 'left')]
    """

    def __init__(self, extra_rules_dir: Path | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, not {max_chars}")
        self.max_chars = max_chars
        self.piece_chars = PIECE_CHARS
        self.rules = load_rules(extra_rules_dir)
        try:
            self.nlp = build_pipeline(self.rules)
        except ValueError as exc:  # spaCy's check of token patterns
            if extra_rules_dir is None:
                raise
            raise BadInput(
                f"the rules in {extra_rules_dir} could not be used: {describe_error(exc)}"
            ) from exc

    def read(self, text: str) -> NoteReading:
        return next(self.read_many([text]))

    def read_many(self, texts: Iterable[str], batch_size: int = 256) -> Iterator[NoteReading]:
        """Readings in the order of ``texts``, processed in batches with ``nlp.pipe``.

        Each text is checked as it is reached; an empty or too long one raises :class:`BadInput`.
        """
        pieces = self._pieces(texts)
        current: list[tuple[int, Doc]] = []
        for doc, (text, offset, count) in self.nlp.pipe(pieces, as_tuples=True, batch_size=batch_size):
            current.append((offset, doc))
            if len(current) == count:
                yield self._reading(text, current)
                current = []

    def _pieces(self, texts: Iterable[str]) -> Iterator[tuple[str, tuple[str, int, int]]]:
        for text in texts:
            self._check(text)
            pieces = split_for_reading(text, self.piece_chars)
            for offset, piece in pieces:
                yield piece, (text, offset, len(pieces))

    def _check(self, text: str) -> None:
        if not isinstance(text, str):
            raise BadInput(f"a note must be text (str), not {type(text).__name__}")
        # Length first, so an oversized note is refused without scanning it.
        if len(text) > self.max_chars:
            raise BadInput(
                f"the note has {len(text):,} characters, over the limit of {self.max_chars:,}; "
                "split it or raise max_chars"
            )
        if not text.strip():
            raise BadInput("the note is empty")

    def _reading(self, text: str, parts: list[tuple[int, Doc]]) -> NoteReading:
        mentions, sections = _mentions(parts)
        entities = [m.entity for m in mentions]
        warnings = _conflicts(entities)
        if len(parts) > 1:
            warnings.append(
                f"the note is long ({len(text):,} characters) and was read in {len(parts)} pieces "
                "cut at line or sentence ends"
            )
        return NoteReading(
            text_sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
            entities=entities,
            risk_factors=_risk_factors(mentions),
            sections=sections,
            warnings=warnings,
        )


@lru_cache(maxsize=1)
def default_reader() -> NotesReader:
    """One reader per process, built on first use."""
    return NotesReader()


def read_note(text: str) -> NoteReading:
    """Read one note with the built-in rules (the reader is built once and cached)."""
    return default_reader().read(text)


def decode_note(data: bytes, source: str) -> str:
    """Bytes of a note file as text: UTF-8, with or without a byte-order mark.

    Raises :class:`BadInput` naming ``source`` when the bytes are not UTF-8 text or hold no text.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{source} is not UTF-8 text (invalid byte at position {exc.start}); save the note as UTF-8"
        ) from exc
    if "\x00" in text:
        raise BadInput(f"{source} holds NUL bytes: it looks like a binary file, not a text note")
    if not text.strip():
        raise BadInput(f"{source}: the note is empty")
    return text
