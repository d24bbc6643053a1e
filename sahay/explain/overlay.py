"""Put heatmaps back onto the original image, at its own aspect ratio, and draw overlays.

Overlays use matplotlib's ``cividis`` colormap: it is designed to read the same for people with
colour-vision deficiency and its lightness rises monotonically, so "brighter" always means "more
attribution" (Nuñez, Anderton and Renslow, PLoS ONE 2018). Rainbow maps such as ``jet`` do neither.

Layout, top to bottom, all ``width`` wide (``W`` for an overlay, ``2 * W + side_by_side_gap(W)``
for a side-by-side image): a black header of ``header_height(width)`` rows (caption on the left,
a colour-bar legend blended like the image on the right), the image area at the original
resolution (``H`` x ``W`` per picture), and, only when a banner is given, a dark red footer of
``footer_height(width)`` rows. Nothing is drawn over image pixels except region boxes and numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from sahay.analysis import Region
from sahay.errors import BadInput
from sahay.explain.options import DEFAULT_OPACITY
from sahay.models.preprocess import CropBox

HEATMAP_MAX_SIDE = 512
COLORMAP = "cividis"
COLORMAP_LUT: np.ndarray = np.rint(colormaps[COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(
    np.uint8
)
"""(256, 3) uint8 RGB: entry ``round(value * 255)`` colours a heatmap value."""

HEADER_FILL = (0, 0, 0)
BANNER_FILL = (170, 0, 0)
TEXT_FILL = (255, 255, 255)
# Region boxes: a white core with black edges on both sides. It stands out by lightness alone, on
# dark and bright anatomy and on every cividis colour, so it needs no hue discrimination at all.
BOX_FILL = (255, 255, 255)
BOX_EDGE = (0, 0, 0)
LEGEND_BACKDROP = 128

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


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


MAX_FONT_SIZE = 96


def font_size(width: int) -> int:
    """Header and footer text size for a picture ``width`` wide: readable at 256 px and at 4000 px.

    Capped: a very wide image (60000 x 17) would otherwise ask for glyphs so large that Pillow
    refuses to draw them.
    """
    return max(11, min(round(width / 45), MAX_FONT_SIZE))


def header_height(width: int) -> int:
    """Rows above the image area: caption, and the legend's label over its colour bar."""
    return 3 * font_size(width)


def footer_height(width: int) -> int:
    """Rows of the banner band below the image area (present only when a banner is given)."""
    return round(1.8 * font_size(width))


def side_by_side_gap(width: int) -> int:
    """Columns between the original and the overlay in a side-by-side picture of a ``width`` image."""
    return max(4, round(width / 64))


def render_overlay(
    pixels: np.ndarray,
    heatmap: np.ndarray,
    *,
    caption: str,
    banner: str | None = None,
    opacity: float = DEFAULT_OPACITY,
    regions: Sequence[Region] = (),
) -> Image.Image:
    """The heatmap blended over the image at its original resolution, with header and footer bands.

    ``pixels`` is display-ready float in [0, 1], (H, W) or (H, W, 3); ``heatmap`` is in [0, 1] at the
    image's aspect ratio, any grid size. Each pixel gets ``alpha = opacity * heatmap``, so where the
    map is low the anatomy shows through untouched.
    """
    blended = _blend(_to_rgb(pixels), heatmap, opacity)
    _draw_regions(blended, regions)
    return _compose([blended], caption, banner, opacity)


def render_side_by_side(
    pixels: np.ndarray,
    heatmap: np.ndarray,
    *,
    caption: str,
    banner: str | None = None,
    opacity: float = DEFAULT_OPACITY,
    regions: Sequence[Region] = (),
) -> Image.Image:
    """The original (left) and the overlay (right), same size, under one header and over one footer."""
    original = _to_rgb(pixels)
    blended = _blend(original, heatmap, opacity)
    _draw_regions(blended, regions)
    return _compose([Image.fromarray(original), blended], caption, banner, opacity)


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)) or 0 in pixels.shape:
        raise BadInput(f"overlay pixels must be (H, W) or (H, W, 3), got shape {pixels.shape}")
    image = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image


def _blend(rgb: np.ndarray, heatmap: np.ndarray, opacity: float) -> Image.Image:
    if not 0.0 <= opacity <= 1.0:
        raise BadInput(f"overlay opacity {opacity} is outside the allowed range [0, 1]")
    if heatmap.ndim != 2 or 0 in heatmap.shape:
        raise BadInput(f"heatmap must be 2-D, got shape {heatmap.shape}")
    height, width = rgb.shape[:2]
    mask: np.ndarray = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    np.clip(mask, 0.0, 1.0, out=mask)
    colours = COLORMAP_LUT[np.rint(mask * 255.0).astype(np.uint8)]
    mask *= opacity
    # Per-pixel weights in C++: ~0.1 s at 4000 x 4000, where numpy float blending takes ~1 s.
    # With weight 0 the original comes back exactly (and with weight 1 the pure colormap colour).
    blended = cv2.blendLinear(colours, rgb, mask, 1.0 - mask)
    return Image.fromarray(blended)


@lru_cache(maxsize=32)
def _font(size: int) -> _Font:
    return ImageFont.load_default(size=size)


def _draw_regions(image: Image.Image, regions: Sequence[Region]) -> None:
    """Outline each box (original pixels) and put its number beside the top-left corner, inside the image."""
    if not regions:
        return
    draw = ImageDraw.Draw(image)
    long_side = max(image.size)
    line = max(2, round(long_side / 400))
    edge = max(1, line // 3)
    font = _font(max(12, round(long_side / 45)))
    stroke = max(1, font.size // 8) if isinstance(font, ImageFont.FreeTypeFont) else 1
    for region in regions:
        x, y, w, h = region.box
        right, bottom = x + max(w, 1) - 1, y + max(h, 1) - 1
        # PIL draws outlines inwards: a wider black outline first, the white core over its middle.
        draw.rectangle(
            (x - edge, y - edge, right + edge, bottom + edge), outline=BOX_EDGE, width=line + 2 * edge
        )
        draw.rectangle((x, y, right, bottom), outline=BOX_FILL, width=line)
        label = str(region.index)
        left, top, text_right, text_bottom = (
            round(v) for v in draw.textbbox((0, 0), label, font=font, stroke_width=stroke)
        )
        text_w, text_h = text_right - left, text_bottom - top
        # Just above the corner; inside the box's top-left when there is no room above.
        tx, ty = x, y - edge - text_h - line
        if ty < 0:
            tx, ty = x + line + edge + 1, y + line + edge + 1
        tx = min(max(tx, 0), image.width - text_w)
        ty = min(max(ty, 0), image.height - text_h)
        draw.text(
            (tx - left, ty - top), label, font=font, fill=BOX_FILL, stroke_width=stroke, stroke_fill=BOX_EDGE
        )


def _compose(pictures: list[Image.Image], caption: str, banner: str | None, opacity: float) -> Image.Image:
    picture_w, picture_h = pictures[0].size
    gap = side_by_side_gap(picture_w)
    width = len(pictures) * picture_w + (len(pictures) - 1) * gap
    top = header_height(width)
    bottom = footer_height(width) if banner else 0
    canvas = Image.new("RGB", (width, top + picture_h + bottom), HEADER_FILL)
    for i, picture in enumerate(pictures):
        canvas.paste(picture, (i * (picture_w + gap), top))
    draw = ImageDraw.Draw(canvas)
    size = font_size(width)
    font = _font(size)
    pad = size // 2
    legend_left = _draw_legend(canvas, draw, font, size, pad, opacity)
    text = _ellipsize(draw, caption, font, legend_left - 2 * pad)
    draw.text((pad, top / 2), text, font=font, fill=TEXT_FILL, anchor="lm")
    if banner:
        draw.rectangle((0, top + picture_h, width, canvas.height), fill=BANNER_FILL)
        text = _ellipsize(draw, banner, font, width - 2 * pad)
        draw.text((pad, top + picture_h + bottom / 2), text, font=font, fill=TEXT_FILL, anchor="lm")
    return canvas


def _draw_legend(
    canvas: Image.Image, draw: ImageDraw.ImageDraw, font: _Font, size: int, pad: int, opacity: float
) -> int:
    """'attribution' over a cividis bar between 'low' and 'high', at the right; returns its left x."""
    bar_w = max(round(draw.textlength("attribution", font=font)), round(canvas.width * 0.18))
    bar_h = round(0.8 * size)
    high_w = round(draw.textlength("high", font=font))
    low_w = round(draw.textlength("low", font=font))
    bar_x = canvas.width - pad - high_w - pad // 2 - bar_w
    bar_y = round(1.7 * size)
    # The bar is blended exactly as the image is, over mid grey at this opacity, so the colours the
    # reader matches are the ones in the picture (low values show the anatomy, not dark blue).
    ramp = np.linspace(0.0, 1.0, bar_w, dtype=np.float32)[None]
    bar = _blend(np.full((1, bar_w, 3), LEGEND_BACKDROP, dtype=np.uint8), ramp, opacity)
    canvas.paste(bar.resize((bar_w, bar_h), Image.Resampling.NEAREST), (bar_x, bar_y))
    # A grey frame marks the bar's ends against the black header.
    draw.rectangle((bar_x - 1, bar_y - 1, bar_x + bar_w, bar_y + bar_h), outline=(128, 128, 128))
    middle = bar_y + bar_h / 2
    draw.text((bar_x - pad // 2, middle), "low", font=font, fill=TEXT_FILL, anchor="rm")
    draw.text((bar_x + bar_w + pad // 2, middle), "high", font=font, fill=TEXT_FILL, anchor="lm")
    draw.text((bar_x + bar_w / 2, round(0.85 * size)), "attribution", font=font, fill=TEXT_FILL, anchor="mm")
    return bar_x - pad // 2 - low_w


def _ellipsize(draw: ImageDraw.ImageDraw, text: str, font: _Font, max_width: float) -> str:
    """``text``, cut and ended with an ellipsis where it would be wider than ``max_width``."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    # Binary search on the kept length: long captions would otherwise cost one measurement per character.
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if draw.textlength(text[:middle].rstrip() + "…", font=font) <= max_width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…" if low else ""
