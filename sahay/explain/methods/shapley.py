"""SHAP-style attribution: Shapley values of image tiles, estimated by captum's ``ShapleyValueSampling``.

The input is cut into a grid of tiles (the "players"); a tile is absent when it is set to the
image's channel means. Each sampled permutation adds the tiles one by one and credits each
with the change in every finding's logit (Castro et al., 2009; Strumbelj and Kononenko, 2010).
Permutations are seeded, so the same image gives the same map.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sahay.explain.methods.base import ExplanationMethod, MethodInput, MethodResult

if TYPE_CHECKING:
    import torch

GRID = 4
SEED = 0


def sampling_plan(max_evaluations: int, grid: int = GRID) -> tuple[int, int]:
    """(grid side, permutations) with ``permutations * grid**2 + 1`` evaluations within the budget.

    >>> sampling_plan(64)
    (4, 3)
    >>> sampling_plan(10)
    (3, 1)
    """
    grid = max(1, min(grid, math.isqrt(max_evaluations - 1)))
    return grid, max(1, (max_evaluations - 1) // (grid * grid))


def tile_mask(height: int, width: int, grid: int) -> torch.Tensor:
    """(1, 1, H, W) tile numbers, row-major, ``grid`` tiles a side."""
    import torch

    rows = torch.arange(height) * grid // height
    columns = torch.arange(width) * grid // width
    return (rows[:, None] * grid + columns[None, :])[None, None]


def _run(request: MethodInput) -> MethodResult:
    import torch
    from captum.attr import ShapleyValueSampling

    from sahay.explain.methods.perturbation import CountingForward, channel_means, per_label_result

    image = request.tensor.unsqueeze(0)
    height, width = request.tensor.shape[-2:]
    grid, permutations = sampling_plan(request.budget.max_evaluations)
    forward = CountingForward(request, expected=permutations * grid * grid + 1)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        attribution = ShapleyValueSampling(forward).attribute(
            image,
            feature_mask=tile_mask(height, width, grid),
            baselines=channel_means(request.tensor).expand_as(image),
            n_samples=permutations,
            perturbations_per_eval=request.budget.batch_size,
        )
    return per_label_result(attribution, forward)


SHAPLEY = ExplanationMethod(
    name="shap",
    title="Shapley sampling (SHAP)",
    family="perturbation",
    class_specific=True,
    cost="permutations x tiles + 1 forward passes (3 x 16 + 1 = 49 by default); all findings share them",
    run=_run,
)
