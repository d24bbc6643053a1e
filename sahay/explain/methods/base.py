"""What every explanation method takes and returns, so that methods are interchangeable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sahay.explain.options import Budget

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

EvaluationProgress = Callable[[int, int], None]
"""Called with (model evaluations done, expected total) by methods that perturb the input."""


@dataclass(frozen=True)
class MethodInput:
    model: nn.Module | None
    """The torch network; None for methods that do not need it (``needs_network`` False)."""
    input_tensor: torch.Tensor | np.ndarray
    """One preprocessed image, (C, H, W): a tensor for the methods that run the network."""
    label_indices: Sequence[int]
    cam_layer: str
    budget: Budget = field(default_factory=Budget)
    progress: EvaluationProgress | None = None
    class_maps: np.ndarray | None = None
    """(K, h, w) class activation maps of the same forward pass (``Prediction.class_maps``)."""

    @property
    def network(self) -> nn.Module:
        if self.model is None:
            raise ValueError("this explanation method runs the torch network, and none was given")
        return self.model

    @property
    def tensor(self) -> torch.Tensor:
        """The input as a torch tensor, for the methods that run the network."""
        import numpy as np
        import torch

        image = self.input_tensor
        return torch.from_numpy(image) if isinstance(image, np.ndarray) else image


@dataclass(frozen=True)
class MethodResult:
    maps: list[np.ndarray]
    """One (H, W) float32 map in [0, 1] per label index, at the input tensor's resolution."""
    evaluations: int
    """Forward passes made, counting each image of a batch once."""


@dataclass(frozen=True)
class ExplanationMethod:
    name: str
    title: str
    family: Literal["cam", "perturbation"]
    class_specific: bool
    """False when every label gets the same map (the method ignores the target)."""
    cost: str
    run: Callable[[MethodInput], MethodResult]
    needs_network: bool = True
    """False for a method that works from the prediction alone (no torch, any runtime)."""


def positive_part_scaled(attribution: np.ndarray) -> np.ndarray:
    """Keep the evidence for the label (positive attribution) and scale it to [0, 1]."""
    import numpy as np

    positive = np.clip(np.nan_to_num(attribution.astype(np.float32)), 0.0, None)
    peak = float(positive.max()) if positive.size else 0.0
    return positive / peak if peak > 0 else positive
