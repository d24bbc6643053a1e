"""Occlusion sensitivity (Zeiler and Fergus, 2014) through captum's ``Occlusion``.

A grey window (the image's channel means) slides over the input; a window's attribution is
how much hiding it lowers each finding's logit. One set of occluded images serves every
finding at once, so the cost is the number of windows, whatever the number of findings.
"""

from __future__ import annotations

import math

from sahay.explain.methods.base import ExplanationMethod, MethodInput, MethodResult


def window_plan(side: int, patch_fraction: float, max_evaluations: int) -> tuple[int, int, int]:
    """(window, stride, windows per axis) for a square input, keeping windows + 1 within the budget.

    A budget too small for the asked window grows the window, so the image is still covered.

    >>> window_plan(224, 0.25, 64)
    (56, 28, 7)
    >>> window_plan(64, 0.25, 5)
    (32, 32, 2)
    """
    window = max(1, min(side, round(side * patch_fraction)))
    per_axis = max(1, math.isqrt(max_evaluations - 1))
    if per_axis == 1 or side == window:
        return side, side, 1
    stride = max(1, math.ceil((side - window) / (per_axis - 1)))
    if stride > window:  # captum needs overlapping or touching windows
        window = stride = math.ceil(side / per_axis)
    return window, stride, (side - window) // stride + 1


def _run(request: MethodInput) -> MethodResult:
    from captum.attr import Occlusion

    from sahay.explain.methods.perturbation import CountingForward, channel_means, per_label_result

    image = request.tensor.unsqueeze(0)
    channels, height, width = request.tensor.shape
    window, stride, per_axis = window_plan(
        min(height, width), request.budget.patch_fraction, request.budget.max_evaluations
    )
    forward = CountingForward(request, expected=per_axis * per_axis + 1)
    attribution = Occlusion(forward.flat()).attribute(
        image,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=channel_means(request.tensor).expand_as(image),
        perturbations_per_eval=request.budget.batch_size,
    )
    return per_label_result(attribution, forward)


OCCLUSION = ExplanationMethod(
    name="occlusion",
    title="Occlusion",
    family="perturbation",
    class_specific=True,
    cost="one forward pass per window position (7 x 7 = 49 windows + 1 by default); all findings share them",
    run=_run,
)
