"""Run a bundle on images: batched inference, temperature scaling, thresholds.

Example:
    >>> predictor = Predictor(load_bundle("~/.sahay/models/my-model"))   # doctest: +SKIP
    >>> [p.findings for p in predictor.predict([image.pixels])]           # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sahay.analysis import Finding
from sahay.models.bundle import Bundle, BundleManifest
from sahay.models.ood import OodReference
from sahay.models.preprocess import CropBox, preprocess
from sahay.models.providers import get_provider


@dataclass(frozen=True)
class Prediction:
    findings: list[Finding]
    input_tensor: torch.Tensor
    """The (C, H, W) tensor the network saw, kept so that heatmaps reuse it."""
    crop: CropBox
    features: np.ndarray
    """The pooled output of the provider's ``cam_layer``: the image's feature vector."""
    logits: np.ndarray


class Predictor:
    """Holds one loaded model; create it once and reuse it for many images."""

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        self.model: nn.Module = bundle.load_model().to(self.device)
        self.feature_layer = get_provider(bundle.manifest.architecture).cam_layer
        self.ood: OodReference | None = bundle.load_ood()

    @property
    def manifest(self) -> BundleManifest:
        return self.bundle.manifest

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and pooled features of a preprocessed batch, from one forward pass."""
        return logits_and_features(self.model, self.feature_layer, batch.to(self.device))

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[Prediction]:
        """Predict every image (each (H, W) or (H, W, 3) in [0, 1]), ``batch_size`` at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        prepared = [preprocess(pixels, self.manifest.input) for pixels in images]
        results: list[Prediction] = []
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            logits, features = self.forward(torch.stack([tensor for tensor, _ in chunk]))
            probs = self.manifest.probabilities(logits)
            for (tensor, box), row, vector, raw in zip(chunk, probs, features, logits, strict=True):
                results.append(Prediction(self._findings(row), tensor, box, vector.numpy(), raw.numpy()))
        return results

    def _findings(self, probs: torch.Tensor) -> list[Finding]:
        manifest = self.manifest
        top = int(probs.argmax())
        findings = []
        for index, label in enumerate(manifest.labels):
            probability = float(probs[index])
            threshold = manifest.thresholds[label]
            # A multiclass model names one class per image; its thresholds are one-vs-rest, for reference.
            positive = index == top if manifest.task == "multiclass" else probability >= threshold
            findings.append(
                Finding(
                    label=label,
                    probability=probability,
                    threshold=threshold,
                    positive=positive,
                    cautions=manifest.cautions(label),
                )
            )
        return findings


def logits_and_features(
    model: nn.Module,
    layer_name: str,
    batch: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``forward`` (default: the model) once; return its output and ``layer_name``'s pooled output."""
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(layer_name).register_forward_hook(
        lambda _module, _inputs, output: captured.append(output)
    )
    try:
        with torch.no_grad():
            output = (forward or model)(batch)
    finally:
        handle.remove()
    features = F.adaptive_avg_pool2d(captured[0], 1).flatten(1)
    return output.float().cpu(), features.float().cpu()


class PredictorCache:
    """One loaded model per bundle per thread, for callers that analyse many images (the web
    service's workers, ``sahay pacs analyze``). Per thread, so explanation hooks never cross threads.
    Pass it as ``pipeline.analyze(..., load_predictor=cache)``."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, bundle: Bundle) -> Predictor:
        cache: dict[tuple[str, str, str], Predictor] = self._local.__dict__.setdefault("cache", {})
        manifest = bundle.manifest
        key = (str(bundle.path), manifest.name, manifest.version)
        if key not in cache:
            cache[key] = Predictor(bundle)
        return cache[key]
