"""Synthetic images with known answers, for the demonstration bundle and for tests.

Each image is a smooth, radiograph-like background. Two findings may be drawn on it,
independently and anywhere: a bright disc ("synthetic_disc") and a patch of parallel
stripes ("synthetic_stripes"). The generator returns where it drew them, so tests can
check that heatmaps fall on the right place.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LABELS = ("synthetic_disc", "synthetic_stripes")


@dataclass(frozen=True)
class SyntheticImage:
    pixels: np.ndarray  # (size, size) float32 in [0, 1]
    targets: np.ndarray  # (len(LABELS),) float32 of 0/1
    boxes: dict[str, tuple[int, int, int, int]]  # label -> (top, left, height, width)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = rng.normal(0.0, 1.0, (6, 6)).astype(np.float32)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-6)
    noise = rng.normal(0.0, 0.03, (size, size)).astype(np.float32)
    return np.asarray(0.25 + 0.3 * smooth + noise, dtype=np.float32)


def _place(
    rng: np.random.Generator, size: int, extent: int, avoid: tuple[int, int, int, int] | None
) -> tuple[int, int]:
    for _ in range(50):
        top, left = (int(v) for v in rng.integers(0, size - extent, 2))
        if avoid is None or not _overlaps((top, left, extent, extent), avoid):
            return top, left
    return top, left


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])


def make_image(rng: np.random.Generator, size: int, disc: bool, stripes: bool) -> SyntheticImage:
    image = _background(rng, size)
    boxes: dict[str, tuple[int, int, int, int]] = {}
    extent = size // 4
    if disc:
        top, left = _place(rng, size, extent, None)
        yy, xx = np.mgrid[:size, :size]
        radius = extent / 2
        inside = (yy - top - radius) ** 2 + (xx - left - radius) ** 2 <= radius**2
        image[inside] += 0.45
        boxes[LABELS[0]] = (top, left, extent, extent)
    if stripes:
        top, left = _place(rng, size, extent, boxes.get(LABELS[0]))
        period = max(4, extent // 6)
        patch = image[top : top + extent, left : left + extent]
        rows = np.arange(extent)[:, None] + np.arange(extent)[None, :]  # diagonal stripes
        patch += np.where((rows // (period // 2)) % 2 == 0, 0.35, -0.1).astype(np.float32)
        boxes[LABELS[1]] = (top, left, extent, extent)
    targets = np.array([float(disc), float(stripes)], dtype=np.float32)
    return SyntheticImage(np.clip(image, 0.0, 1.0), targets, boxes)


def make_dataset(count: int, size: int, seed: int) -> list[SyntheticImage]:
    """``count`` images whose four combinations of findings are balanced."""
    rng = np.random.default_rng(seed)
    return [make_image(rng, size, disc=bool(i % 2), stripes=bool((i // 2) % 2)) for i in range(count)]
