"""Turn a display-ready image in [0, 1] into a bundle's input tensor, and keep the geometry.

The geometry (which part of the original image the network saw) lets heatmaps be drawn
back onto the original image at its own aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sahay.models.bundle import InputSpec
from sahay.models.providers import Provider
from sahay.models.providers.efficientnet import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    import torch

# ITU-R BT.601 luma, the weights DICOM and Pillow use for RGB to grey.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class CropBox:
    """The region of the original image (in its pixels) that was resized to the input square."""

    top: int
    left: int
    height: int
    width: int


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Return (H, W, channels) float32: grey repeated for RGB models, RGB reduced to luma for grey ones."""
    if pixels.ndim == 2:
        grey = pixels[..., None]
        return np.repeat(grey, channels, axis=2) if channels == 3 else grey
    if channels == 3:
        return pixels
    return (pixels @ _LUMA)[..., None].astype(np.float32)


def standard_input_spec(provider: Provider, image_size: int) -> InputSpec:
    """How new bundles feed images to a backbone: TorchXRayVision's convention, or ImageNet's."""
    if provider.in_channels == 1:
        return InputSpec(size=image_size, channels=1, resize="center_crop", value_range=(-1024.0, 1024.0))
    return InputSpec(size=image_size, channels=3, resize="stretch", mean=IMAGENET_MEAN, std=IMAGENET_STD)


def crop_box_for(shape: tuple[int, ...], spec: InputSpec) -> CropBox:
    height, width = shape[:2]
    if spec.resize == "stretch":
        return CropBox(0, 0, height, width)
    side = min(height, width)
    return CropBox((height - side) // 2, (width - side) // 2, side, side)


def preprocess_array(pixels: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, CropBox]:
    """Return the (C, size, size) float32 input for one image, and the crop it came from (NumPy/OpenCV
    only: the torch-free path and torch share it, so both engines see the very same input)."""
    box = crop_box_for(pixels.shape, spec)
    # Crop first, then convert: a 2k film's channel copy and float cast then cover only the crop.
    cropped = pixels[box.top : box.top + box.height, box.left : box.left + box.width]
    image = to_channels(cropped.astype(np.float32, copy=False), spec.channels)
    shrinking = image.shape[0] > spec.size
    resized = cv2.resize(
        image,
        (spec.size, spec.size),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    )
    if resized.ndim == 2:  # cv2 drops a trailing axis of length 1
        resized = resized[..., None]
    low, high = spec.value_range
    scaled = resized * np.float32(high - low) + np.float32(low)
    if spec.mean is not None:
        scaled -= np.asarray(spec.mean, dtype=np.float32)
    if spec.std is not None:
        scaled /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)), box


def preprocess(pixels: np.ndarray, spec: InputSpec) -> tuple[torch.Tensor, CropBox]:
    """``preprocess_array`` as a torch tensor (training and the torch engine)."""
    import torch

    array, box = preprocess_array(pixels, spec)
    return torch.from_numpy(array), box
