"""Risk factors of a note (age, sex, smoking, pack-years, prior cancer, TB, ...), from its mentions.

Each risk factor keeps the text it came from as evidence. Which mentions count (negated,
uncertain, historical, family) is decided factor by factor in :func:`find_risk_factors`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sahay.analysis import NoteEntity, RiskFactors
from sahay.notes.mentions import Mention
from sahay.notes.values import brca_genes, duration_days, sex_after_age

CANCER_CONCEPTS = ("Breast Cancer", "Lung Cancer", "Cancer")
SMOKING_PRIORITY = ("former", "current", "never")  # quitting is the more specific statement


def _about_patient(entity: NoteEntity) -> bool:
    """Said of the patient as a fact (it may be past): not negated, uncertain, hypothetical or family."""
    return not (entity.negated or entity.uncertain or entity.hypothetical or entity.family)


def _of(mentions: list[Mention], *concepts: str) -> list[NoteEntity]:
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


def _smoking(mentions: list[Mention]) -> tuple[str | None, str | None]:
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


def _sex(mentions: list[Mention]) -> tuple[str | None, str | None]:
    for mention in mentions:
        entity = mention.entity
        if entity.family or entity.concept not in ("Sex", "Age"):
            continue
        sex = entity.value if entity.concept == "Sex" else sex_after_age(entity.text)
        if sex in ("male", "female"):
            return sex, entity.text
    return None, None


def _symptom_duration(mentions: list[Mention]) -> tuple[int | None, str | None]:
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


def _birads_entity(mentions: list[Mention]) -> NoteEntity | None:
    """The assessment in the impression if there is one, else the last one written."""
    stated = [e for e in _of(mentions, "BI-RADS") if e.value and not (e.negated or e.hypothetical)]
    in_impression = [e for e in stated if e.section == "impression"]
    chosen = in_impression or stated
    return chosen[-1] if chosen else None


def find_risk_factors(mentions: list[Mention]) -> RiskFactors:
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
