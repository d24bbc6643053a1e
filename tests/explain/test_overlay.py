"""Overlays: cividis blended at the original resolution, bands above and below, boxes where regions are."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sahay.analysis import Region
from sahay.errors import BadInput
from sahay.explain.overlay import (
    BANNER_FILL,
    COLORMAP_LUT,
    footer_height,
    header_height,
    render_overlay,
    render_side_by_side,
    side_by_side_gap,
)

H, W = 300, 420  # non-square on purpose
GRID = (100, 140)  # the heatmap's own, smaller grid at the image's aspect ratio


def _pixels(rgb: bool = False) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.uniform(0.1, 0.9, size=(H, W, 3) if rgb else (H, W)).astype(np.float32)


def _as_uint8_rgb(pixels: np.ndarray) -> np.ndarray:
    image = np.rint(pixels * 255).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _heatmap() -> np.ndarray:
    """0 on the left half of the grid, 1 on the right half."""
    heatmap = np.zeros(GRID, dtype=np.float32)
    heatmap[:, GRID[1] // 2 :] = 1.0
    return heatmap


def _image_area(picture: Image.Image, left: int = 0) -> np.ndarray:
    top = header_height(picture.width)
    return np.asarray(picture)[top : top + H, left : left + W].astype(int)


def _region(index: int, box: tuple[int, int, int, int]) -> Region:
    return Region(index=index, box=box, mass_share=0.5, peak=1.0, grid="centre", location="centre")


@pytest.mark.parametrize("rgb", [False, True])
def test_image_area_keeps_resolution_and_zero_attribution_keeps_pixels(rgb: bool) -> None:
    pixels = _pixels(rgb)
    picture = render_overlay(pixels, _heatmap(), caption="Effusion: p=0.70")
    assert picture.mode == "RGB"
    assert picture.size == (W, header_height(W) + H)
    # Away from the 0-to-1 edge (which linear interpolation softens) the image is untouched.
    np.testing.assert_array_equal(
        _image_area(picture)[:, : W // 2 - 10], _as_uint8_rgb(pixels)[:, : W // 2 - 10]
    )


@pytest.mark.parametrize("opacity", [0.3, 0.5, 1.0])
def test_full_attribution_is_cividis_top_colour_at_the_opacity(opacity: float) -> None:
    pixels = _pixels()
    picture = render_overlay(pixels, _heatmap(), caption="x", opacity=opacity)
    area = _image_area(picture)[:, W // 2 + 10 :]
    expected = (1 - opacity) * _as_uint8_rgb(pixels)[:, W // 2 + 10 :] + opacity * COLORMAP_LUT[255]
    assert np.abs(area - expected).max() <= 1


def test_opacity_zero_leaves_the_image_unchanged() -> None:
    pixels = _pixels()
    picture = render_overlay(pixels, np.ones(GRID, dtype=np.float32), caption="x", opacity=0.0)
    np.testing.assert_array_equal(_image_area(picture), _as_uint8_rgb(pixels))


@pytest.mark.parametrize("opacity", [1.5, -0.1])
def test_opacity_outside_zero_to_one_is_bad_input(opacity: float) -> None:
    for render in (render_overlay, render_side_by_side):
        with pytest.raises(BadInput, match=rf"{opacity}.*\[0, 1\]"):
            render(_pixels(), _heatmap(), caption="x", opacity=opacity)


def test_banner_band_only_when_given() -> None:
    pixels = np.full((H, W), 0.5, dtype=np.float32)
    plain = render_overlay(pixels, _heatmap(), caption="x")
    with_banner = render_overlay(pixels, _heatmap(), caption="x", banner="DEMONSTRATION MODEL")
    assert plain.height == header_height(W) + H
    assert with_banner.height == header_height(W) + H + footer_height(W)
    assert not np.all(np.asarray(plain)[-1] == BANNER_FILL, axis=-1).any()
    band = np.asarray(with_banner)[-footer_height(W) :].reshape(-1, 3)
    red = np.all(band == BANNER_FILL, axis=1).mean()
    white = (band.min(axis=1) > 200).mean()  # anti-aliased: few glyph pixels are exactly 255
    assert red > 0.6 and white > 0.005  # red band with white text
    # The image itself is not covered by the band.
    np.testing.assert_array_equal(_image_area(with_banner), _image_area(plain))


def test_region_box_is_drawn_at_original_pixel_coordinates() -> None:
    pixels = np.full((H, W), 0.5, dtype=np.float32)
    x, y, w, h = 200, 100, 80, 60
    picture = render_overlay(
        pixels, np.zeros(GRID, np.float32), caption="x", regions=[_region(1, (x, y, w, h))]
    )
    area = _image_area(picture)
    white, black, grey = [255] * 3, [0] * 3, [128] * 3
    for row, col in [(y + h // 2, x), (y + h // 2, x + w - 1), (y, x + w // 2), (y + h - 1, x + w // 2)]:
        assert area[row, col].tolist() == white
    assert area[y + h // 2, x - 1].tolist() == black  # thin dark edge outside the white line
    assert area[y + h // 2, x + w // 2].tolist() == grey  # inside is the image
    assert area[y + h // 2, x - 20].tolist() == grey  # and so is outside
    # The index number sits by the top-left corner, above the box.
    label = area[y - 25 : y - 1, x : x + 25]
    assert (label.min(axis=-1) > 200).any()


def test_region_label_stays_inside_the_image() -> None:
    pixels = np.full((H, W), 0.5, dtype=np.float32)
    boxes = [(0, 0, 30, 30), (W - 10, H - 10, 10, 10)]
    regions = [_region(i + 1, box) for i, box in enumerate(boxes)]
    picture = render_overlay(pixels, np.zeros(GRID, np.float32), caption="x", regions=regions)
    # Header untouched by the box at the very top: its bottom rows stay black.
    header = np.asarray(picture)[: header_height(W)]
    assert (header[-2:] == 0).all()
    # The first box's number went inside it, below its top edge.
    inside = _image_area(picture)[5:25, 5:25]
    assert (inside.min(axis=-1) > 200).any()


def test_side_by_side_shows_the_original_next_to_the_overlay() -> None:
    pixels = _pixels()
    regions = [_region(1, (250, 100, 60, 50))]
    picture = render_side_by_side(pixels, _heatmap(), caption="x", banner="demo", regions=regions)
    gap = side_by_side_gap(W)
    width = 2 * W + gap
    assert picture.size == (width, header_height(width) + H + footer_height(width))
    np.testing.assert_array_equal(_image_area(picture), _as_uint8_rgb(pixels))
    overlay = render_overlay(pixels, _heatmap(), caption="x", regions=regions)
    np.testing.assert_array_equal(_image_area(picture, left=W + gap), _image_area(overlay))


def test_long_caption_is_cut_before_the_legend() -> None:
    pixels = _pixels()
    short = np.asarray(render_overlay(pixels, _heatmap(), caption="x"))
    long = np.asarray(render_overlay(pixels, _heatmap(), caption="Pneumothorax " * 40))
    legend = slice(int(W * 0.7), W)
    np.testing.assert_array_equal(long[: header_height(W), legend], short[: header_height(W), legend])
    assert (long[: header_height(W), : W // 2].min(axis=-1) > 200).any()  # the caption is there


def test_text_bands_grow_with_the_image() -> None:
    assert header_height(256) >= 30 and footer_height(256) >= 18
    assert header_height(3000) > 5 * header_height(256)
    big = np.zeros((2000, 1500), dtype=np.float32)
    picture = render_overlay(big, np.zeros((512, 384), np.float32), caption="x", banner="demo")
    assert picture.size == (1500, header_height(1500) + 2000 + footer_height(1500))


def test_colormap_is_cividis_not_jet() -> None:
    assert COLORMAP_LUT.shape == (256, 3) and COLORMAP_LUT.dtype == np.uint8
    low, high = COLORMAP_LUT[0].astype(int), COLORMAP_LUT[255].astype(int)
    assert low[2] > low[0] and low[2] > low[1] and low.sum() < 150  # dark blue
    assert high[0] > 200 and high[1] > 200 and high[2] < 100  # yellow, where jet ends in dark red
    luma = COLORMAP_LUT.astype(float) @ [0.2126, 0.7152, 0.0722]
    assert np.diff(luma).min() >= -0.5 and luma[-1] - luma[0] > 150  # lightness only rises


def test_a_very_wide_image_gets_an_overlay_with_readable_text() -> None:
    # 60000 x 17: uncapped, the caption's glyphs were so large that Pillow refused them (a 500 in the API).
    from sahay.explain.overlay import MAX_FONT_SIZE, font_size, render_overlay

    pixels = np.linspace(0, 1, 17 * 60000, dtype=np.float32).reshape(17, 60000)
    picture = render_overlay(
        pixels, pixels, caption="Finding: p=0.90", banner="DEMO", opacity=0.5, regions=[]
    )
    assert picture.width == 60000 and font_size(60000) == MAX_FONT_SIZE
