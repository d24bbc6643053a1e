"""Recalibrate an installed model to a site: per-finding maps and thresholds from local labelled images.

The site's images are split by patient into a fitting part and a held-back part (``holdout``).
On the fitting part each finding with enough positives gets a calibration map
(``sahay.models.calibration``) and a threshold for the target sensitivity (or Youden's J). The
held-back part measures ECE, Brier score and AUROC before and after, with bootstrap 95 %
intervals, and the sensitivity and specificity at the old and new thresholds. The result is a new
bundle beside the original, which is never changed.

Example:
    >>> report = calibrate("chest-model", Path("site.csv"), as_name="chest-site")  # doctest: +SKIP
    >>> report.summary["ece_after"] < report.summary["ece_before"]                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sahay.config import Settings, get_settings
from sahay.datasets import Sample, load_dataset, scan_images
from sahay.datasets.splits import SPLITS
from sahay.errors import BadInput
from sahay.fileio import atomic_write_text, check_writable_folder
from sahay.models.bundle import Bundle, SiteCalibration, load_bundle
from sahay.models.calibration import LABEL_METHODS, LabelCalibration, LabelMethod, fit_label
from sahay.models.providers import get_provider
from sahay.models.registry import check_bundle_destination, find_bundle, model_folder, replace_folder
from sahay.training.evaluate import stage_progress
from sahay.training.inference import infer
from sahay.training.metrics import (
    CI_LEVEL,
    choose_thresholds,
    compute_metrics,
    expected_calibration_error,
)
from sahay.training.plots import plot_calibration

MIN_POSITIVES = 20
"""A finding needs this many positives in the fitting part to be recalibrated."""
MIN_IMAGES = 40
REPORT_FILE = "calibration.json"


@dataclass(frozen=True)
class CalibrationReport:
    bundle: Bundle
    summary: dict[str, float | None]
    per_label: dict[str, dict[str, Any]]
    kept: dict[str, str]
    report_dir: Path
    plots: list[Path] = field(default_factory=list)


def calibrate(
    model: str,
    data: Path,
    *,
    as_name: str,
    method: LabelMethod = "isotonic",
    target_sensitivity: float | None = None,
    holdout: float = 0.3,
    seed: int = 0,
    min_positives: int = MIN_POSITIVES,
    report_dir: Path | None = None,
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **dataset_options: Any,
) -> CalibrationReport:
    """Fit per-finding calibration of ``model`` on ``data`` and install it as ``as_name``.

    ``target_sensitivity`` None chooses thresholds by Youden's J. ``report_dir`` (default: the new
    bundle's ``site-calibration`` folder) receives calibration.json and the reliability diagrams.
    """
    settings = settings or get_settings()
    source = find_bundle(model, settings)
    manifest = source.manifest
    _check_options(manifest.task, method, target_sensitivity, holdout, min_positives)
    destination = model_folder(as_name, settings)
    if destination.exists() or as_name == manifest.name:
        raise BadInput(
            f"a model named {as_name!r} is already installed; choose a new name with --as "
            "(the original model is never changed)"
        )
    dataset = load_dataset(data, task=manifest.task, **dataset_options)
    columns = _label_columns(dataset.labels, manifest.labels, data)
    scan = scan_images(dataset, settings=settings, progress=stage_progress(progress, "reading images"))
    samples = [s for split in SPLITS for s in scan.readable.get(split, [])]
    if len(samples) < MIN_IMAGES:
        raise BadInput(f"{data} has {len(samples)} readable labelled images; calibration needs {MIN_IMAGES}")
    fit_rows, held_rows = _split_by_patient(samples, holdout, seed)

    network = source.load_model()
    layer = get_provider(manifest.architecture).cam_layer
    logits, _, targets = infer(
        network,
        layer,
        samples,
        manifest.input,
        settings=settings,
        progress=stage_progress(progress, "predicting"),
    )
    truth = np.full((len(samples), len(manifest.labels)), np.nan)
    truth[:, columns] = targets  # findings the site did not label stay unknown
    raw = torch.from_numpy(logits)
    before = manifest.probabilities(raw).numpy()

    per_label_maps = dict(manifest.calibration.per_label)
    thresholds = dict(manifest.thresholds)
    kept: dict[str, str] = {}
    calibrated: list[str] = []
    for k, label in enumerate(manifest.labels):
        if k not in columns:
            kept[label] = "not labelled in the site data"
            continue
        known = fit_rows[~np.isnan(truth[fit_rows, k])]
        positives = int(truth[known, k].sum())
        negatives = len(known) - positives
        if positives < min_positives or negatives < min_positives:
            kept[label] = (
                f"{positives} positive and {negatives} negative images in the fitting part; "
                f"at least {min_positives} of each are needed"
            )
            continue
        try:
            per_label_maps[label] = fit_label(logits[known, k], truth[known, k], method)
        except ValueError as exc:
            kept[label] = str(exc)
            continue
        calibrated.append(label)
    new_manifest = manifest.model_copy(
        update={"calibration": manifest.calibration.model_copy(update={"per_label": per_label_maps})}
    )
    after = new_manifest.probabilities(raw).numpy()
    if calibrated:
        index = np.array([manifest.labels.index(label) for label in calibrated])
        chosen = choose_thresholds(
            truth[np.ix_(fit_rows, index)],
            after[np.ix_(fit_rows, index)],
            "multilabel",
            method="youden" if target_sensitivity is None else "sensitivity",
            target_sensitivity=target_sensitivity,
        )
        thresholds.update({label: float(t) for label, t in zip(calibrated, chosen, strict=True)})

    old_thresholds = np.array([manifest.thresholds[label] for label in manifest.labels])
    new_thresholds = np.array([thresholds[label] for label in manifest.labels])
    per_label, summary = _held_out_metrics(
        truth[held_rows],
        before[held_rows],
        after[held_rows],
        manifest.labels,
        old_thresholds,
        new_thresholds,
        seed,
    )
    site = SiteCalibration(
        source_model=manifest.name,
        source_version=manifest.version,
        source_weights_sha256=manifest.weights.sha256,
        data=data.name,
        data_fingerprint=scan.fingerprint,
        method=method,
        thresholds="youden" if target_sensitivity is None else f"sensitivity {target_sensitivity:.2f}",
        images_fitted=len(fit_rows),
        images_held_out=len(held_rows),
        seed=seed,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        calibrated=calibrated,
        kept=kept,
        metrics=summary,
    )
    new_manifest = new_manifest.model_copy(
        update={
            "name": as_name,
            "version": f"{manifest.version}+site.{scan.fingerprint[:8]}",
            "thresholds": thresholds,
            "calibration": new_manifest.calibration.model_copy(update={"site": site}),
        }
    )
    bundle = _install_copy(source, new_manifest, destination, settings)
    out = report_dir or bundle.path / "site-calibration"
    check_writable_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"site": site.model_dump(), "summary": summary, "per_label": per_label, "ci": CI_LEVEL}
    atomic_write_text(out / REPORT_FILE, json.dumps(report, indent=2, allow_nan=False) + "\n")
    plots = _reliability_plots(
        truth[held_rows], before[held_rows], after[held_rows], manifest.labels, calibrated, out
    )
    return CalibrationReport(bundle, summary, per_label, kept, out, plots)


def _check_options(
    task: str, method: str, target_sensitivity: float | None, holdout: float, min_positives: int
) -> None:
    if task != "multilabel":
        raise BadInput(
            "site calibration fits one map per finding, so it needs a multilabel model; "
            f"this one is {task}. Refit a multiclass model's temperature with `sahay train`."
        )
    if method not in LABEL_METHODS:
        raise BadInput(f"unknown calibration method {method!r}; use one of {', '.join(LABEL_METHODS)}")
    if target_sensitivity is not None and not 0 < target_sensitivity < 1:
        raise BadInput(f"--target-sensitivity must lie between 0 and 1, got {target_sensitivity}")
    if not 0.1 <= holdout <= 0.9:
        raise BadInput(f"--holdout must lie between 0.1 and 0.9, got {holdout}")
    if min_positives < 1:
        raise BadInput(f"--min-positives must be at least 1, got {min_positives}")


def _label_columns(data_labels: list[str], model_labels: list[str], data: Path) -> list[int]:
    """The model's column of each of the data's labels; every data label must be one of the model's."""
    unknown = [label for label in data_labels if label not in model_labels]
    if unknown:
        raise BadInput(
            f"{data} has finding columns the model does not know: {', '.join(unknown)}. "
            f"The model's findings are: {', '.join(model_labels)}. Rename the columns or pass --labels."
        )
    return [model_labels.index(label) for label in data_labels]


def _split_by_patient(samples: list[Sample], holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the fitting and held-back parts; one patient's images stay on one side."""
    groups: dict[str, list[int]] = {}
    for row, sample in enumerate(samples):
        groups.setdefault(sample.patient_id or str(sample.path), []).append(row)
    keys = sorted(groups)
    np.random.default_rng(seed).shuffle(keys)
    held: list[int] = []
    for key in keys:
        if len(held) >= holdout * len(samples):
            break
        held += groups[key]
    held_set = set(held)
    fit = [row for row in range(len(samples)) if row not in held_set]
    return np.array(fit, dtype=int), np.array(sorted(held), dtype=int)


def _held_out_metrics(
    truth: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    labels: list[str],
    old_thresholds: np.ndarray,
    new_thresholds: np.ndarray,
    seed: int,
) -> tuple[dict[str, dict[str, Any]], dict[str, float | None]]:
    labelled = [k for k in range(len(labels)) if (~np.isnan(truth[:, k])).any()]
    if not labelled:
        return {}, {}
    cols = np.array(labelled)
    names = [labels[k] for k in labelled]
    old = compute_metrics(
        truth[:, cols], before[:, cols], names, "multilabel", old_thresholds[cols], seed=seed
    )
    new = compute_metrics(
        truth[:, cols], after[:, cols], names, "multilabel", new_thresholds[cols], seed=seed
    )
    rng = np.random.default_rng(seed)
    per_label: dict[str, dict[str, Any]] = {}
    for k, name in zip(cols, names, strict=True):
        known = ~np.isnan(truth[:, k])
        y = truth[known, k]
        entry: dict[str, Any] = {"images": int(known.sum()), "positives": int(y.sum())}
        for tag, probs, metrics in (("before", before, old), ("after", after, new)):
            p = probs[known, k]
            scores = metrics["per_label"][name]
            entry[tag] = {
                "ece": _ece(y, p),
                "ece_ci95": _bootstrap(y, p, _ece, rng),
                "brier": _brier(y, p),
                "brier_ci95": _bootstrap(y, p, _brier, rng),
                "auroc": scores["auroc"],
                "auroc_ci95": scores["auroc_ci95"],
                "threshold": scores["threshold"],
                "sensitivity": scores["sensitivity"],
                "specificity": scores["specificity"],
            }
        per_label[name] = entry
    pooled_truth = truth[:, cols]
    summary = {
        "ece_before": _number(expected_calibration_error(pooled_truth, before[:, cols], "multilabel")),
        "ece_after": _number(expected_calibration_error(pooled_truth, after[:, cols], "multilabel")),
        "brier_before": _pooled_brier(pooled_truth, before[:, cols]),
        "brier_after": _pooled_brier(pooled_truth, after[:, cols]),
        "auroc_before": old["macro"]["auroc"],
        "auroc_after": new["macro"]["auroc"],
    }
    return per_label, summary


def _ece(y: np.ndarray, p: np.ndarray) -> float | None:
    if len(y) == 0:
        return None
    return _number(expected_calibration_error(y[:, None], p[:, None], "multilabel"))


def _brier(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(np.mean((p - y) ** 2)) if len(y) else None


def _pooled_brier(truth: np.ndarray, probs: np.ndarray) -> float | None:
    known = ~np.isnan(truth)
    return _brier(truth[known], probs[known])


def _bootstrap(
    y: np.ndarray,
    p: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float | None],
    rng: np.random.Generator,
    n: int = 500,
) -> list[float] | None:
    if len(y) < 2:
        return None
    values = []
    for _ in range(n):
        rows = rng.integers(0, len(y), len(y))
        value = statistic(y[rows], p[rows])
        if value is not None:
            values.append(value)
    tail = 100 * (1 - CI_LEVEL) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def _number(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _reliability_plots(
    truth: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    labels: list[str],
    calibrated: list[str],
    out: Path,
) -> list[Path]:
    paths = []
    for label in calibrated:
        k = labels.index(label)
        known = ~np.isnan(truth[:, k])
        if not known.any():
            continue
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
        paths.append(
            plot_calibration(
                truth[known][:, [k]],
                after[known][:, [k]],
                "multilabel",
                out / f"reliability-{stem}.png",
                probs_uncalibrated=before[known][:, [k]],
                names=("before", "after site calibration"),
                title=f"{label}: held-back images",
            )
        )
    return paths


def _install_copy(source: Bundle, manifest: Any, destination: Path, settings: Settings) -> Bundle:
    """Copy the source bundle's files under the new name with the new manifest; weights unchanged."""
    check_bundle_destination(destination)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=settings.models_dir, prefix=".calibrate-"))
    try:
        for name in source.files()[1:]:
            shutil.copy2(source.path / name, staging / name)
        atomic_write_text(staging / "bundle.json", manifest.model_dump_json(indent=2) + "\n")
        load_bundle(staging).verify()
        replace_folder(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_bundle(destination)


__all__ = ["CalibrationReport", "LabelCalibration", "calibrate"]
