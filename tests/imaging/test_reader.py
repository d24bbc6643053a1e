"""read_image as a whole: sniffing by content, limits, sha256, the LoadedImage contract."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import sahay.imaging.reader as reader
from sahay.config import Settings
from sahay.errors import BadInput, InputTooLarge
from sahay.imaging import LoadedImage, read_image
from tests.factories import write_dicom, write_jpeg, write_png, write_tiff

GREY = np.array([[0, 51, 255]], dtype=np.uint8)


def test_loaded_image_contract(tmp_path: Path) -> None:
    path = write_png(tmp_path / "scan.png", GREY)
    image = read_image(str(path))  # str paths work as well as Path

    assert isinstance(image, LoadedImage)
    assert image.pixels.dtype == np.float32
    assert image.pixels.min() >= 0.0 and image.pixels.max() <= 1.0
    assert isinstance(image.warnings, tuple)
    assert image.info.filename == "scan.png"  # the base name, never the directory
    assert image.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.warnings = ("changed",)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("writer", "expected"),
    [
        (lambda p: write_dicom(p, GREY.astype(np.uint16), bits_stored=8), "dicom"),
        (lambda p: write_png(p, GREY), "png"),
        (lambda p: write_jpeg(p, np.stack([GREY] * 3, axis=-1)), "jpeg"),
        (lambda p: write_tiff(p, GREY), "tiff"),
    ],
)
def test_format_comes_from_content_not_extension(
    tmp_path: Path, writer: Callable[[Path], Path], expected: str
) -> None:
    path = writer(tmp_path / "misnamed.txt")

    assert read_image(path).info.format == expected


def test_dicom_named_png_is_read_as_dicom(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "really_dicom.png", GREY.astype(np.uint16) * 16, window=(400, 800))

    image = read_image(path)

    assert image.info.format == "dicom"
    assert image.info.window == (400.0, 800.0)


def test_text_file_named_dcm_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_text("Patient notes: this is not an image\n" * 10)

    with pytest.raises(BadInput, match=r"x\.dcm is not a DICOM, PNG, JPEG or TIFF file"):
        read_image(path)


def test_short_binary_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "tiny.bin"
    path.write_bytes(b"\x08\x00")

    with pytest.raises(BadInput, match=r"tiny\.bin is not a DICOM, PNG, JPEG or TIFF file"):
        read_image(path)


def test_empty_file_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")

    with pytest.raises(BadInput, match=r"empty\.dcm is empty"):
        read_image(path)


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"nowhere\.png does not exist"):
        read_image(tmp_path / "nowhere.png")


def test_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"is not a file"):
        read_image(tmp_path)


def test_oversize_file_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))

    def must_not_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened before its size was checked")

    monkeypatch.setattr(Path, "open", must_not_open)
    with pytest.raises(InputTooLarge) as caught:
        read_image(path, settings=Settings(max_file_mb=0.001))

    message = str(caught.value)
    assert "huge.png is 2,008 bytes" in message
    assert "1,048 bytes" in message  # the limit, 0.001 MB
    assert "SAHAY_MAX_FILE_MB" in message


def test_file_at_the_size_limit_is_accepted(tmp_path: Path) -> None:
    path = write_png(tmp_path / "ok.png", GREY)
    limit_mb = path.stat().st_size / (1024 * 1024)

    assert read_image(path, settings=Settings(max_file_mb=limit_mb)).info.format == "png"


def test_settings_default_to_get_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "get_settings", lambda: Settings(max_pixels=2))

    with pytest.raises(InputTooLarge, match="SAHAY_MAX_PIXELS"):
        read_image(write_png(tmp_path / "three.png", GREY))


def test_unreadable_paths_are_bad_input(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(BadInput, match="cannot be read"):
        read_image(loop)
    with pytest.raises(BadInput, match="is not a file"):
        read_image(tmp_path)
