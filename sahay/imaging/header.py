"""What kind of image a file is, from its first bytes: the check that runs before anything heavy loads.

Standard library only, so that ``sahay analyze`` refuses a missing, unreadable or non-image file
before NumPy, pydicom, torch or a model is imported.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Literal

from sahay.errors import BadInput, UnsupportedFormat
from sahay.fileio import check_input_file

HeaderFormat = Literal["dicom", "png", "jpeg", "tiff"]
HEADER_BYTES = 132
"""A DICOM preamble (128 bytes) and its ``DICM`` marker: enough to tell every supported format."""

RASTER_MAGIC: tuple[tuple[bytes, Literal["png", "jpeg", "tiff"]], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)


def looks_like_dicom(data: bytes) -> bool:
    """True for a standard DICOM file (128-byte preamble, then ``DICM``) or a bare dataset.

    A bare dataset (no preamble, as some old systems write) is accepted only when it starts with a
    little-endian group 0x0002 or 0x0008 element that is well-formed, so a text file is never one.
    ``data`` may be the whole file or its first ``HEADER_BYTES``; for a bare dataset's first element
    a short read cannot tell its length, so only the whole file is checked against it.
    """
    if data[128:132] == b"DICM":
        return True
    if len(data) < 8 or data[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    explicit_vr = data[4:6]
    if explicit_vr.isalpha() and explicit_vr.isupper():
        return True
    implicit_length = struct.unpack("<I", data[4:8])[0]
    return implicit_length <= len(data) - 8


def sniff_header(data: bytes) -> HeaderFormat | None:
    """The image format named by the file's first bytes (DICOM, PNG, JPEG, TIFF), or None."""
    if looks_like_dicom(data):
        return "dicom"
    for magic, fmt in RASTER_MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def check_image_file(path: Path) -> HeaderFormat:
    """Refuse a path that is missing, unreadable, empty or not a DICOM, PNG, JPEG or TIFF file.

    Raises BadInput (UnsupportedFormat for a non-image) naming the file; returns the format.
    """
    check_input_file(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            head = stream.read(HEADER_BYTES)
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    if not head:
        raise BadInput(f"{path.name} is empty (0 bytes); give a DICOM, PNG, JPEG or TIFF file.")
    # A bare DICOM dataset's first element is checked against the whole file's size.
    fmt = sniff_header(head) or ("dicom" if len(head) >= 8 and _bare_dicom_fits(head, size) else None)
    if fmt is None:
        raise UnsupportedFormat(
            f"{path.name} is not a DICOM, PNG, JPEG or TIFF file (its content matches none of them, "
            "whatever its extension). Give an image file in one of those formats."
        )
    return fmt


def _bare_dicom_fits(head: bytes, size: int) -> bool:
    if head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    return struct.unpack("<I", head[4:8])[0] <= size - 8
