"""Put heatmaps back onto the original image, at its own aspect ratio, and draw overlays."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pytorch_grad_cam.utils.image import show_cam_on_image

from sahay.models.preprocess import CropBox

HEATMAP_MAX_SIDE = 512
OVERLAY_MAX_SIDE = 1024


def _fit(shape: tuple[int, ...], max_side: int) -> tuple[int, int, float]:
    height, width = shape[:2]
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale)), scale


def to_image_geometry(cam: np.ndarray, crop: CropBox, image_shape: tuple[int, ...]) -> np.ndarray:
    """Map a map over the network's input square back onto the whole image.

    The result has the image's aspect ratio, its long side at most ``HEATMAP_MAX_SIDE``,
    and zeros where the network saw nothing (outside a centre crop).
    """
    height, width, scale = _fit(image_shape, HEATMAP_MAX_SIDE)
    full = np.zeros((height, width), dtype=np.float32)
    top, left = round(crop.top * scale), round(crop.left * scale)
    box_h = max(1, min(height - top, round(crop.height * scale)))
    box_w = max(1, min(width - left, round(crop.width * scale)))
    full[top : top + box_h, left : left + box_w] = cv2.resize(
        cam.astype(np.float32), (box_w, box_h), interpolation=cv2.INTER_LINEAR
    )
    return np.clip(full, 0.0, 1.0)


def render_overlay(
    pixels: np.ndarray, heatmap: np.ndarray, caption: str, banner: str | None = None
) -> Image.Image:
    """Blend a jet-coloured heatmap over the image; ``banner`` is printed in red across the bottom."""
    height, width, _ = _fit(pixels.shape, OVERLAY_MAX_SIDE)
    base = cv2.resize(pixels.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    mask = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    blended = show_cam_on_image(np.clip(base, 0, 1), np.clip(mask, 0, 1), use_rgb=True, image_weight=0.6)
    image = Image.fromarray(blended)
    _draw_strip(image, caption, top=True, fill=(0, 0, 0))
    if banner:
        _draw_strip(image, banner, top=False, fill=(170, 0, 0))
    return image


def _draw_strip(image: Image.Image, text: str, *, top: bool, fill: tuple[int, int, int]) -> None:
    size = max(10, image.width // 45)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image)
    strip_h = size + 8
    y0 = 0 if top else image.height - strip_h
    draw.rectangle((0, y0, image.width, y0 + strip_h), fill=fill)
    draw.text((4, y0 + 3), text, fill=(255, 255, 255), font=font)
