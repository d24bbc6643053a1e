"""Check a model against a site's unlabelled images: does it behave here as it did where it was made?

For each finding, the share of the site's images predicted positive is set against the
finding's prevalence in the model's training data (the card's ``reference_prevalence``); a
finding off by more than ``RATIO_LIMIT`` either way is flagged. The out-of-domain scores and the
images' acquisition properties (view, photometric interpretation, bit depth, size, manufacturer)
are summarised, with those the model is not made for called out. The flags are recorded in the
bundle, so every later analysis repeats them beside the finding. Nothing here needs labels.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sahay.config import Settings, get_settings
from sahay.datasets.listing import list_images
from sahay.errors import BadInput
from sahay.fileio import atomic_write_text, check_writable_folder
from sahay.imaging.reader import dicom_attributes, read_image
from sahay.models.bundle import Bundle, SiteCheck, SiteCheckFlag, with_manifest
from sahay.models.predictor import Predictor
from sahay.models.registry import find_bundle
from sahay.training.plots import new_figure
from sahay.training.recalibrate import MIN_POSITIVES

RATIO_LIMIT = 2.0
MIN_IMAGES = 20
BATCH = 16
REPORT_HTML = "site-check.html"
REPORT_JSON = "site-check.json"
_DICOM_KEYWORDS = ("Manufacturer", "ViewPosition", "PhotometricInterpretation", "BitsStored")


@dataclass
class FindingRate:
    label: str
    predicted_rate: float
    reference_prevalence: float | None
    ratio: float | None
    flagged: bool


@dataclass
class SiteCheckReport:
    model: str
    images: int
    unreadable: list[tuple[str, str]]
    rates: list[FindingRate]
    ood_scores: list[float]
    ood_threshold: float | None
    properties: dict[str, dict[str, int]]
    property_notes: list[str]
    advice: list[str]
    reference_source: str
    html_path: Path | None = None
    plots: dict[str, str] = field(default_factory=dict)

    @property
    def flagged(self) -> list[FindingRate]:
        return [rate for rate in self.rates if rate.flagged]

    @property
    def ood_fraction(self) -> float | None:
        if self.ood_threshold is None or not self.ood_scores:
            return None
        return float(np.mean(np.array(self.ood_scores) > self.ood_threshold))

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "images": self.images,
            "unreadable": [{"file": f, "reason": r} for f, r in self.unreadable],
            "findings": [rate.__dict__ for rate in self.rates],
            "ood": {"threshold": self.ood_threshold, "fraction_out_of_domain": self.ood_fraction},
            "properties": self.properties,
            "property_notes": self.property_notes,
            "advice": self.advice,
            "reference_prevalence_source": self.reference_source,
        }


def check_site(
    model: str,
    source: Path,
    *,
    out: Path,
    image_column: str | None = None,
    record: bool = True,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SiteCheckReport:
    """Run ``model`` over ``source`` (a folder or a CSV of image paths); write the report to ``out``."""
    settings = settings or get_settings()
    check_writable_folder(out)
    bundle = find_bundle(model, settings)
    manifest = bundle.manifest
    if manifest.task != "multilabel":
        raise BadInput(
            "the site check compares per-finding rates, so it needs a multilabel model; "
            f"{model} is {manifest.task}"
        )
    listed = list_images(source, image_column=image_column)
    predictor = Predictor(bundle)
    positives = np.zeros(len(manifest.labels))
    ood_scores: list[float] = []
    unreadable: list[tuple[str, str]] = []
    properties: dict[str, Counter[str]] = {
        name: Counter() for name in ("view", "photometric", "bits", "size", "manufacturer", "modality")
    }
    digest = hashlib.sha256()
    readable = 0
    for start in range(0, len(listed), BATCH):
        images = []
        for path, _row in listed[start : start + BATCH]:
            try:
                image = read_image(path, settings=settings)
                dicom = image.info.format == "dicom"  # only a DICOM header has more to give
                extra = dicom_attributes(path, _DICOM_KEYWORDS, settings=settings) if dicom else {}
            except BadInput as exc:
                unreadable.append((str(path), str(exc)))
                continue
            images.append(image.pixels)
            digest.update(image.info.sha256.encode())
            info = image.info
            properties["view"][info.view_position or "not recorded"] += 1
            properties["photometric"][info.photometric_interpretation or "not recorded"] += 1
            properties["bits"][str(info.bits_stored) if info.bits_stored else "not recorded"] += 1
            properties["size"][_size_band(max(info.rows, info.columns))] += 1
            properties["manufacturer"][extra.get("Manufacturer", "not recorded")] += 1
            properties["modality"][info.modality or "not recorded"] += 1
        for prediction in predictor.predict(images):
            positives += [finding.positive for finding in prediction.findings]
            if predictor.ood is not None:
                ood_scores.append(float(predictor.ood.scores(prediction.features[None, :])[0]))
        readable += len(images)
        if progress is not None:
            progress(min(start + BATCH, len(listed)), len(listed))
    if readable < MIN_IMAGES:
        raise BadInput(
            f"{source} has {readable} readable images; a site check needs at least {MIN_IMAGES} "
            f"({len(unreadable)} could not be read)."
        )
    reference = manifest.details.reference_prevalence
    rates = []
    for k, label in enumerate(manifest.labels):
        rate = float(positives[k] / readable)
        prevalence = reference[label].prevalence if label in reference else None
        ratio = _ratio(rate, prevalence, readable)
        flagged = ratio is not None and (ratio > RATIO_LIMIT or ratio < 1 / RATIO_LIMIT)
        rates.append(FindingRate(label, rate, prevalence, ratio, flagged))
    counted = {name: dict(counter.most_common()) for name, counter in properties.items()}
    report = SiteCheckReport(
        model=manifest.name,
        images=readable,
        unreadable=unreadable,
        rates=rates,
        ood_scores=ood_scores,
        ood_threshold=manifest.ood.threshold if manifest.ood else None,
        properties=counted,
        property_notes=_property_notes(
            counted, manifest.modalities, manifest.details.expected_views, readable
        ),
        advice=[],
        reference_source=manifest.details.reference_prevalence_source,
    )
    report.advice = _advice(report, bundle)
    out.mkdir(parents=True, exist_ok=True)
    report.plots = _plots(report)
    atomic_write_text(out / REPORT_JSON, json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / REPORT_HTML, _html(report, source))
    report.html_path = out / REPORT_HTML
    if record:
        check = SiteCheck(
            data=source.name,
            data_fingerprint=digest.hexdigest(),
            images=readable,
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            flagged={
                r.label: SiteCheckFlag(
                    predicted_rate=r.predicted_rate,
                    reference_prevalence=r.reference_prevalence or 0.0,
                    ratio=r.ratio or 0.0,
                )
                for r in report.flagged
            },
        )
        with_manifest(bundle, manifest.model_copy(update={"site_check": check}))
    return report


def _ratio(rate: float, prevalence: float | None, images: int) -> float | None:
    if prevalence is None or prevalence <= 0:
        return None
    # Half an image keeps a finding predicted in none of the images off zero (and off infinity).
    return max(rate, 0.5 / images) / prevalence


def _size_band(longest_side: int) -> str:
    for limit in (512, 1024, 2048, 3072):
        if longest_side <= limit:
            return f"up to {limit} px"
    return "over 3072 px"


def _property_notes(
    properties: dict[str, dict[str, int]], modalities: list[str], views: list[str], images: int
) -> list[str]:
    notes = []
    if views:
        outside = {
            v: n for v, n in properties["view"].items() if v != "not recorded" and v.upper() not in views
        }
        for view, count in outside.items():
            notes.append(
                f"{count} of {images} images are {view} views; the model is made for {', '.join(views)} only."
            )
        unrecorded = properties["view"].get("not recorded", 0)
        if unrecorded:
            notes.append(
                f"{unrecorded} of {images} images record no view position, "
                "so lateral views cannot be told apart."
            )
    if modalities:
        for modality, count in properties["modality"].items():
            if modality != "not recorded" and modality.upper() not in modalities:
                notes.append(
                    f"{count} of {images} images are {modality}; "
                    f"the model is made for {', '.join(modalities)}."
                )
    if len(properties["manufacturer"]) > 1:
        notes.append(
            f"The images come from {len(properties['manufacturer'])} manufacturers (or none recorded); "
            "check each apart if rates differ."
        )
    if "MONOCHROME1" in properties["photometric"]:
        notes.append(
            "Some images are MONOCHROME1 (white is low); Sahay inverts them before the model sees them."
        )
    return notes


def _advice(report: SiteCheckReport, bundle: Bundle) -> list[str]:
    advice = []
    for rate in report.flagged:
        rates = [v for v in (rate.predicted_rate, rate.reference_prevalence) if v]
        prevalence = min(rates) if rates else 0.05
        needed = math.ceil(MIN_POSITIVES / max(prevalence, 1e-3) / 0.7)
        direction = "more" if (rate.ratio or 0) > 1 else "fewer"
        advice.append(
            f"{rate.label}: predicted positive {rate.ratio:.1f}x the training rate ({direction} often). "
            f"Do not use the model for {rate.label} here until it is calibrated: "
            f"`sahay models calibrate {bundle.name} DATA --as NEW` "
            f"with about {needed} labelled images ({MIN_POSITIVES} positives in the fitting part)."
        )
    fraction = report.ood_fraction
    if fraction is not None and fraction > 0.05:
        advice.append(
            f"{fraction:.0%} of the images score outside the model's domain: check their views and modality "
            "before relying on the model here, or refit the reference with `sahay models fit-ood`."
        )
    if not report.flagged:
        unreferenced = [r.label for r in report.rates if r.reference_prevalence is None]
        advice.append(
            "No finding's predicted rate differs more than "
            f"{RATIO_LIMIT:g}x from the training data"
            + (f" (no reference for {', '.join(unreferenced)})" if unreferenced else "")
            + ". Rates alone do not show accuracy: calibrate with labelled local images before clinical use."
        )
    return advice


def _plots(report: SiteCheckReport) -> dict[str, str]:
    """PNG plots as data URIs, so the report is one file."""
    plots = {}
    figure = new_figure(7.0, 0.35 * len(report.rates) + 1.5)
    ax = figure.subplots()
    y = np.arange(len(report.rates))
    ax.barh(y - 0.2, [r.predicted_rate for r in report.rates], height=0.4, label="predicted here")
    ax.barh(y + 0.2, [r.reference_prevalence or 0 for r in report.rates], height=0.4, label="training data")
    ax.set_yticks(y, [("! " if r.flagged else "") + r.label for r in report.rates])
    ax.invert_yaxis()
    ax.set_xlabel("share of images")
    ax.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    plots["rates"] = _data_uri(figure)
    if report.ood_scores:
        figure = new_figure(6.0, 3.0)
        ax = figure.subplots()
        ax.hist(report.ood_scores, bins=30)
        if report.ood_threshold is not None:
            ax.axvline(report.ood_threshold, color="red", linestyle="--", label="refusal threshold")
            ax.legend(fontsize="small")
        ax.set(xlabel="out-of-domain score", ylabel="images")
        figure.tight_layout()
        plots["ood"] = _data_uri(figure)
    return plots


def _data_uri(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _html(report: SiteCheckReport, source: Path) -> str:
    e = html.escape
    rows = "".join(
        f"<tr{' class=flag' if r.flagged else ''}><td>{e(r.label)}</td><td>{r.predicted_rate:.1%}</td>"
        f"<td>{'n/a' if r.reference_prevalence is None else f'{r.reference_prevalence:.1%}'}</td>"
        f"<td>{'n/a' if r.ratio is None else f'{r.ratio:.2f}x'}</td>"
        f"<td>{'flagged' if r.flagged else ''}</td></tr>"
        for r in report.rates
    )
    properties = "".join(
        f"<h3>{e(name)}</h3><ul>"
        + "".join(f"<li>{e(value)}: {count}</li>" for value, count in values.items())
        + "</ul>"
        for name, values in report.properties.items()
    )
    images = "".join(f'<img alt="{e(name)}" src="{uri}">' for name, uri in report.plots.items())
    fraction = report.ood_fraction
    ood = (
        "The model has no out-of-domain reference."
        if fraction is None
        else f"{fraction:.1%} of images score above the refusal threshold."
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Site check: {e(report.model)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .6em;text-align:left}}
tr.flag{{background:#fde2e2}}img{{max-width:100%}}</style></head><body>
<h1>Site check of {e(report.model)}</h1>
<p>{report.images} readable images from {e(source.name)} ({len(report.unreadable)} unreadable).
No labels were used: these are rates of predictions, not accuracy.
A finding is flagged when its predicted rate is more than
{RATIO_LIMIT:g}x or less than 1/{RATIO_LIMIT:g} of its prevalence in the training data.</p>
<p>Training-data prevalence: {e(report.reference_source or "not recorded on the model card")}</p>
<table><tr><th>Finding</th><th>Predicted positive here</th><th>Training data</th><th>Ratio</th><th></th></tr>
{rows}</table>
<h2>Out-of-domain scores</h2><p>{e(ood)}</p>
{images}
<h2>Image properties</h2>{"".join(f"<p>{e(n)}</p>" for n in report.property_notes)}{properties}
<h2>What to do</h2><ul>{"".join(f"<li>{e(a)}</li>" for a in report.advice)}</ul>
<p><em>Decision support, not a diagnosis.</em></p></body></html>
"""
