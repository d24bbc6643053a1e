"""The torch-facing part: ``ImageDataset`` (samples as model inputs), ``Augment`` and ``class_weights``.

This is the one module of ``sahay.datasets`` that imports torch and OpenCV; the layouts, the
splits and the registry do not, so listing layouts stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sahay.config import Settings
from sahay.datasets.dataset import LabelledDataset, Sample
from sahay.errors import BadInput
from sahay.imaging.reader import read_image
from sahay.models.bundle import InputSpec
from sahay.models.preprocess import preprocess

_POS_WEIGHT_RANGE = (1 / 100, 100.0)


@dataclass(frozen=True)
class Augment:
    """Light, label-preserving augmentation of [0, 1] pixels, drawn from torch's RNG.

    ``horizontal_flip`` is off by default: flips break laterality on chest films (heart on the left).
    """

    rotation_degrees: float = 7.0
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.1  # additive, in [0, 1] pixel units
    contrast: float = 0.1  # multiplicative, around the image mean
    horizontal_flip: bool = False

    def __post_init__(self) -> None:
        low, high = self.scale
        if self.rotation_degrees < 0 or not 0 < low <= high:
            raise BadInput(
                f"Augment(rotation_degrees={self.rotation_degrees}, scale={self.scale}): rotation must be "
                ">= 0 and scale a (low, high) pair with 0 < low <= high."
            )
        if not (0 <= self.brightness <= 1 and 0 <= self.contrast <= 1):
            raise BadInput(
                f"Augment brightness={self.brightness}, contrast={self.contrast}: each must lie in [0, 1]."
            )

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Return augmented float32 pixels in [0, 1], same shape as ``pixels``."""
        # Always draw the same count of numbers, so one setting never shifts the others' stream.
        u = [float(v) for v in torch.rand(5)]
        angle = (2 * u[0] - 1) * self.rotation_degrees
        scale = self.scale[0] + u[1] * (self.scale[1] - self.scale[0])
        shift = (2 * u[2] - 1) * self.brightness
        factor = 1 + (2 * u[3] - 1) * self.contrast
        image = pixels.astype(np.float32, copy=True)
        if angle != 0 or scale != 1:
            image = _rotate_and_scale(image, angle, scale)
        if shift != 0 or factor != 1:
            # Written as x*f + m*(1-f) so that f=1 leaves x bit-for-bit unchanged.
            image = image * factor + float(image.mean()) * (1 - factor) + shift
        if self.horizontal_flip and u[4] < 0.5:
            image = image[:, ::-1]
        return np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32)


def _rotate_and_scale(image: np.ndarray, angle: float, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    warped = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return warped[..., None] if warped.ndim == 2 and image.ndim == 3 else warped


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Samples as (input (C, S, S) from ``preprocess``, float32 target (K,) with NaN kept).

    With ``cache`` the decoded pixels are kept in memory as float16, shrunk so the short side is at
    most 2 × ``spec.size``, so later epochs do not decode again. With DataLoader workers each worker
    keeps its own cache: use ``persistent_workers=True`` so it survives between epochs. Augmentation
    draws from torch's RNG: ``torch.manual_seed`` (and a seeded DataLoader ``generator``) make epochs
    repeatable on the CPU.

    Example::

        train = ImageDataset(report.readable["train"], bundle.manifest.input, augment=Augment())
        inputs, targets = train[0]
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        spec: InputSpec,
        *,
        augment: Augment | None = None,
        settings: Settings | None = None,
        cache: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.spec = spec
        self.augment = augment
        self.settings = settings
        self.cache = cache
        self._pixels: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        pixels = self._load(sample.path)
        if self.augment is not None:
            pixels = self.augment(pixels)
        inputs, _ = preprocess(pixels, self.spec)
        return inputs, torch.tensor(sample.target, dtype=torch.float32)

    def _load(self, path: Path) -> np.ndarray:
        cached = self._pixels.get(path)
        if cached is not None:
            return cached.astype(np.float32)
        pixels = self._decode(path)
        if not self.cache:
            return pixels
        self._pixels[path] = _shrink(pixels, 2 * self.spec.size).astype(np.float16)
        return self._pixels[path].astype(np.float32)

    def _decode(self, path: Path) -> np.ndarray:
        try:
            return read_image(path, settings=self.settings).pixels
        except BadInput as exc:
            raise BadInput(
                f"{path} can no longer be decoded ({exc}); it was readable when the dataset was scanned, "
                "so it has changed or gone since. Restore it, or scan the dataset again."
            ) from exc


def _shrink(pixels: np.ndarray, short_side: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    if min(height, width) <= short_side:
        return pixels
    ratio = short_side / min(height, width)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    shrunk = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return shrunk[..., None] if shrunk.ndim == 2 and pixels.ndim == 3 else shrunk


# --- loss weights ------------------------------------------------------------------------------


def class_weights(dataset: LabelledDataset, split: str = "train") -> torch.Tensor:
    """Loss weights that counter class imbalance, float32 (K,).

    * multilabel: BCE ``pos_weight`` = negatives / positives per label, clamped to [1/100, 100]
      (a label with no positives gets 100; one with no labelled rows gets 1);
    * multiclass: cross-entropy ``weight`` = 1 / class frequency, normalised to mean 1.
    """
    if not dataset._samples(split):
        raise BadInput(f"the {split} split of {dataset.root} is empty; class weights need its images.")
    positives = dataset.positives(split).astype(np.float64)
    if dataset.task == "multiclass":
        inverse = 1.0 / np.maximum(positives, 1.0)
        return torch.tensor(inverse / inverse.mean(), dtype=torch.float32)
    negatives = dataset.negatives(split).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(positives + negatives == 0, 1.0, negatives / positives)
    return torch.tensor(np.clip(ratio, *_POS_WEIGHT_RANGE), dtype=torch.float32)
