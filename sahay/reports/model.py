"""One report model built from an ``Analysis``; every format (HTML, PDF, FHIR, DICOM) renders it.

Identifiers appear only when the user opts in and the analysis kept them. Recommendations come
from the curated knowledge base and carry its sources; the report adds no advice of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from sahay.about import DISCLAIMER, __version__
from sahay.analysis import Analysis, Finding
from sahay.errors import BadInput
from sahay.statement import Statement

_CITATION = re.compile(r"\[(\d+)\]")
RECOMMENDATION_SECTIONS = ("Usual next steps", "Which specialist")
_STATUS_WORDS = {
    "concordant-positive": "image and note agree: present",
    "concordant-negative": "image and note agree: absent",
    "image-only": "image only; the note does not mention it",
    "notes-only": "in the note only; the image model does not flag it",
    "uncertain": "uncertain",
}


class Reference(BaseModel):
    number: int
    title: str
    publisher: str
    year: int | None = None
    url: str


class Recommendation(BaseModel):
    finding: str
    heading: str = Field(description="the knowledge-base section it comes from")
    text: str = Field(description="the sentence, with citation numbers into the report's references")
    references: list[int]


class Figure(BaseModel):
    label: str
    caption: str
    path: Path = Field(description="the overlay PNG (absolute)")


class ReportFinding(BaseModel):
    label: str
    display: str
    probability: float
    threshold: float | None = Field(description="None where the rule is the most probable class")
    threshold_text: str = Field(description="the threshold with enough digits to be true, or 'top class'")
    reason: str = Field(description="why it is positive or negative, from sahay.statement")
    positive: bool
    location: str | None = Field(default=None, description="where the model looked, in words")
    note_assessment: str | None = None
    cautions: list[str] = Field(
        default_factory=list, description="said beside the finding (site calibration)"
    )


class Technique(BaseModel):
    model_name: str
    model_version: str
    task: str
    intended_use: str
    training_data: str
    license: str
    calibration_temperature: float
    calibrated: bool = Field(description="whether a calibration was fitted (temperature other than 1)")
    weights_sha256: str
    weights_verified: bool | None = None
    site_calibration: str | None = None
    not_intended_for: list[str] = Field(default_factory=list)
    failure_modes: list[str] = Field(
        default_factory=list, description="the card's known failure modes, each ending with its source"
    )
    explanation_method: str | None = None
    demonstration: bool = False


class Report(BaseModel):
    title: str
    analysis_id: str
    analysed_at: datetime
    generated_at: datetime
    software_version: str
    study: list[tuple[str, str]] = Field(description="image and study facts, in display order")
    identifiers: dict[str, str] | None = Field(
        default=None, description="DICOM keyword -> value, if opted in"
    )
    technique: Technique
    findings: list[ReportFinding]
    impression: list[str]
    notes_summary: list[str]
    discordances: list[str]
    recommendations: list[Recommendation]
    references: list[Reference]
    figures: list[Figure]
    quality: list[str] = Field(description="the input checks that failed, in detail")
    notices: list[str] = Field(description="what leads the report (sahay.statement.notices)")
    decision_rule: str
    disclaimer: str

    @property
    def positive_findings(self) -> list[ReportFinding]:
        return [f for f in self.findings if f.positive]


def build_report(
    analysis: Analysis, analysis_dir: Path | None = None, *, include_identifiers: bool = False
) -> Report:
    """The report of one analysis. ``analysis_dir`` holds its overlays (figures are left out without it)."""
    from sahay.reports.codes import finding_code
    from sahay.statement import state

    if include_identifiers and not analysis.image.identifiers:
        raise BadInput(
            "the analysis kept no identifiers: analyse the image with --keep-identifiers to put them "
            "in the report"
        )
    assessments = {f.label: f.assessment for f in analysis.fusion.findings} if analysis.fusion else {}
    statement = state(analysis)
    by_label = {f.label: f for f in analysis.findings}
    findings = []
    for decision in statement.decisions:
        explanation = by_label[decision.label].explanation
        findings.append(
            ReportFinding(
                label=decision.label,
                display=finding_code(decision.label).display,
                probability=decision.probability,
                threshold=decision.threshold,
                threshold_text="top class" if decision.threshold is None else _percent(decision.threshold),
                reason=decision.reason,
                positive=decision.positive,
                location=explanation.summary if explanation and decision.positive else None,
                note_assessment=_STATUS_WORDS.get(assessments.get(decision.label, "")),
                cautions=by_label[decision.label].cautions,
            )
        )
    recommendations, references = _recommendations(analysis.positive_findings)
    explained = next((f.explanation for f in analysis.findings if f.explanation), None)
    return Report(
        title=_title(analysis),
        analysis_id=analysis.id,
        analysed_at=analysis.created_at,
        generated_at=datetime.now(UTC),
        software_version=__version__,
        study=_study_facts(analysis),
        identifiers=dict(analysis.image.identifiers or {}) if include_identifiers else None,
        technique=Technique(
            model_name=analysis.model.name,
            model_version=analysis.model.version,
            task=analysis.model.task,
            intended_use=analysis.model.intended_use,
            training_data=analysis.model.training_data,
            license=analysis.model.license,
            calibration_temperature=analysis.model.calibration_temperature,
            calibrated=analysis.model.calibration_temperature != 1.0,
            weights_sha256=analysis.model.weights_sha256,
            weights_verified=analysis.model.weights_verified,
            site_calibration=analysis.model.site_calibration,
            not_intended_for=analysis.model.not_intended_for,
            failure_modes=[
                f"{', '.join(m.findings) or 'Every finding'}: {m.description} "
                f"({m.source.title}, {m.source.url})"
                for m in analysis.model.failure_modes
            ],
            explanation_method=explained.method_title if explained else None,
            demonstration=analysis.model.demonstration,
        ),
        findings=findings,
        impression=_impression(analysis, statement),
        notes_summary=_notes_summary(analysis),
        discordances=list(analysis.fusion.discordances) if analysis.fusion else [],
        recommendations=recommendations,
        references=references,
        figures=_figures(analysis, analysis_dir),
        quality=list(analysis.quality.checks) if analysis.quality else [],
        notices=[notice.text for notice in statement.notices],
        decision_rule=statement.rule_text,
        disclaimer=DISCLAIMER,
    )


def _title(analysis: Analysis) -> str:
    part = (analysis.image.body_part or analysis.model.body_part or "").lower()
    modality = analysis.image.modality or analysis.image.format.upper()
    return " ".join(w for w in (modality, part, "image analysis report") if w)


def _study_facts(analysis: Analysis) -> list[tuple[str, str]]:
    image = analysis.image
    rows = [
        ("Modality", image.modality or "not recorded"),
        ("Body part", image.body_part or "not recorded"),
        ("View", image.view_position or "not recorded"),
        ("Image size", f"{image.columns} x {image.rows} pixels"),
        ("File format", image.format.upper()),
        ("Image sha256", image.sha256[:16] + "..."),
    ]
    spacing = image.pixel_spacing_mm
    rows.insert(4, ("Pixel spacing", f"{spacing[0]:g} x {spacing[1]:g} mm" if spacing else "not recorded"))
    if image.number_of_frames > 1:
        rows.append(("Frame analysed", f"{(image.frame_index or 0) + 1} of {image.number_of_frames}"))
    return rows


def _impression(analysis: Analysis, statement: Statement) -> list[str]:
    if not statement.positives:
        lines = ["The image model flags none of its findings."]
    else:
        lines = [
            "The image model flags: "
            + "; ".join(f"{_display(d.label)} ({d.reason})" for d in statement.positives)
            + "."
        ]
    if analysis.fusion and analysis.fusion.discordances:
        lines.append(
            f"The clinical note and the image disagree on {len(analysis.fusion.discordances)} point(s)."
        )
    lines.append("These are model estimates for a clinician to review, not a diagnosis.")
    return lines


def _display(label: str) -> str:
    from sahay.reports.codes import finding_code

    return finding_code(label).display


def _percent(value: float) -> str:
    """A probability as a percentage with enough digits to be true: 0.0004 is '0.04%', not '0.0%'."""
    return f"{value * 100:.3g}%"


def _notes_summary(analysis: Analysis) -> list[str]:
    if analysis.notes is None:
        return []
    lines = []
    for entity in analysis.notes.entities:
        status = entity.status_words()
        detail = ", ".join(filter(None, [entity.laterality, entity.location, entity.measurement]))
        lines.append(
            f"{entity.concept} ({entity.kind}): {', '.join(status) if status else 'affirmed'}"
            + (f"; {detail}" if detail else "")
        )
    risk = analysis.notes.risk_factors
    facts = {
        "age": risk.age,
        "sex": risk.sex,
        "smoking": risk.smoking,
        "pack-years": risk.pack_years,
        "prior cancer": ", ".join(risk.prior_cancer) or None,
        "TB history": "yes" if risk.tb_history else None,
        "BI-RADS": risk.birads,
    }
    present = [f"{name} {value}" for name, value in facts.items() if value not in (None, "")]
    if present:
        lines.append("Risk factors in the note: " + "; ".join(present) + ".")
    return lines


def _figures(analysis: Analysis, analysis_dir: Path | None) -> list[Figure]:
    if analysis_dir is None:
        return []
    figures = []
    for finding in sorted(analysis.positive_findings, key=lambda f: -f.probability):
        explanation = finding.explanation
        if explanation is None:
            continue
        path = (analysis_dir / explanation.overlay_png).resolve()
        if not path.is_file():
            raise BadInput(f"the overlay {path} named in the analysis is missing; re-run the analysis")
        figures.append(
            Figure(
                label=finding.label,
                caption=f"{_display(finding.label)}: {explanation.method_title}. {explanation.summary}",
                path=path,
            )
        )
    return figures


def _recommendations(positives: list[Finding]) -> tuple[list[Recommendation], list[Reference]]:
    """The curated 'next steps' and 'which specialist' sentences for each positive finding."""
    if not positives:
        return [], []
    from sahay.knowledge.corpus import Article, builtin_articles, sentences_of

    by_finding: dict[str, list[Article]] = {}
    for article in builtin_articles():
        if not article.path.startswith("findings/"):
            continue
        for label in article.findings:
            by_finding.setdefault(label.lower(), []).append(article)
    recommendations: list[Recommendation] = []
    numbering: dict[str, int] = {}
    references: list[Reference] = []
    for finding in sorted(positives, key=lambda f: -f.probability):
        for article in by_finding.get(finding.label.lower(), [])[:1]:
            for heading in RECOMMENDATION_SECTIONS:
                for sentence in _section_sentences(article.body, heading, sentences_of):
                    cited = [int(n) for n in _CITATION.findall(sentence)]
                    sources = [s for n in cited if (s := article.source(n)) is not None]
                    if not sources:
                        continue  # the report repeats only what a source supports
                    numbers = []
                    for source in sources:
                        key = source.url
                        if key not in numbering:
                            numbering[key] = len(numbering) + 1
                            references.append(
                                Reference(number=numbering[key], **source.model_dump(exclude={"id"}))
                            )
                        numbers.append(numbering[key])
                    text = re.sub(r"\s*\[\d+\]", "", sentence).strip()
                    recommendations.append(
                        Recommendation(
                            finding=_display(finding.label), heading=heading, text=text, references=numbers
                        )
                    )
    return recommendations, references


def _section_sentences(body: str, heading: str, split: Callable[[str], list[str]]) -> list[str]:
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", body, re.MULTILINE | re.DOTALL)
    if not match:
        return []
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n|\n(?=- )", match.group(1).strip()):
        text = " ".join(block.strip().removeprefix("- ").split())
        if text:
            sentences.extend(split(text))
    return sentences
