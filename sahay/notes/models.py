"""What reading a clinical note produces: entities with their ConText flags, and risk factors.

These are plain pydantic models, so a reading serialises to JSON as part of ``analysis.json``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EntityKind = Literal["finding", "breast", "pathology", "symptom", "risk_factor", "other"]
ENTITY_KINDS: tuple[str, ...] = ("finding", "breast", "pathology", "symptom", "risk_factor", "other")


class NoteEntity(BaseModel):
    """One mention of a concept, with what the sentence around it says about it.

    ``start`` and ``end`` are character offsets into the note as given: ``text == note[start:end]``.
    """

    text: str
    concept: str = Field(description="Normalised name, e.g. 'Effusion' (the chest model's finding names).")
    kind: EntityKind
    start: int
    end: int
    negated: bool = False
    uncertain: bool = False
    historical: bool = False
    family: bool = False
    hypothetical: bool = False
    section: str | None = Field(default=None, description="Section category, e.g. 'impression'.")
    laterality: str | None = Field(default=None, description="'left', 'right' or 'bilateral'.")
    location: str | None = Field(default=None, description="e.g. 'upper lobe', 'base', 'retrocardiac'.")
    measurement: str | None = Field(default=None, description="As written, e.g. '2.3 cm' or '1.2 x 0.8 cm'.")
    measurement_mm: float | None = Field(default=None, description="Largest dimension in millimetres.")
    value: str | None = Field(
        default=None,
        description="Normalised value where the concept has one: BI-RADS '4A', grade '2', age '64', "
        "smoking 'former', cancer 'breast cancer', immunosuppression 'steroids'.",
    )
    sentence: str = Field(description="The sentence the mention is in, as written.")

    @property
    def asserted(self) -> bool:
        """Present now, in the patient: not negated, uncertain, historical, family or hypothetical."""
        return not (self.negated or self.uncertain or self.historical or self.family or self.hypothetical)


class RiskFactors(BaseModel):
    """Patient-level facts read from the note. ``evidence`` maps each filled field to its source text."""

    age: int | None = None
    sex: Literal["male", "female"] | None = None
    smoking: Literal["current", "former", "never"] | None = None
    pack_years: float | None = None
    prior_cancer: list[str] = Field(default_factory=list)
    tb_history: bool = False
    immunosuppression: list[str] = Field(default_factory=list)
    family_history_breast_cancer: bool = False
    brca: list[str] = Field(default_factory=list)
    symptom_duration_days: int | None = None
    birads: str | None = None
    grade: int | None = None
    evidence: dict[str, str] = Field(default_factory=dict)


class NoteReading(BaseModel):
    """Everything read from one note. ``text_sha256`` identifies the note without storing it."""

    text_sha256: str
    entities: list[NoteEntity] = Field(default_factory=list)
    risk_factors: RiskFactors = Field(default_factory=RiskFactors)
    sections: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def concepts(self, asserted_only: bool = True) -> set[str]:
        """Concepts mentioned; by default only those asserted (present now, in the patient)."""
        return {e.concept for e in self.entities if e.asserted or not asserted_only}
