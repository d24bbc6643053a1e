"""Logits and feature vectors for a list of samples: shared by training, evaluation and fit-ood."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from sahay.config import Settings
from sahay.datasets import ImageDataset, Sample
from sahay.models.bundle import InputSpec
from sahay.models.predictor import logits_and_features


def infer(
    model: nn.Module,
    feature_layer: str,
    samples: Sequence[Sample],
    spec: InputSpec,
    *,
    batch_size: int = 16,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return logits (N, K), pooled features (N, D) and targets (N, K) for ``samples``, unaugmented."""
    loader = DataLoader(ImageDataset(samples, spec, settings=settings, cache=False), batch_size=batch_size)
    logits, features, targets = [], [], []
    was_training = model.training
    model.eval()
    try:
        for inputs, batch_targets in loader:
            batch_logits, batch_features = logits_and_features(model, feature_layer, inputs)
            logits.append(batch_logits)
            features.append(batch_features)
            targets.append(batch_targets)
            if progress:
                progress(sum(len(t) for t in targets), len(samples))
    finally:
        model.train(was_training)
    return (
        torch.cat(logits).numpy(),
        torch.cat(features).numpy(),
        torch.cat(targets).numpy(),
    )


def truth_for_metrics(targets: np.ndarray, task: str) -> np.ndarray:
    """Targets as metrics expect them: (N, K) 0/1/NaN for multilabel, (N,) class indices for multiclass."""
    return targets.argmax(axis=1) if task == "multiclass" else targets
