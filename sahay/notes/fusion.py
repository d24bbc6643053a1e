"""Combine the image findings with what the clinical note says, the way a radiologist reads
the request form, by an explicit, ordered rule set (``rules/fusion.json``).

For each image finding the result keeps the image probability unchanged and lists the note's
evidence for it (affirmed) or against it (negated), with spans. The pair is classed:

1. the note affirms it and the image is positive: ``concordant-positive``;
2. the note negates it and the image is negative: ``concordant-negative``;
3. the image is positive and the note negates it, or does not mention it: ``image-only``;
4. the note affirms it and the image is negative: ``notes-only``;
5. the note is uncertain about it, only suggests it (a sign that points to it, such as
   hyperinflated lungs for emphysema, or the finding named as what a sign may mean), or mentions
   it as past or resolved: ``uncertain``. An uncertain mention moves the assessment less than a
   stated one: it never makes a pair concordant or discordant, and a past finding neither confirms
   nor contradicts today's image.

``image-only`` with a negating note, and ``notes-only``, are listed as discordances: the
cases a clinician most needs to see. Flags fire when their conditions hold; each carries its
source. No number is mixed into the image probability.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from sahay.analysis import (
    Assessment,
    EvidenceStatus,
    Finding,
    Flag,
    FusedFinding,
    Fusion,
    NoteEntity,
    NoteEvidence,
    NoteReading,
    Source,
)


def status_of(entity: NoteEntity) -> EvidenceStatus:
    """One status per entity, the most decisive first."""
    for status in ("family", "hypothetical", "negated"):
        if getattr(entity, status):
            return status
    if entity.temporality == "resolved":
        return "resolved"
    if entity.inferred_from is not None:
        return "suggested"
    if entity.historical:
        return "historical"
    return "uncertain" if entity.uncertain else "affirmed"


def fuse(findings: list[Finding], reading: NoteReading) -> Fusion:
    rules = fusion_rules()
    fused = [_fuse_one(finding, reading) for finding in findings]
    discordances = [f.explanation for f in fused if _discordant(f)]
    flags = [flag for rule in rules["flags"] if (flag := _flag(rule, fused, reading)) is not None]
    return Fusion(method=rules["method"], findings=fused, discordances=discordances, flags=flags)


@lru_cache(maxsize=1)
def fusion_rules() -> dict[str, Any]:
    text = resources.files("sahay.notes").joinpath("rules/fusion.json").read_text(encoding="utf-8")
    rules: dict[str, Any] = json.loads(text)
    return rules


def _fuse_one(finding: Finding, reading: NoteReading) -> FusedFinding:
    label = finding.label.lower()
    evidence = []
    for e in reading.entities:
        if e.concept.lower() == label:
            status = status_of(e)
        elif label in {s.lower() for s in e.suggests} and status_of(e) == "affirmed":
            status = "suggested"  # a sign that points to it: "hyperinflated lungs" for emphysema
        else:
            continue
        evidence.append(
            NoteEvidence(text=e.text, start=e.start, end=e.end, status=status, sentence=e.sentence)
        )
    statuses = {item.status for item in evidence}
    assessment, why = _assess(finding, statuses)
    return FusedFinding(
        label=finding.label,
        image_probability=finding.probability,
        image_positive=finding.positive,
        evidence=evidence,
        assessment=assessment,
        explanation=f"{finding.label}: {why}",
    )


def _assess(finding: Finding, statuses: set[EvidenceStatus]) -> tuple[Assessment, str]:
    image = f"the image is {'positive' if finding.positive else 'negative'} (p={finding.probability:.2f})"
    if "affirmed" in statuses:
        if finding.positive:
            return "concordant-positive", f"{image} and the note reports it"
        return "notes-only", f"the note reports it but {image}"
    if "negated" in statuses:
        if finding.positive:
            return "image-only", f"{image} but the note says it is absent"
        return "concordant-negative", f"{image} and the note says it is absent"
    weak = statuses & {"uncertain", "suggested", "historical", "resolved"}
    if weak:
        return "uncertain", f"{image}; the note mentions it only as {' or '.join(sorted(weak))}"
    if finding.positive:
        return "image-only", f"{image}; the note does not mention it"
    return "concordant-negative", f"{image}; the note does not mention it"


def _discordant(finding: FusedFinding) -> bool:
    if finding.assessment == "notes-only":
        return True
    return finding.assessment == "image-only" and any(e.status == "negated" for e in finding.evidence)


def _flag(rule: dict[str, Any], fused: list[FusedFinding], reading: NoteReading) -> Flag | None:
    when, risk = rule["when"], reading.risk_factors
    positive = {f.label for f in fused if f.image_positive}
    symptoms = sorted(
        {e.concept for e in reading.entities if e.kind == "symptom" and status_of(e) == "affirmed"},
        key=str.lower,
    )
    checks = {
        "image_positive_any": lambda wanted: bool(positive & set(wanted)),
        "smoking_in": lambda wanted: risk.smoking in wanted,
        "pack_years_min": lambda minimum: risk.pack_years is not None and risk.pack_years >= minimum,
        "age_between": lambda bounds: risk.age is not None and bounds[0] <= risk.age <= bounds[1],
        "symptoms_affirmed_any": lambda wanted: bool(
            {s.lower() for s in symptoms} & {w.lower() for w in wanted}
        ),
        "tb_history": lambda wanted: risk.tb_history == wanted,
    }
    if not all(checks[name](value) for name, value in when.items()):
        return None
    text = rule["text"].format(
        pack_years_text=f" ({risk.pack_years:g} pack-years)" if risk.pack_years else "",
        symptoms=", ".join(s.lower() for s in symptoms),
    )
    return Flag(id=rule["id"], text=text, sources=[Source(**s) for s in rule["sources"]])
