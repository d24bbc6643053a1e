"""Lung-field detection on drawn chest phantoms, and its refusals on images that are not chests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sahay.explain.lungs import WORKING_SIDE, detect_lung_fields
from tests.factories import Box, chest_phantom


def _assert_box_close(found: Box, drawn: Box, tolerance: float = 0.02) -> None:
    assert np.allclose(found, drawn, atol=tolerance), (found, drawn)


@pytest.mark.parametrize(
    ("rows", "columns", "noise"),
    [(800, 700, 0.02), (600, 900, 0.02), (1200, 1000, 0.06), (300, 256, 0.0)],
)
def test_finds_the_drawn_lungs(rows: int, columns: int, noise: float) -> None:
    phantom = chest_phantom(rows, columns, noise=noise)
    fields = detect_lung_fields(phantom.pixels)
    assert fields is not None
    _assert_box_close(fields.image_left, phantom.image_left)
    _assert_box_close(fields.image_right, phantom.image_right)
    assert fields.midline_x == pytest.approx(phantom.midline_x, abs=0.01)


def test_the_mask_is_both_lungs_at_the_working_scale() -> None:
    phantom = chest_phantom(800, 600)
    fields = detect_lung_fields(phantom.pixels)
    assert fields is not None
    assert fields.mask.dtype == bool
    assert fields.mask.shape == (WORKING_SIDE, 192)
    # Two ellipses with semi-axes 0.13 x 0.28 of the image each: 2 * pi * 0.13 * 0.28 of its area.
    assert fields.mask.mean() == pytest.approx(2 * np.pi * 0.13 * 0.28, rel=0.1)
    left_half, right_half = np.hsplit(fields.mask, 2)
    assert left_half.sum() == pytest.approx(right_half.sum(), rel=0.05)


def test_colour_input_gives_the_same_lungs() -> None:
    phantom = chest_phantom()
    grey = detect_lung_fields(phantom.pixels)
    colour = detect_lung_fields(np.repeat(phantom.pixels[..., None], 3, axis=2))
    assert grey is not None and colour is not None
    assert colour.image_left == grey.image_left and colour.image_right == grey.image_right


def test_lungs_off_centre_keep_their_own_boxes() -> None:
    phantom = chest_phantom(lung_centre_y=0.35, lung_half_height=0.2, lung_half_width=0.1, lung_offset=0.18)
    fields = detect_lung_fields(phantom.pixels)
    assert fields is not None
    _assert_box_close(fields.image_left, phantom.image_left)
    _assert_box_close(fields.image_right, phantom.image_right)


def test_a_large_dark_background_does_not_hide_the_lungs() -> None:
    # Most of the image is air: Otsu over the whole image splits air from everything else.
    phantom = chest_phantom(700, 700)
    canvas = np.full((1000, 1500), 0.05, dtype=np.float32)
    canvas[150:850, 400:1100] = phantom.pixels
    fields = detect_lung_fields(canvas)
    assert fields is not None
    assert fields.image_left[0] == pytest.approx((400 + phantom.image_left[0] * 700) / 1500, abs=0.02)
    assert fields.image_left[1] == pytest.approx((150 + phantom.image_left[1] * 700) / 1000, abs=0.02)
    assert fields.midline_x == pytest.approx(0.5, abs=0.01)


def test_flat_image() -> None:
    assert detect_lung_fields(np.full((512, 400), 0.4, dtype=np.float32)) is None
    assert detect_lung_fields(np.zeros((512, 400), dtype=np.float32)) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise(seed: int) -> None:
    noise = np.random.default_rng(seed).random((512, 512)).astype(np.float32)
    assert detect_lung_fields(noise) is None


def test_a_single_dark_blob() -> None:
    image = np.full((600, 500), 0.7, dtype=np.float32)
    cv2.ellipse(image, (250, 300), (120, 200), 0, 0, 360, (0.2,), -1)
    assert detect_lung_fields(image) is None


def test_one_lung_only() -> None:
    assert detect_lung_fields(chest_phantom(lungs=(True, False)).pixels) is None


def test_a_lung_open_to_the_outside_air_is_not_guessed() -> None:
    phantom = chest_phantom(800, 700)
    pixels = phantom.pixels.copy()
    # A wide dark channel from the image-left lung to the air beside the trunk.
    pixels[330:450, :200] = 0.05
    assert detect_lung_fields(pixels) is None


def test_thin_strips_and_single_pixels_have_no_lungs() -> None:
    assert detect_lung_fields(chest_phantom(30, 900, noise=0.0).pixels) is None
    assert detect_lung_fields(np.zeros((1, 1), dtype=np.float32)) is None


def test_non_finite_pixels_do_not_raise() -> None:
    pixels = chest_phantom().pixels.copy()
    pixels[:5, :5] = np.nan
    assert detect_lung_fields(pixels) is not None


@pytest.mark.parametrize("shape", [(10,), (4, 4, 4), (2, 3, 3, 3), (0, 5)])
def test_arrays_that_are_not_images_raise(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="expected an"):
        detect_lung_fields(np.zeros(shape, dtype=np.float32))
