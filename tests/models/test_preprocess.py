from __future__ import annotations

import numpy as np
import pytest

from sahay.models.bundle import InputSpec
from sahay.models.preprocess import CropBox, crop_box_for, preprocess, to_channels


def test_center_crop_keeps_the_central_square_of_the_short_side() -> None:
    spec = InputSpec(size=8, channels=1, resize="center_crop")
    assert crop_box_for((100, 60), spec) == CropBox(top=20, left=0, height=60, width=60)
    assert crop_box_for((60, 100), spec) == CropBox(top=0, left=20, height=60, width=60)


def test_xrv_range_maps_black_and_white_to_minus_and_plus_1024() -> None:
    spec = InputSpec(size=4, channels=1, resize="center_crop", value_range=(-1024, 1024))
    pixels = np.zeros((8, 16), dtype=np.float32)
    pixels[:, 8:] = 1.0  # the central 8x8 square: left half black, right half white
    tensor, box = preprocess(pixels, spec)
    assert tensor.shape == (1, 4, 4)
    assert box == CropBox(0, 4, 8, 8)
    assert tensor[0, :, 0].tolist() == [-1024.0] * 4
    assert tensor[0, :, 3].tolist() == [1024.0] * 4


def test_mean_and_std_are_applied_per_channel() -> None:
    spec = InputSpec(size=2, channels=3, resize="stretch", mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    tensor, _ = preprocess(np.full((2, 2), 0.5, dtype=np.float32), spec)
    assert tensor[:, 0, 0].tolist() == pytest.approx([0.0, 1.0, 0.5])


def test_channel_conversion_uses_luma_for_colour_and_repeats_grey() -> None:
    rgb = np.zeros((1, 1, 3), dtype=np.float32)
    rgb[0, 0] = (1.0, 0.0, 0.0)
    assert to_channels(rgb, 1)[0, 0, 0] == pytest.approx(0.299)
    grey = np.full((2, 2), 0.3, dtype=np.float32)
    assert to_channels(grey, 3).shape == (2, 2, 3)
    assert np.all(to_channels(grey, 3) == np.float32(0.3))


def test_mismatched_mean_length_is_refused() -> None:
    with pytest.raises(ValueError, match=r"input\.mean has 3 values for 1 channel"):
        InputSpec(size=2, channels=1, resize="stretch", mean=(0.1, 0.2, 0.3))
