"""PNG, JPEG and TIFF decoding with Pillow: EXIF orientation, first page, display-ready pixels.

As for DICOM, reading is split in two: ``open_raster`` reads only the header (Pillow is lazy), so
the caller can check the size before ``OpenedRaster.decode`` decodes any pixels.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

from sahay.analysis import ImageInfo
from sahay.errors import BadInput, InputTooLarge, UnsupportedFormat, describe_error
from sahay.imaging.header import RASTER_MAGIC

RasterFormat = Literal["png", "jpeg", "tiff"]

_PILLOW_FORMATS: dict[RasterFormat, str] = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr")

# What Pillow raises on truncated or corrupt data; turned into BadInput, chained. (TypeError: a
# TIFF page without dimensions, "Missing dimensions", found by tests/fuzz.)
_PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
)


def sniff_raster(data: bytes) -> RasterFormat | None:
    """The raster format named by the file's magic bytes, or None."""
    for magic, fmt in RASTER_MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def png_bytes(pixels: np.ndarray, bits: int = 8) -> bytes:
    """Pixels in [0, 1] as a PNG: grey at ``bits`` (8 or 16), or 8-bit RGB/RGBA for colour."""
    if pixels.ndim == 3 or bits == 8:
        array = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    else:
        array = np.round(np.clip(pixels, 0, 1) * 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def collapse_grey_rgb(pixels: np.ndarray) -> np.ndarray:
    """An (H, W, 3) image whose three channels are equal is greyscale: return it as (H, W)."""
    if (
        pixels.ndim == 3
        and np.array_equal(pixels[..., 0], pixels[..., 1])
        and np.array_equal(pixels[..., 0], pixels[..., 2])
    ):
        return np.ascontiguousarray(pixels[..., 0])
    return pixels


@dataclass(frozen=True)
class OpenedRaster:
    """A Pillow image whose header has been read but whose pixels have not been decoded."""

    image: Image.Image
    filename: str
    format: RasterFormat

    @property
    def rows(self) -> int:
        return int(self.image.height)

    @property
    def columns(self) -> int:
        return int(self.image.width)

    def decode(
        self, *, sha256: str, keep_identifiers: bool, window: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, ImageInfo, list[str]]:
        """Decode the first page, apply EXIF orientation, scale to float32 in [0, 1].

        ``keep_identifiers`` and ``window`` are accepted for symmetry with DICOM; raster files carry
        no identifiers Sahay reads and are shown as stored.
        """
        messages: list[str] = []
        pages = self._count_pages()
        if pages > 1:
            messages.append(f"multi-page {self.format.upper()}: page 1 of {pages} was analysed")
        image = self._load_oriented()
        pixels, bits = _to_unit_range(image, self.filename)
        pixels = collapse_grey_rgb(pixels)
        info = ImageInfo(
            filename=self.filename,
            sha256=sha256,
            format=self.format,
            rows=pixels.shape[0],
            columns=pixels.shape[1],
            channels=1 if pixels.ndim == 2 else 3,
            bits_stored=bits,
            number_of_frames=pages,
            frame_index=0 if pages > 1 else None,
        )
        return pixels, info, messages

    def _count_pages(self) -> int:
        try:
            return int(getattr(self.image, "n_frames", 1))
        except _PILLOW_ERRORS as exc:
            raise _corrupt(self.filename, exc) from exc

    def _load_oriented(self) -> Image.Image:
        try:
            self.image.seek(0)
            self.image.load()  # full decode now, so truncation surfaces here
            return ImageOps.exif_transpose(self.image)
        except _PILLOW_ERRORS as exc:
            raise _corrupt(self.filename, exc) from exc


def open_raster(data: bytes, filename: str, fmt: RasterFormat) -> OpenedRaster:
    """Read the header of a PNG/JPEG/TIFF file; no pixels are decoded yet."""
    try:
        with warnings.catch_warnings():
            # Sahay enforces its own pixel limit (SAHAY_MAX_PIXELS) right after this header read.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]])
    except Image.DecompressionBombError as exc:
        raise InputTooLarge(
            f"{filename} is too large for Pillow to open safely ({exc}). Sahay will not decode it; "
            "use a smaller image (SAHAY_MAX_PIXELS cannot raise Pillow's own limit)."
        ) from exc
    except _PILLOW_ERRORS as exc:
        raise _corrupt(filename, exc) from exc
    return OpenedRaster(image=image, filename=filename, format=fmt)


def _to_unit_range(image: Image.Image, filename: str) -> tuple[np.ndarray, int]:
    """Pixels as float32 in [0, 1] scaled by the format's bit depth (never min..max), and that depth."""
    mode = image.mode
    if mode == "1":
        return np.asarray(image, dtype=np.float32), 1
    if mode in ("L", "LA"):
        return _scaled(np.asarray(image.getchannel("L")), 255), 8
    if mode in _SIXTEEN_BIT_MODES:
        return _scaled(np.asarray(image), 65535), 16
    if mode == "I":
        return _scaled(_sixteen_bit_values(image, filename), 65535), 16
    if mode in _COLOUR_MODES:
        return _scaled(np.asarray(image.convert("RGB")), 255), 8
    raise UnsupportedFormat(
        f"{filename} has Pillow image mode {mode!r}, which Sahay cannot read; "
        "save it as 8- or 16-bit greyscale or 8-bit RGB."
    )


def _sixteen_bit_values(image: Image.Image, filename: str) -> np.ndarray:
    # Mode "I" is 32-bit, but Pillow also uses it for 16-bit greyscale; accept only that range.
    values = np.asarray(image)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise UnsupportedFormat(
            f"{filename} holds 32-bit integer pixels (range {values.min()}..{values.max()}); "
            "Sahay reads 8- and 16-bit images only. Save it as 16-bit."
        )
    return values


def _scaled(values: np.ndarray, max_value: int) -> np.ndarray:
    return values.astype(np.float32) / np.float32(max_value)


def _corrupt(filename: str, exc: Exception) -> BadInput:
    return BadInput(f"{filename} could not be decoded; it is truncated or corrupt ({describe_error(exc)}).")
