"""What perturbation methods share: a counting forward function, the "absent" value, and the result."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sahay.explain.methods.base import MethodInput, MethodResult, positive_part_scaled


class CountingForward:
    """Logits of the requested labels, shape (N, K), with every image evaluated counted."""

    def __init__(self, request: MethodInput, expected: int) -> None:
        self.request = request
        self.expected = expected
        self.evaluations = 0
        self.indices = list(request.label_indices)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = self.request.network(batch)[:, self.indices]
        self.evaluations += int(batch.shape[0])
        if self.request.progress is not None:
            self.request.progress(min(self.evaluations, self.expected), self.expected)
        return logits

    def flat(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The same logits flattened to (N * K,), the multi-output form captum's Occlusion expects."""
        return lambda batch: self(batch).reshape(-1)


def channel_means(image: torch.Tensor) -> torch.Tensor:
    """(1, C, 1, 1): a neutral grey for "this part of the image is absent"."""
    return image.mean(dim=(-2, -1), keepdim=True).unsqueeze(0)


def per_label_result(attribution: torch.Tensor, forward: CountingForward) -> MethodResult:
    """captum's attribution for the requested labels, (K, C, H, W) in any leading layout, as maps."""
    channels, height, width = forward.request.tensor.shape
    per_label = attribution.reshape(len(forward.indices), channels, height, width).sum(dim=1)
    return MethodResult([positive_part_scaled(m.numpy()) for m in per_label], forward.evaluations)
