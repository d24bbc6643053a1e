"""Is a map faithful to the model? Deletion and insertion curves (Petsiuk et al., 2018, RISE).

Pixels are ranked by the map. **Deletion** replaces the top-ranked share of pixels with a
blurred copy of the image, in ``steps`` equal steps from none to all, and follows the
finding's probability; a faithful map makes it fall fast, so the area under the curve is
small. **Insertion** starts from the blurred image and restores pixels in the same order; a
faithful map makes the probability come back fast, so the area is large. The score is
``insertion - deletion``: in [-1, 1], near 0 for a map no better than chance, higher is better.
A blur (not black) stands for "absent", so the perturbed images stay closer to real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sahay.analysis import Faithfulness
from sahay.explain.options import DEFAULT_STEPS

if TYPE_CHECKING:
    import torch
    from torch import nn

ToProbability = Callable[["torch.Tensor"], "torch.Tensor"]
"""Logits (N, labels) to the probabilities the user sees (temperature-scaled sigmoid or softmax)."""
ProbabilitiesOf = Callable[[np.ndarray], np.ndarray]
"""A preprocessed (N, C, H, W) batch to its probabilities (N, labels): any runtime."""


def blurred(image: np.ndarray) -> np.ndarray:
    """A strong Gaussian blur of a (C, H, W) image: the shapes are gone, the brightness stays.

    Kernel and reflected border as torchvision's ``gaussian_blur`` (OpenCV's BORDER_REFLECT_101)."""
    side = min(image.shape[-2:])
    radius = max(1, side // 16)
    size, sigma = 2 * radius + 1, side / 32
    planes = [
        cv2.GaussianBlur(plane, (size, size), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
        for plane in np.asarray(image, dtype=np.float32)
    ]
    return np.stack(planes)


def evaluations_needed(labels: int, steps: int = DEFAULT_STEPS) -> int:
    """The original and the blurred image, then ``steps - 1`` inner points per curve and label."""
    return 2 + labels * 2 * (steps - 1)


MIN_INFORMATIVE_SPAN = 0.05
"""When the whole image blurred moves the probability less than this, the output is saturated
and deletion and insertion curves are flat whatever the map: the score is not informative."""


def score_maps(
    probabilities_of: ProbabilitiesOf,
    input_array: np.ndarray,
    label_indices: Sequence[int],
    maps: Sequence[np.ndarray],
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 16,
) -> list[Faithfulness | None]:
    """Score each map (H, W, at the input's resolution) for its label; None for an all-zero map."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    original = np.asarray(input_array, dtype=np.float32)
    background = blurred(original)
    images = [original, background]
    scored = [i for i, m in enumerate(maps) if float(np.max(m)) > 0]
    for position in scored:
        order = np.argsort(-maps[position].ravel(), kind="stable")
        for step in range(1, steps):
            shown = np.zeros(order.size, dtype=bool)
            shown[order[: round(step / steps * order.size)]] = True
            shown = shown.reshape(maps[position].shape)
            images.append(np.where(shown, background, original))  # deletion
            images.append(np.where(shown, original, background))  # insertion
    stacked = np.stack(images)
    probs = np.concatenate(
        [
            probabilities_of(stacked[start : start + batch_size])
            for start in range(0, len(stacked), batch_size)
        ]
    )
    results: list[Faithfulness | None] = [None] * len(maps)
    for n, position in enumerate(scored):
        column = probs[:, label_indices[position]]
        inner = column[2 + n * 2 * (steps - 1) : 2 + (n + 1) * 2 * (steps - 1)]
        deletion = np.concatenate([[column[0]], inner[0::2], [column[1]]])
        insertion = np.concatenate([[column[1]], inner[1::2], [column[0]]])
        deletion_auc, insertion_auc = _area(deletion), _area(insertion)
        results[position] = Faithfulness(
            deletion_auc=deletion_auc,
            insertion_auc=insertion_auc,
            score=insertion_auc - deletion_auc,
            steps=steps,
            informative=abs(float(column[0]) - float(column[1])) >= MIN_INFORMATIVE_SPAN,
        )
    return results


def deletion_insertion(
    model: nn.Module,
    input_tensor: torch.Tensor,
    label_indices: Sequence[int],
    maps: Sequence[np.ndarray],
    to_probability: ToProbability,
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 16,
) -> list[Faithfulness | None]:
    """``score_maps`` for a torch network and its logits-to-probabilities function."""
    import torch

    def probabilities_of(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return to_probability(model(torch.from_numpy(batch)).float()).numpy()

    return score_maps(
        probabilities_of, input_tensor.numpy(), label_indices, maps, steps=steps, batch_size=batch_size
    )


def random_map(shape: tuple[int, int], seed: int, cells: int = 7) -> np.ndarray:
    """A smooth random map with blobs the size of a CAM's: the reference a real map must beat."""
    coarse = np.random.default_rng(seed).random((cells, cells)).astype(np.float32)
    # Bilinear with half-pixel centres and a clamped border, as torch's interpolate(align_corners=False).
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _area(curve: np.ndarray) -> float:
    """Trapezoid area over fractions 0, 1/steps, ..., 1."""
    return float(np.trapz(curve, dx=1.0 / (len(curve) - 1)))
