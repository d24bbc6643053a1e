"""Read one image file: limits, format sniffing by content, sha256, dispatch to DICOM or Pillow."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from sahay.analysis import ImageFormat, ImageInfo
from sahay.config import Settings, get_settings
from sahay.errors import BadInput, InputTooLarge, UnsupportedFormat
from sahay.fileio import check_input_file
from sahay.imaging.dicom import OpenedDicom, open_dicom
from sahay.imaging.dicom_parse import parse_dicom
from sahay.imaging.header import looks_like_dicom
from sahay.imaging.raster import OpenedRaster, open_raster, sniff_raster

_MB = 1024 * 1024


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image, ready for a model.

    ``pixels`` is float32 in [0, 1], shape (H, W) for greyscale or (H, W, 3) for RGB, with bright
    meaning dense (bone bright). ``warnings`` are human-readable notes about what was done.
    """

    pixels: np.ndarray
    info: ImageInfo
    warnings: tuple[str, ...]


def read_image(
    path: str | os.PathLike[str],
    *,
    keep_identifiers: bool = False,
    settings: Settings | None = None,
    window: tuple[float, float] | None = None,
) -> LoadedImage:
    """Read a DICOM, PNG, JPEG or TIFF file into display-ready pixels and its ImageInfo.

    The format is decided by the file's content, not its extension. Limits come from ``settings``
    (default: ``get_settings()``): the file size is checked before reading, what a deflated DICOM
    dataset inflates to while inflating it (the same limit), the pixel count before decoding.
    Patient identifiers are kept in ``info.identifiers`` only when ``keep_identifiers``.
    ``window`` (center, width) overrides a greyscale DICOM's own window, for viewers.
    Raises BadInput (or its subclasses InputTooLarge, UnsupportedFormat) with a message naming the file.

    Example::

        image = read_image("chest.dcm")
        image.pixels.shape, image.info.modality, image.warnings  # ((2048, 2048), 'CR', ())
    """
    settings = get_settings() if settings is None else settings
    path = Path(path)
    data = _read_within_limit(path, settings)
    opened = _open(data, path.name, settings)
    _check_pixel_limit(path.name, opened.rows, opened.columns, settings)
    # hashlib releases the GIL on large buffers: the file's sha256 is computed while it decodes.
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(_sha256, data)
        pixels, info, warnings = opened.decode(sha256="", keep_identifiers=keep_identifiers, window=window)
        info = info.model_copy(update={"sha256": digest.result()})
    if not np.isfinite(pixels).all():
        raise BadInput(f"{path.name} decodes to non-finite pixel values; the file is corrupt.")
    return LoadedImage(pixels=pixels, info=info, warnings=tuple(warnings))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_dicom_dataset(path: str | os.PathLike[str], *, settings: Settings | None = None) -> Dataset:
    """Parse a DICOM file into a pydicom Dataset, within the limits ``read_image`` applies.

    For code that needs the whole dataset rather than pixels (an archive pull, a report):
    unlike ``pydicom.dcmread``, it refuses a file over the size limit, a deflated dataset that
    inflates past it, sequences nested too deep and lengths past the end of the file, each as a
    BadInput (or InputTooLarge) naming the file. Pixel data are not decoded.
    """
    settings = get_settings() if settings is None else settings
    path = Path(path)
    data = _read_within_limit(path, settings)
    if not looks_like_dicom(data):
        raise UnsupportedFormat(f"{path.name} is not a DICOM file (no DICM marker or DICOM header).")
    return parse_dicom(data, path.name, max_inflated_bytes=settings.max_file_bytes)


def dicom_attributes(
    path: str | os.PathLike[str], keywords: tuple[str, ...], *, settings: Settings | None = None
) -> dict[str, str]:
    """The named DICOM attributes of a file as text (absent ones left out); {} for a non-DICOM file."""
    settings = get_settings() if settings is None else settings
    data = _read_within_limit(Path(path), settings)
    if not looks_like_dicom(data):
        return {}
    dataset = parse_dicom(data, Path(path).name, max_inflated_bytes=settings.max_file_bytes)
    found = {}
    for keyword in keywords:
        value = dataset.get(keyword)
        if value not in (None, ""):
            found[keyword] = str(value).strip()
    return found


def sniff_format(data: bytes) -> ImageFormat | None:
    """The image format named by the file's magic bytes (DICOM, PNG, JPEG, TIFF), or None."""
    if looks_like_dicom(data):
        return "dicom"
    return sniff_raster(data)


def _read_within_limit(path: Path, settings: Settings) -> bytes:
    check_input_file(path)
    try:
        _check_file_size(path.name, path.stat().st_size, settings)
        with path.open("rb") as stream:
            # Read one byte past the limit, in case the file grew since stat().
            data = stream.read(settings.max_file_bytes + 1)
    except OSError as exc:  # removed or changed since the check
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    _check_file_size(path.name, len(data), settings)
    if not data:
        raise BadInput(f"{path.name} is empty (0 bytes); give a DICOM, PNG, JPEG or TIFF file.")
    return data


def _check_file_size(filename: str, size: int, settings: Settings) -> None:
    if size > settings.max_file_bytes:
        raise InputTooLarge(
            f"{filename} is {size:,} bytes ({size / _MB:.2f} MB), over the limit of "
            f"{settings.max_file_bytes:,} bytes ({settings.max_file_mb:g} MB). "
            "Set SAHAY_MAX_FILE_MB higher to accept it."
        )


def _open(data: bytes, filename: str, settings: Settings) -> OpenedDicom | OpenedRaster:
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedFormat(
            f"{filename} is not a DICOM, PNG, JPEG or TIFF file (its content matches none of them, "
            "whatever its extension). Give an image file in one of those formats."
        )
    if fmt == "dicom":
        # A deflated dataset may inflate to no more than an uncompressed file may hold.
        return open_dicom(data, filename, max_inflated_bytes=settings.max_file_bytes)
    return open_raster(data, filename, fmt)


def _check_pixel_limit(filename: str, rows: int, columns: int, settings: Settings) -> None:
    """Only the frame to be decoded counts: Sahay decodes one frame of a multi-frame file."""
    pixels = rows * columns
    if pixels > settings.max_pixels:
        raise InputTooLarge(
            f"{filename} is {columns}x{rows} = {pixels:,} pixels, over the limit of "
            f"{settings.max_pixels:,} pixels. Set SAHAY_MAX_PIXELS higher to accept it."
        )
