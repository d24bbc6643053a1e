"""What an analysis says, built once: every output (CLI, reports, DICOM, chat) states the same.

An Analysis holds numbers; a reader needs statements. ``state(analysis)`` gives:

- ``positives``: each positive finding with the rule that made it positive, in words and numbers:
  its probability at or above its threshold (multilabel), or the most probable class (multiclass,
  where a threshold plays no part in the decision and is not shown);
- ``negatives``: the other findings, highest first, with ``near_threshold`` for those within
  ``NEAR_THRESHOLD`` of their threshold (worth a second look);
- ``notices``: what must lead any statement of the result: a demonstration model, then the
  analysis's warnings (an image analysed past its input checks, probabilities that are not
  calibrated, a model that cannot detect unsuitable images).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from sahay.analysis import Analysis, Finding

NEAR_THRESHOLD = 0.10
"""A negative within this much probability of its threshold is called near it."""

DecisionRule = Literal["threshold", "most-probable"]
NoticeKind = Literal["demonstration", "forced", "warning"]
FORCED_PREFIX = (
    "Analysed at the user's request although the image does not look like one the model was made for"
)


class Decision(BaseModel):
    """One finding as stated: its numbers and the rule that decided it."""

    label: str
    display: str = Field(description="the label for people: 'Pleural Thickening', not 'Pleural_Thickening'")
    probability: float
    threshold: float | None = Field(description="None where the rule is most-probable (multiclass)")
    positive: bool
    rule: DecisionRule
    near_threshold: bool = False

    @property
    def reason(self) -> str:
        """Why it is positive or negative, in words: 'probability 0.72, at or above its threshold 0.60'."""
        if self.rule == "most-probable":
            return f"probability {self.probability:.2f}, " + (
                "the most probable class" if self.positive else "not the most probable class"
            )
        assert self.threshold is not None
        side = "at or above" if self.positive else "below"
        return f"probability {self.probability:.2f}, {side} its threshold {self.threshold:.2f}"


class Notice(BaseModel):
    kind: NoticeKind
    text: str


class Statement(BaseModel):
    rule: DecisionRule
    rule_text: str = Field(description="how a finding is decided, in one sentence")
    positives: list[Decision]
    negatives: list[Decision]
    notices: list[Notice]

    @property
    def decisions(self) -> list[Decision]:
        """Every finding: the positives first, each group highest probability first."""
        return [*self.positives, *self.negatives]


def state(analysis: Analysis) -> Statement:
    rule: DecisionRule = "most-probable" if analysis.model.task == "multiclass" else "threshold"
    decisions = sorted((_decision(f, rule) for f in analysis.findings), key=lambda d: -d.probability)
    return Statement(
        rule=rule,
        rule_text=(
            "Each image is given the single most probable class."
            if rule == "most-probable"
            else "A finding is positive when its probability reaches its decision threshold."
        ),
        positives=[d for d in decisions if d.positive],
        negatives=[d for d in decisions if not d.positive],
        notices=notices(analysis),
    )


def display_label(label: str) -> str:
    """A model's label for people to read: underscores become spaces."""
    return label.replace("_", " ")


def notices(analysis: Analysis) -> list[Notice]:
    """The demonstration notice, then the analysis's warnings, as the analysis recorded them
    (an image analysed past its input checks, a model without calibration or an out-of-domain
    reference, a multi-frame image): recorded once, by the analysis service, and only read here."""
    found = []
    if analysis.demonstration_notice:
        found.append(Notice(kind="demonstration", text=analysis.demonstration_notice))
    forced = analysis.quality is not None and analysis.quality.forced
    for warning in analysis.warnings:
        kind: NoticeKind = "forced" if forced and warning.startswith(FORCED_PREFIX) else "warning"
        found.append(Notice(kind=kind, text=warning))
    return found


def _decision(finding: Finding, rule: DecisionRule) -> Decision:
    threshold = finding.threshold if rule == "threshold" else None
    near = (
        threshold is not None and not finding.positive and finding.probability >= threshold - NEAR_THRESHOLD
    )
    return Decision(
        label=finding.label,
        display=display_label(finding.label),
        probability=finding.probability,
        threshold=threshold,
        positive=finding.positive,
        rule=rule,
        near_threshold=near,
    )
