"""Evaluate a bundle on a labelled dataset: metrics.json, plots, and an MLflow run.

Example:
    >>> metrics = evaluate("my-bundle", Path("DATA"), out=Path("eval"))   # doctest: +SKIP
    >>> metrics["macro"]["auroc"]                                        # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sahay.config import Settings, get_settings
from sahay.datasets import LabelledDataset, load_dataset, scan_images
from sahay.errors import BadInput
from sahay.fileio import atomic_write_text, check_writable_folder
from sahay.models.bundle import Bundle
from sahay.models.providers import get_provider
from sahay.models.registry import find_bundle
from sahay.training.inference import infer, truth_for_metrics
from sahay.training.metrics import compute_metrics
from sahay.training.options import METRICS_FILE
from sahay.training.plots import write_all_plots
from sahay.training.tracking import tracked_run


def evaluate(
    bundle_ref: str,
    data: Path,
    *,
    out: Path,
    split: str = "test",
    by: str | None = None,
    settings: Settings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    **dataset_options: Any,
) -> dict[str, Any]:
    """Score ``bundle_ref`` on one split of ``data``; write metrics.json and plots to ``out``.

    ``by`` also scores each subgroup (``sahay.training.subgroups``) and flags those that do worse.
    ``dataset_options`` are passed to ``load_dataset`` (CSV columns, uncertain-label policy).
    """
    settings = settings or get_settings()
    check_writable_folder(out)
    bundle = find_bundle(bundle_ref, settings)
    manifest = bundle.manifest
    dataset = load_dataset(data, task=manifest.task, **dataset_options)
    _check_labels(dataset, manifest.labels)
    scan = scan_images(dataset, settings=settings, progress=stage_progress(progress, "reading images"))
    samples = scan.readable.get(split, [])
    if not samples:
        raise BadInput(f"the {split} split of {data} has no readable images; choose another with --split")

    model = bundle.load_model()
    layer = get_provider(manifest.architecture).cam_layer
    logits, features, targets = infer(
        model,
        layer,
        samples,
        manifest.input,
        settings=settings,
        progress=stage_progress(progress, "predicting"),
    )
    truth = truth_for_metrics(targets, manifest.task)
    raw = torch.from_numpy(logits)
    calibrated = manifest.probabilities(raw).numpy()
    uncalibrated = manifest.probabilities(raw, calibrated=False).numpy()
    thresholds = np.array([manifest.thresholds[label] for label in manifest.labels])
    metrics = compute_metrics(
        truth, calibrated, manifest.labels, manifest.task, thresholds, probs_uncalibrated=uncalibrated
    )
    if by is not None:
        if manifest.task != "multilabel":
            raise BadInput("--by scores findings per subgroup, so it needs a multilabel model")
        from sahay.training.subgroups import subgroup_metrics, subgroup_values

        groups = subgroup_values(samples, by, settings)
        metrics["subgroups"] = {
            "by": by,
            "groups": subgroup_metrics(truth, calibrated, manifest.labels, thresholds, groups, metrics),
        }
        flagged = [
            f"{group}: {flag}" for group, e in metrics["subgroups"]["groups"].items() for flag in e["flags"]
        ]
        metrics.setdefault("warnings", []).extend(f"subgroup {flag}" for flag in flagged)
    metrics["model"] = {
        "name": manifest.name,
        "version": manifest.version,
        "weights_sha256": manifest.weights.sha256,
    }
    metrics["data"] = {"source": str(data), "split": split, "fingerprint": scan.fingerprint}
    overlap = _seen_in_training(bundle, scan.manifest, split)
    metrics["training_overlap"] = overlap
    if overlap:
        metrics.setdefault("warnings", []).append(
            f"{overlap} of the {len(samples)} evaluated images were in the model's training or validation "
            "split: these metrics are optimistic. Evaluate with the training run's --seed, or on other data."
        )
    reference = bundle.load_ood()
    if reference is not None:
        refused = reference.scores(features) > reference.spec.threshold
        metrics["ood_refused_fraction"] = float(refused.mean())

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    plots = write_all_plots(
        truth, calibrated, manifest.labels, manifest.task, metrics, out, probs_uncalibrated=uncalibrated
    )
    params = {"bundle": manifest.name, "bundle_version": manifest.version, "data": str(data), "split": split}
    with tracked_run("evaluate", f"{manifest.name} on {data.name}/{split}", params, settings) as tracker:
        tracker.log_metrics(_flat(metrics))
        tracker.log_artifact(out / METRICS_FILE)
        for path in plots.values():
            tracker.log_artifact(path, "plots")
        metrics["mlflow_run_id"] = tracker.run_id
    return metrics


def _seen_in_training(bundle: Bundle, manifest: list[dict[str, object]], split: str) -> int:
    """How many evaluated images (by sha256) the bundle was trained or calibrated on."""
    if bundle.manifest.dataset is None:
        return 0
    try:
        trained = json.loads((bundle.path / bundle.manifest.dataset.manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    seen = {entry["sha256"] for entry in trained if entry.get("split") in ("train", "val")}
    return sum(1 for entry in manifest if entry.get("split") == split and entry["sha256"] in seen)


def _check_labels(dataset: LabelledDataset, labels: list[str]) -> None:
    if dataset.labels != labels:
        raise BadInput(
            f"the dataset's labels {dataset.labels} differ from the model's {labels}; "
            "evaluate on data labelled like the training data"
        )


def stage_progress(
    progress: Callable[[str, int, int], None] | None, stage: str
) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def _flat(metrics: dict[str, Any]) -> dict[str, float | None]:
    flat: dict[str, float | None] = {"accuracy": metrics.get("accuracy")}
    flat.update({f"macro_{k}": v for k, v in metrics["macro"].items()})
    flat.update({f"micro_{k}": v for k, v in metrics["micro"].items()})
    for label, values in metrics["per_label"].items():
        flat.update({f"{k}/{label}": v for k, v in values.items() if isinstance(v, int | float)})
    flat["ece_calibrated"] = metrics["ece"].get("calibrated")
    flat["ece_uncalibrated"] = metrics["ece"].get("uncalibrated")
    if "ood_refused_fraction" in metrics:
        flat["ood_refused_fraction"] = metrics["ood_refused_fraction"]
    return flat
