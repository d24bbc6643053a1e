"""The spaCy pipeline that reads a note: medspaCy's tokenizer, sectionizer, target matcher and ConText.

The pipeline is a blank spaCy English model with medspaCy's clinical tokenizer (plus a few
abbreviations such as "y.o."), spaCy's ``sentencizer`` (about 7x faster than PyRuSH; a small
component also starts a sentence at a line break unless the next line continues in lower case),
medspaCy's sectionizer, target matcher and ConText, filled with a :class:`RuleSet`. ConText runs
one sentence at a time (it compares every pair of cues it is given).

Two medspaCy 1.3.1 behaviours are worked around here, each where it happens: overlapping
matches are pruned to the longest ones, and scope-ending cues have a one-token scope in the
rule file (its overlap test misses a scope that contains another).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any

import spacy
from medspacy.common.medspacy_matcher import MedspacyMatcher
from medspacy.context import ConText, ConTextGraph, ConTextModifier, ConTextRule
from medspacy.custom_tokenizer import create_medspacy_tokenizer
from medspacy.section_detection import Sectionizer
from medspacy.target_matcher import TargetMatcher
from spacy.language import Language
from spacy.symbols import ORTH
from spacy.tokens import Doc, Span
from spacy.util import compile_suffix_regex

from sahay.notes.rule_files import RuleSet

SPAN_GROUP = "sahay_notes"
# ConText categories that say where or how big, not whether: they may overlap an assertion cue.
ATTRIBUTE_CUES = frozenset({"LATERALITY", "LOCATION", "MEASUREMENT", "DURATION"})
TEXT_KEY = "sahay_text"

# Tokens that end in a full stop without ending a sentence ("Pt is a 64 y.o. male.").
ABBREVIATIONS = (
    "y.o.", "yo.", "yrs.", "approx.", "dr.", "pt.", "vs.", "e.g.", "i.e.", "mr.", "mrs.", "ms.", "st.",
    "b.i.d.", "t.i.d.", "q.d.", "p.r.n.", "wk.", "wks.", "mo.", "mos.",
)  # fmt: skip


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
    _prune_to_longest_matches(sectionizer, "_Sectionizer__matcher")
    _prune_to_longest_matches(targets, "_TargetMatcher__matcher")
    _prune_to_longest_matches(context, "_ConText__matcher", ATTRIBUTE_CUES)
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


def text_of(doc: Doc) -> str:
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
    text = text_of(doc)
    for line_break in LINE_BREAK.finditer(text):
        following = doc.char_span(line_break.end(), line_break.end() + 1, alignment_mode="expand")
        if following is None:
            continue
        if "\n" in line_break.group(1) or not text[line_break.end()].islower():
            following[0].is_sent_start = True
    _leading_question_marks(doc, text)
    return doc


LEADING_QUESTION = re.compile(r"(?:^|(?<=\s))\?\s?(?=[A-Za-z])")


def _leading_question_marks(doc: Doc, text: str) -> None:
    """A "?" before a word ("?consolidation", "? right apical opacity") is request-form shorthand
    for "query": it starts a sentence that goes on through the words after it, so that the
    uncertainty cue for it (``context.json``) reaches them."""
    if "?" not in text:
        return
    for found in LEADING_QUESTION.finditer(text):
        mark = doc.char_span(found.start(), found.start() + 1, alignment_mode="expand")
        after = doc.char_span(found.end(), found.end() + 1, alignment_mode="expand")
        if mark is None or after is None or mark[0].i == after[0].i:
            continue
        mark[0].is_sent_start = True
        after[0].is_sent_start = False


class _LongestMatches:
    """Stands in for a component's MedspacyMatcher: runs its three matchers, keeps the longest matches.

    It drops matches that run across a sentence start, and works around two medspaCy 1.3.1 issues:
    its pruning keeps two overlapping matches when three overlap ("no history of", "no", "history
    of" kept "history of", which then ended the negation), and its regex matcher rebuilds
    ``doc.text`` for every pattern. Regex ``on_match`` callbacks are not called (JSON rules cannot
    define them). Matches of the ``apart`` categories are pruned among themselves only: where a
    finding is ("of the left") must not hide what is said of it ("clearing of"); a cue wholly
    inside one of them is still part of it.
    """

    def __init__(self, inner: MedspacyMatcher, apart: frozenset[str] = frozenset()) -> None:
        self._inner = inner
        self._apart = apart

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
        # A match across a sentence start is not a phrase: the colon of "FINDINGS: Negative for"
        # belongs to the heading, and must not make ": Negative" a cue that hides "Negative for".
        within = _within_sentences(doc, matches)
        if not self._apart:
            return longest_matches(within)
        rules = inner.rule_map
        apart = [m for m in within if rules[doc.vocab[m[0]].text].category in self._apart]
        rest = [m for m in within if rules[doc.vocab[m[0]].text].category not in self._apart]
        apart = longest_matches(apart)
        # A cue inside an attribute cue is part of it ("history of" in "3-week history of").
        rest = [m for m in rest if not any(a[1] <= m[1] and m[2] <= a[2] for a in apart)]
        return sorted(apart + longest_matches(rest), key=lambda m: (m[1], m[2]))


def _within_sentences(doc: Doc, matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The matches that start no sentence after their first token."""
    if all(end - start == 1 for _, start, end in matches):
        return matches
    starts = doc.to_array("SENT_START")  # one array, not a Token object per position
    return [m for m in matches if not (starts[m[1] + 1 : m[2]] == 1).any()]


def _regex_matches(doc: Doc, patterns: dict[int, list[re.Pattern[str]]]) -> list[tuple[int, int, int]]:
    """Regex matches widened to whole tokens, as medspaCy's RegexMatcher does by default."""
    if not patterns:
        return []
    text = text_of(doc)
    matches = []
    for match_id, compiled in patterns.items():
        for pattern in compiled:
            for found in pattern.finditer(text):
                span = doc.char_span(found.start(), found.end(), alignment_mode="expand")
                if span is not None and len(span):
                    matches.append((match_id, span.start, span.end))
    return matches


def _prune_to_longest_matches(component: Any, private_name: str, apart: frozenset[str] = frozenset()) -> None:
    setattr(component, private_name, _LongestMatches(getattr(component, private_name), apart))


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
