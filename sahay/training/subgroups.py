"""Metrics per subgroup (sex, age band, view, manufacturer, site) and the subgroups that do worse.

A subgroup's value comes from the CSV row (a column named as given, or a usual name for it) or,
for DICOM images, from the header. Ages become bands. A subgroup is flagged for a finding when the
upper end of its 95 % interval (bootstrap for AUROC, Wilson for sensitivity) lies below the
overall figure: it does worse by more than chance explains.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from sahay.config import Settings
from sahay.datasets import Sample
from sahay.errors import BadInput
from sahay.imaging.reader import dicom_attributes
from sahay.training.metrics import compute_metrics

MIN_SUBGROUP_IMAGES = 10
NOT_RECORDED = "not recorded"
_Z = 1.959963984540054  # the normal quantile of a two-sided 95 % interval

SUBGROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sex": ("PatientSex", ("sex", "Sex", "gender", "Patient Gender", "PatientSex")),
    "age": ("PatientAge", ("age", "Age", "Patient Age", "PatientAge")),
    "view": ("ViewPosition", ("view", "View Position", "AP/PA", "ViewPosition", "Frontal/Lateral")),
    "manufacturer": ("Manufacturer", ("manufacturer", "Manufacturer")),
    "site": ("InstitutionName", ("site", "Site", "institution", "InstitutionName")),
}
"""Each named subgroup: its DICOM keyword and the CSV columns that usually hold it."""

AGE_BANDS = (
    (0, 18, "under 18"),
    (18, 40, "18-39"),
    (40, 60, "40-59"),
    (60, 80, "60-79"),
    (80, 999, "80 and over"),
)


def subgroup_values(samples: Sequence[Sample], by: str, settings: Settings) -> list[str]:
    """Each sample's subgroup for ``by``: a subgroup name above, a CSV column, or a DICOM keyword."""
    keyword, columns = SUBGROUPS.get(by.lower(), (by, (by,)))
    values = []
    for sample in samples:
        row = sample.row or {}
        value = next((row[c].strip() for c in columns if row.get(c, "").strip()), "")
        if not value and not any(c in row for c in columns):
            try:
                value = dicom_attributes(sample.path, (keyword,), settings=settings).get(keyword, "")
            except BadInput:
                value = ""
        values.append(_band(value) if keyword == "PatientAge" else value or NOT_RECORDED)
    if all(v == NOT_RECORDED for v in values):
        raise BadInput(
            f"no image has a value for --by {by}: it is neither a column of the CSV nor a DICOM attribute "
            f"they carry. Named subgroups: {', '.join(SUBGROUPS)}; or give a CSV column."
        )
    return values


def _band(value: str) -> str:
    """An age ("45", "045Y", "6M") as a band; months, weeks and days are under a year."""
    match = re.fullmatch(r"0*(\d+(?:\.\d+)?)\s*([YMWD]?)", value.strip().upper())
    if not match:
        return NOT_RECORDED
    years = float(match.group(1)) if match.group(2) in ("", "Y") else 0.0
    return next(name for low, high, name in AGE_BANDS if low <= years < high)


def subgroup_metrics(
    truth: np.ndarray,
    probs: np.ndarray,
    labels: list[str],
    thresholds: np.ndarray,
    groups: list[str],
    overall: dict[str, Any],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Per subgroup: its size, per-finding AUROC and sensitivity with intervals, and flags."""
    result: dict[str, Any] = {}
    names = np.array(groups)
    for group in sorted(set(groups)):
        rows = np.flatnonzero(names == group)
        entry: dict[str, Any] = {"images": len(rows), "per_label": {}, "flags": []}
        result[group] = entry
        if len(rows) < MIN_SUBGROUP_IMAGES:
            entry["note"] = f"fewer than {MIN_SUBGROUP_IMAGES} images: not scored"
            continue
        metrics = compute_metrics(truth[rows], probs[rows], labels, "multilabel", thresholds, seed=seed)
        for label in labels:
            scores = metrics["per_label"][label]
            positives = scores["support_positive"]
            sensitivity = scores["sensitivity"]
            low, high = _wilson(sensitivity, positives)
            entry["per_label"][label] = {
                "auroc": scores["auroc"],
                "auroc_ci95": scores["auroc_ci95"],
                "sensitivity": sensitivity,
                "sensitivity_ci95": None if sensitivity is None else [low, high],
                "positives": positives,
            }
            reference = overall["per_label"][label]
            ci = scores["auroc_ci95"]
            if ci and reference["auroc"] is not None and ci[1] < reference["auroc"]:
                entry["flags"].append(
                    f"{label}: AUROC {scores['auroc']:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f}) is below "
                    f"the overall {reference['auroc']:.3f}"
                )
            if (
                sensitivity is not None
                and reference["sensitivity"] is not None
                and high < reference["sensitivity"]
            ):
                entry["flags"].append(
                    f"{label}: sensitivity {sensitivity:.3f} (95% CI {low:.3f}-{high:.3f}) is below "
                    f"the overall {reference['sensitivity']:.3f}"
                )
    return result


def _wilson(proportion: float | None, n: int) -> tuple[float, float]:
    """Wilson score interval of a proportion over n trials."""
    if proportion is None or n == 0:
        return (math.nan, math.nan)
    denominator = 1 + _Z**2 / n
    centre = (proportion + _Z**2 / (2 * n)) / denominator
    half = _Z * math.sqrt(proportion * (1 - proportion) / n + _Z**2 / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))
