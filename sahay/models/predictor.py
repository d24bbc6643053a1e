"""Run a bundle on images: batched inference, temperature scaling, thresholds.

Example:
    >>> predictor = Predictor(load_bundle("~/.sahay/models/my-model"))   # doctest: +SKIP
    >>> [p.findings for p in predictor.predict([image.pixels])]           # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sahay.analysis import Finding
from sahay.models.bundle import Bundle, BundleManifest
from sahay.models.ood import OodReference
from sahay.models.preprocess import CropBox, preprocess_array
from sahay.models.providers import get_provider
from sahay.models.runtimes import Engine, NetworkOutput, Runtime, choose_runtime, open_engine

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class Prediction:
    findings: list[Finding]
    input_array: np.ndarray
    """The (C, H, W) float32 input the network saw, kept so that heatmaps reuse it."""
    crop: CropBox
    features: np.ndarray
    """The pooled output of the provider's ``cam_layer``: the image's feature vector."""
    logits: np.ndarray
    class_maps: np.ndarray | None = None
    """(K, h, w): each label's class activation map from the same forward pass (head weights times
    the pooled feature map); None when the network has no GAP-plus-linear head."""

    @property
    def input_tensor(self) -> torch.Tensor:
        """``input_array`` as a torch tensor, for the gradient and perturbation methods."""
        import torch

        return torch.from_numpy(self.input_array)


class Predictor:
    """Holds one loaded model; create it once and reuse it for many images.

    ``runtime`` is ``auto`` (SAHAY_RUNTIME by default), ``torch`` or ``onnx``: see ``sahay.models.runtimes``.
    ``threads`` caps ONNX Runtime's threads (None: one per core); torch follows OMP_NUM_THREADS.
    """

    def __init__(
        self, bundle: Bundle, device: str = "cpu", runtime: str | None = None, threads: int | None = None
    ) -> None:
        if runtime is None:
            from sahay.config import get_settings

            runtime = get_settings().runtime
        self.bundle = bundle
        self.device = device
        provider = get_provider(bundle.manifest.architecture)
        self.feature_layer = provider.cam_layer
        self.one_pass_cam = provider.feature_map is not None
        """Whether ``Prediction.class_maps`` holds class activation maps (a GAP-plus-linear head)."""
        self.engine: Engine = open_engine(bundle, choose_runtime(bundle, runtime), device, threads)
        self.ood: OodReference | None = bundle.load_ood()
        self._model: nn.Module | None = None

    @property
    def manifest(self) -> BundleManifest:
        return self.bundle.manifest

    @property
    def runtime(self) -> Runtime:
        return self.engine.runtime

    @property
    def model(self) -> nn.Module:
        """The torch network (gradient methods, training): loaded on first use under ONNX Runtime."""
        from sahay.models.runtimes import TorchEngine

        if isinstance(self.engine, TorchEngine):
            return self.engine.model
        if self._model is None:
            self._model = self.bundle.load_model().to(self.device)
        return self._model

    def forward(self, batch: np.ndarray) -> NetworkOutput:
        """Every output of one forward pass over a preprocessed (N, C, H, W) batch."""
        return self.engine.run(batch)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The calibrated probabilities (N, K) of a preprocessed batch."""
        return np.asarray(self.manifest.probabilities(self.engine.run(batch).logits))

    def predict(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[Prediction]:
        """Predict every image (each (H, W) or (H, W, 3) in [0, 1]), ``batch_size`` at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        results: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = [
                preprocess_array(pixels, self.manifest.input) for pixels in images[start : start + batch_size]
            ]
            output = self.engine.run(np.stack([array for array, _ in chunk]))
            probs = self.manifest.probabilities(output.logits)
            for n, (array, box) in enumerate(chunk):
                results.append(
                    Prediction(
                        findings=self._findings(probs[n]),
                        input_array=array,
                        crop=box,
                        features=output.features[n],
                        logits=output.logits[n],
                        class_maps=output.class_maps[n] if self.one_pass_cam else None,
                    )
                )
        return results

    def _findings(self, probs: np.ndarray) -> list[Finding]:
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
    import torch
    import torch.nn.functional as F

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
    Pass it as ``pipeline.analyze(..., load_predictor=cache)``.

    The models are held here, keyed by thread, not in ``threading.local``: a fork that runs Python in
    the child (Ray starts its processes so) deletes the other threads' state there, and freeing an
    ONNX Runtime session in the child waits forever for thread-pool threads it does not have.
    """

    def __init__(self) -> None:
        self._predictors: dict[tuple[int, str, str, str], Predictor] = {}
        self._lock = threading.Lock()

    def __call__(self, bundle: Bundle) -> Predictor:
        manifest = bundle.manifest
        key = (threading.get_ident(), str(bundle.path), manifest.name, manifest.version)
        with self._lock:
            predictor = self._predictors.get(key)
        if predictor is None:  # loaded outside the lock: another thread's model need not wait
            predictor = Predictor(bundle)
            with self._lock:
                self._predictors[key] = predictor
        return predictor
