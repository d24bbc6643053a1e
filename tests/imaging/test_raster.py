"""PNG, JPEG and TIFF reading: bit depths, modes, EXIF orientation, pages, truncation, limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from sahay.config import Settings
from sahay.errors import BadInput, InputTooLarge, UnsupportedFormat
from sahay.imaging import read_image
from tests.factories import write_jpeg, write_png, write_tiff

GREY_8 = np.array([[0, 1, 128], [200, 254, 255]], dtype=np.uint8)
GREY_16 = np.array([[0, 1, 4095], [30000, 65534, 65535]], dtype=np.uint16)


def colour_blocks() -> np.ndarray:
    """A 16x16 RGB image of four flat blocks: red, green, blue, white (JPEG-friendly)."""
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[:8, :8] = (255, 0, 0)
    image[:8, 8:] = (0, 255, 0)
    image[8:, :8] = (0, 0, 255)
    image[8:, 8:] = (255, 255, 255)
    return image


def test_8_bit_grey_png_is_exactly_value_over_255(tmp_path: Path) -> None:
    image = read_image(write_png(tmp_path / "g.png", GREY_8))

    np.testing.assert_array_equal(image.pixels, GREY_8.astype(np.float32) / np.float32(255))
    assert image.pixels.dtype == np.float32
    info = image.info
    assert (info.format, info.rows, info.columns, info.channels, info.bits_stored) == ("png", 2, 3, 1, 8)
    assert info.modality is None and info.identifiers is None and info.window is None


def test_16_bit_png_uses_the_full_16_bit_range_not_min_max(tmp_path: Path) -> None:
    low_values = np.array([[100, 200], [300, 4095]], dtype=np.uint16)  # a 12-bit image in 16 bits
    image = read_image(write_png(tmp_path / "g16.png", low_values))

    np.testing.assert_allclose(image.pixels, low_values / 65535, rtol=1e-6)
    assert image.pixels.max() < 0.1  # min..max scaling would have given 1.0
    assert image.info.bits_stored == 16

    full = read_image(write_png(tmp_path / "full.png", GREY_16)).pixels
    np.testing.assert_allclose(full, GREY_16 / 65535, rtol=1e-6)


def test_16_bit_tiff(tmp_path: Path) -> None:
    image = read_image(write_tiff(tmp_path / "g16.tif", GREY_16))

    np.testing.assert_allclose(image.pixels, GREY_16 / 65535, rtol=1e-6)
    assert (image.info.format, image.info.bits_stored, image.info.channels) == ("tiff", 16, 1)


def test_big_endian_16_bit_tiff(tmp_path: Path) -> None:
    path = tmp_path / "be.tif"
    Image.frombytes("I;16B", (3, 2), GREY_16.astype(">u2").tobytes()).save(path, format="TIFF")
    assert path.read_bytes()[:4] == b"MM\x00*"  # a big-endian ("Motorola") TIFF

    np.testing.assert_allclose(read_image(path).pixels, GREY_16 / 65535, rtol=1e-6)


def test_rgb_jpeg_is_close_to_the_original(tmp_path: Path) -> None:
    original = colour_blocks()
    image = read_image(write_jpeg(tmp_path / "c.jpg", original))

    assert image.pixels.shape == (16, 16, 3)
    assert (image.info.format, image.info.channels, image.info.bits_stored) == ("jpeg", 3, 8)
    np.testing.assert_allclose(image.pixels[2:6, 2:6], np.broadcast_to([1.0, 0.0, 0.0], (4, 4, 3)), atol=0.05)
    np.testing.assert_allclose(image.pixels[10:14, 10:14], np.ones((4, 4, 3)), atol=0.05)
    assert np.abs(image.pixels - original / 255).mean() < 0.03


def test_rgb_png_with_equal_channels_becomes_greyscale(tmp_path: Path) -> None:
    image = read_image(write_png(tmp_path / "grey_rgb.png", np.stack([GREY_8] * 3, axis=-1)))

    assert image.pixels.shape == (2, 3)
    assert image.info.channels == 1
    np.testing.assert_array_equal(image.pixels, GREY_8.astype(np.float32) / np.float32(255))


def test_rgba_png_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 255, 51, 0
    rgba[..., 3] = [[0, 128], [255, 10]]  # alpha must not affect the colour
    image = read_image(write_png(tmp_path / "rgba.png", rgba))

    assert image.pixels.shape == (2, 2, 3)
    np.testing.assert_allclose(image.pixels, np.broadcast_to([1.0, 0.2, 0.0], (2, 2, 3)), atol=1e-6)


def test_grey_with_alpha_png_keeps_the_grey(tmp_path: Path) -> None:
    image = read_image(write_png(tmp_path / "la.png", np.stack([GREY_8, np.full_like(GREY_8, 7)], axis=-1)))

    np.testing.assert_array_equal(image.pixels, GREY_8.astype(np.float32) / np.float32(255))


def test_palette_png_is_converted_through_its_palette(tmp_path: Path) -> None:
    path = write_png(tmp_path / "p.png", colour_blocks(), mode="P")

    np.testing.assert_allclose(read_image(path).pixels, colour_blocks() / 255, atol=1e-6)


def test_one_bit_png(tmp_path: Path) -> None:
    bits = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    image = read_image(write_png(tmp_path / "b.png", bits, mode="1"))

    np.testing.assert_array_equal(image.pixels, [[0.0, 1.0], [1.0, 0.0]])
    assert image.info.bits_stored == 1


@pytest.mark.parametrize(
    ("orientation", "bright_corner", "dark_corner"),
    [
        (6, (0, -1), (-1, 0)),  # 6: turn clockwise to display, the stored top-left goes top-right
        (8, (-1, 0), (0, -1)),  # 8: turn anticlockwise, the stored top-left goes bottom-left
    ],
)
def test_exif_orientation_is_applied(
    tmp_path: Path, orientation: int, bright_corner: tuple[int, int], dark_corner: tuple[int, int]
) -> None:
    # 32 wide x 16 tall, dark, with a bright 8x8 block in the stored top-left corner.
    stored = np.zeros((16, 32), dtype=np.uint8)
    stored[:8, :8] = 255
    image = read_image(
        write_jpeg(tmp_path / "o.jpg", np.stack([stored] * 3, axis=-1), orientation=orientation)
    )

    assert image.pixels.shape[:2] == (32, 16)  # a quarter turn: now 16 wide x 32 tall
    assert (image.info.rows, image.info.columns) == (32, 16)
    assert image.pixels[bright_corner].mean() > 0.9
    assert image.pixels[dark_corner].mean() < 0.1


def test_multi_page_tiff_reads_the_first_page_and_warns(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "pages.tif", GREY_8, np.full_like(GREY_8, 9), np.full_like(GREY_8, 99))
    image = read_image(path)

    np.testing.assert_array_equal(image.pixels, GREY_8.astype(np.float32) / np.float32(255))
    assert (image.info.number_of_frames, image.info.frame_index) == (3, 0)
    assert image.warnings == ("multi-page TIFF: page 1 of 3 was analysed",)


def test_float_tiff_is_unsupported(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "f.tif", np.array([[0.5, 2.0]], dtype=np.float32))

    with pytest.raises(UnsupportedFormat, match=r"f\.tif.*'F'"):
        read_image(path)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_file_is_bad_input(tmp_path: Path, suffix: str) -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    path = write_png(tmp_path / "t.png", noisy) if suffix == "png" else write_jpeg(tmp_path / "t.jpg", noisy)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(BadInput, match=rf"t\.{suffix}.*truncated or corrupt"):
        read_image(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_png(tmp_path / "big.png", np.zeros((20, 30), dtype=np.uint8))

    def must_not_decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    with pytest.raises(InputTooLarge, match=r"big\.png is 30x20 = 600 pixels.*100 pixels.*SAHAY_MAX_PIXELS"):
        read_image(path, settings=Settings(max_pixels=100))


def test_pillow_decompression_bomb_is_input_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_png(tmp_path / "bomb.png", np.zeros((20, 30), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 600 > 2 x 100: Pillow refuses to open it

    with pytest.raises(InputTooLarge, match=r"bomb\.png"):
        read_image(path)


def test_tiff_page_without_dimensions_is_bad_input(tmp_path: Path) -> None:
    """Found by tests/fuzz: Pillow raises TypeError("Missing dimensions") when it counts the pages."""
    path = write_tiff(tmp_path / "pages.tif", GREY_8, GREY_8)
    data = bytearray(path.read_bytes())
    first = int.from_bytes(data[4:8], "little")
    second = int.from_bytes(
        data[first + 2 + 12 * int.from_bytes(data[first : first + 2], "little") :][:4], "little"
    )
    for index in range(int.from_bytes(data[second : second + 2], "little")):
        entry = second + 2 + 12 * index
        if int.from_bytes(data[entry : entry + 2], "little") in (256, 257):  # ImageWidth, ImageLength
            data[entry : entry + 2] = (0xC000 + index).to_bytes(2, "little")  # no longer either
    path.write_bytes(bytes(data))

    with pytest.raises(BadInput, match=r"pages\.tif could not be decoded.*Missing dimensions"):
        read_image(path)
