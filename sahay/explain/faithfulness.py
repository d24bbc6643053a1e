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

import numpy as np
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from sahay.analysis import Faithfulness
from sahay.explain.options import DEFAULT_STEPS

ToProbability = Callable[[torch.Tensor], torch.Tensor]
"""Logits (N, labels) to the probabilities the user sees (temperature-scaled sigmoid or softmax)."""


def blurred(image: torch.Tensor) -> torch.Tensor:
    """A strong Gaussian blur of a (C, H, W) image: the shapes are gone, the brightness stays."""
    side = min(image.shape[-2:])
    radius = max(1, side // 16)
    return gaussian_blur(image.unsqueeze(0), [2 * radius + 1] * 2, [side / 32] * 2)[0]


def evaluations_needed(labels: int, steps: int = DEFAULT_STEPS) -> int:
    """The original and the blurred image, then ``steps - 1`` inner points per curve and label."""
    return 2 + labels * 2 * (steps - 1)


MIN_INFORMATIVE_SPAN = 0.05
"""When the whole image blurred moves the probability less than this, the output is saturated
and deletion and insertion curves are flat whatever the map: the score is not informative."""


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
    """Score each map (H, W, at the input's resolution) for its label; None for an all-zero map."""
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    original = input_tensor
    background = blurred(input_tensor)
    images = [original, background]
    scored = [i for i, m in enumerate(maps) if float(np.max(m)) > 0]
    for position in scored:
        order = np.argsort(-maps[position].ravel(), kind="stable")
        for step in range(1, steps):
            shown = torch.zeros(order.size, dtype=torch.bool)
            shown[torch.from_numpy(order[: round(step / steps * order.size)])] = True
            shown = shown.reshape(maps[position].shape)
            images.append(torch.where(shown, background, original))  # deletion
            images.append(torch.where(shown, original, background))  # insertion
    probs = _probabilities(model, torch.stack(images), to_probability, batch_size)
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


def random_map(shape: tuple[int, int], seed: int, cells: int = 7) -> np.ndarray:
    """A smooth random map with blobs the size of a CAM's: the reference a real map must beat."""
    coarse = np.random.default_rng(seed).random((cells, cells)).astype(np.float32)
    tensor = torch.from_numpy(coarse)[None, None]
    return torch.nn.functional.interpolate(tensor, size=shape, mode="bilinear")[0, 0].numpy()


def _probabilities(
    model: nn.Module, images: torch.Tensor, to_probability: ToProbability, batch_size: int
) -> np.ndarray:
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            chunks.append(to_probability(model(images[start : start + batch_size]).float()))
    return torch.cat(chunks).numpy()


def _area(curve: np.ndarray) -> float:
    """Trapezoid area over fractions 0, 1/steps, ..., 1."""
    return float(np.trapz(curve, dx=1.0 / (len(curve) - 1)))
