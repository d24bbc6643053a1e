"""Fit or refit a bundle's out-of-domain reference from any local dataset.

This covers pulled models such as TorchXRayVision's, whose training data users do not have,
and lets a site recalibrate what counts as "its" images. Labels are not used: the reference
comes from the dataset's train split, and the threshold from its validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sahay.config import Settings, get_settings
from sahay.datasets import load_dataset, scan_images
from sahay.errors import BadInput
from sahay.models.bundle import Bundle, with_ood
from sahay.models.ood import fit_reference
from sahay.models.providers import get_provider
from sahay.models.registry import find_bundle
from sahay.training.inference import infer
from sahay.training.train import MIN_TRAIN_IMAGES, trained_on_greyscale


def fit_ood(
    bundle_ref: str,
    data: Path,
    *,
    percentile: float = 99.0,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
    **dataset_options: Any,
) -> Bundle:
    settings = settings or get_settings()
    bundle = find_bundle(bundle_ref, settings)
    dataset = load_dataset(data, **dataset_options)
    scan = scan_images(dataset, settings=settings, progress=progress)
    model = bundle.load_model()
    layer = get_provider(bundle.manifest.architecture).cam_layer
    train, val = scan.readable["train"], scan.readable["val"]
    _, train_features, _ = infer(model, layer, train, bundle.manifest.input, settings=settings)
    _, val_features, _ = infer(model, layer, val, bundle.manifest.input, settings=settings)
    if not 0 < percentile <= 100:
        raise BadInput(f"--percentile must lie in (0, 100], got {percentile}")
    if len(train) < MIN_TRAIN_IMAGES:
        raise BadInput(
            f"{data} has {len(train)} readable training images; the reference needs {MIN_TRAIN_IMAGES}"
        )
    reference = fit_reference(
        train_features,
        val_features,
        fitted_on=f"{len(train)} images of {data.name} (dataset {scan.fingerprint[:12]}); "
        f"threshold from {len(val)} held-out images",
        expects_greyscale=trained_on_greyscale(scan),
        percentile=percentile,
    )
    return with_ood(bundle, reference)
