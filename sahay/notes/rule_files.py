"""Rules as data: the built-in JSON rule files and a site's own, loaded with medspaCy's rule classes.

See :mod:`sahay.notes` for the file format and how a site adds its own. Every file is checked
here, so a bad one is refused naming the file rather than when the matchers are built.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medspacy.context import ConTextRule
from medspacy.section_detection import SectionRule
from medspacy.target_matcher import TargetRule

from sahay.analysis import ENTITY_KINDS
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
RULE_KEYS = ("target_rules", "context_rules", "section_rules", "concepts")


@dataclass
class RuleSet:
    """Rules for the three medspaCy components, plus ConText's map of which categories end which."""

    targets: list[TargetRule] = field(default_factory=list)
    context: list[ConTextRule] = field(default_factory=list)
    sections: list[SectionRule] = field(default_factory=list)
    terminating_types: dict[str, list[str]] = field(default_factory=dict)
    concepts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The concept table: per concept, ``suggests`` (weaker links) and a ``note`` on what it is."""

    def extend(self, other: RuleSet) -> None:
        self.targets += other.targets
        self.context += other.context
        self.sections += other.sections
        for concept, entry in other.concepts.items():
            self.concepts.setdefault(concept, {}).update(entry)
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
    for rule in rules.targets:  # every synonym of a concept carries its links, a site's too
        suggests = rules.concepts.get(rule.category, {}).get("suggests")
        if suggests and "suggests" not in rule.metadata:
            rule.metadata["suggests"] = list(suggests)
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
            concepts=_concepts(data.get("concepts", {})),
        )
        for rule in [*rules.targets, *rules.context, *rules.sections]:
            _check_pattern(rule)
    except (ValueError, TypeError, KeyError, AttributeError, re.error) as exc:
        raise BadInput(f"rule file {path}: {describe_error(exc)}") from exc
    return rules


def _concepts(table: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict):
        raise ValueError("'concepts' must map each concept name to an object")
    for concept, entry in table.items():
        if not isinstance(entry, dict) or set(entry) - {"suggests", "note"}:
            raise ValueError(f"concept {concept!r}: give an object with 'suggests' and/or 'note'")
        suggests = entry.get("suggests", [])
        if not (isinstance(suggests, list) and all(isinstance(s, str) for s in suggests)):
            raise ValueError(f"concept {concept!r}: 'suggests' must be a list of concept names")
    return {concept: dict(entry) for concept, entry in table.items()}


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
