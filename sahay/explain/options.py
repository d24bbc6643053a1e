"""What a caller chooses about explanations: the method, its budget, faithfulness and opacity.

Light on purpose (no torch): the CLI and the API build these before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_METHOD = "cam"
"""The one-pass class activation map: free with the prediction. A network without a GAP-plus-linear
head gets ``GRADIENT_FALLBACK`` instead."""
GRADIENT_FALLBACK = "gradcam"
DEFAULT_STEPS = 5
"""Deletion/insertion curve points per finding."""
DEFAULT_OPACITY = 0.5
"""Opacity of the heatmap where attribution is highest."""

DEFAULT_TOP_K = 3
"""Findings explained per image: the most probable positives (or, with none, the most probable)."""

DEFAULT_MAX_EVALUATIONS = 64
"""Perturbation budget per image: about 12 s for a DenseNet121 at 224 px on 2 CPU cores."""


@dataclass(frozen=True)
class Budget:
    """Bounds on the work of perturbation methods; CAM methods need one pass and ignore it."""

    max_evaluations: int = DEFAULT_MAX_EVALUATIONS
    batch_size: int = 16
    patch_fraction: float = 0.25
    """Occlusion window side as a share of the input side."""

    def __post_init__(self) -> None:
        if self.max_evaluations < 2:
            raise ValueError(f"max_evaluations must be at least 2, got {self.max_evaluations}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 < self.patch_fraction <= 1.0:
            raise ValueError(f"patch_fraction must be in (0, 1], got {self.patch_fraction}")


@dataclass(frozen=True)
class ExplainOptions:
    method: str = DEFAULT_METHOD
    budget: Budget = field(default_factory=Budget)
    faithfulness: bool = False
    """Score each map by deletion and insertion curves: ``2 + 2 * (steps - 1)`` model runs a finding,
    more than the maps themselves cost, so it is asked for (``--faithfulness``), not done by default."""
    faithfulness_steps: int = DEFAULT_STEPS
    opacity: float = DEFAULT_OPACITY
    top_k: int = DEFAULT_TOP_K

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
