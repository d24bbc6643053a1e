"""Run a bundle on images: batched inference, temperature scaling, thresholds.

Example:
    >>> predictor = Predictor(load_bundle("~/.sahay/models/my-model"))   # doctest: +SKIP
    >>> [p.findings for p in predictor.predict([image.pixels])]           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sahay.analysis import Finding, ImageInfo
from sahay.models.bundle import Bundle, BundleManifest
from sahay.models.calibration import probabilities
from sahay.models.preprocess import CropBox, preprocess


@dataclass(frozen=True)
class Prediction:
    findings: list[Finding]
    input_tensor: torch.Tensor
    """The (C, H, W) tensor the network saw, kept so that heatmaps reuse it."""
    crop: CropBox


class Predictor:
    """Holds one loaded model; create it once and reuse it for many images."""

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        self.model: nn.Module = bundle.load_model().to(self.device)

    @property
    def manifest(self) -> BundleManifest:
        return self.bundle.manifest

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(batch.to(self.device)).float().cpu()

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[Prediction]:
        """Predict every image (each (H, W) or (H, W, 3) in [0, 1]), ``batch_size`` at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        prepared = [preprocess(pixels, self.manifest.input) for pixels in images]
        results: list[Prediction] = []
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            logits = self.logits(torch.stack([tensor for tensor, _ in chunk]))
            probs = probabilities(logits, self.manifest.calibration.temperature, self.manifest.task)
            for (tensor, box), row in zip(chunk, probs, strict=True):
                results.append(Prediction(self._findings(row), tensor, box))
        return results

    def _findings(self, probs: torch.Tensor) -> list[Finding]:
        manifest = self.manifest
        top = int(probs.argmax())
        findings = []
        for index, label in enumerate(manifest.labels):
            probability = float(probs[index])
            threshold = manifest.thresholds[label]
            positive = probability >= threshold
            if manifest.task == "multiclass":
                positive = positive and index == top  # one class per image
            findings.append(
                Finding(label=label, probability=probability, threshold=threshold, positive=positive)
            )
        return findings


def domain_warnings(info: ImageInfo, manifest: BundleManifest) -> list[str]:
    """Say where the image's metadata disagrees with what the model was made for."""
    warnings = []
    if manifest.modalities and info.modality and info.modality.upper() not in manifest.modalities:
        warnings.append(
            f"The image's modality is {info.modality}, but model {manifest.name} was made for "
            f"{', '.join(manifest.modalities)}; its output may not mean anything for this image."
        )
    if manifest.body_part and info.body_part and info.body_part.upper() != manifest.body_part.upper():
        warnings.append(
            f"The image's body part is {info.body_part}, but model {manifest.name} was made for "
            f"{manifest.body_part}; its output may not mean anything for this image."
        )
    return warnings
