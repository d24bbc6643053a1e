"""DICOM decoding with pydicom: one frame, modality LUT, VOI LUT or window, display-ready pixels.

Reading is split in two so the caller can check the image size from the header before any
pixel decoding happens: ``open_dicom`` parses the dataset, ``OpenedDicom.decode`` decodes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    as_pixel_options,
    convert_color_space,
    get_decoder,
)
from pydicom.pixels.decoders.base import Decoder
from pydicom.pixels.utils import get_nr_frames
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
)

from sahay.analysis import ImageInfo
from sahay.errors import BadInput, UnsupportedFormat
from sahay.imaging.dicom_parse import (
    PYDICOM_ERRORS,
    describe_pydicom_error,
    malformed_attributes,
    parse_dicom,
)
from sahay.imaging.raster import collapse_grey_rgb

# Study and patient identifiers copied into ImageInfo only when the user asks to keep them.
IDENTIFIER_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "StudyDate",
    "InstitutionName",
)

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_YBR_CONVERTIBLE = ("YBR_FULL", "YBR_FULL_422")
# YBR_ICT/YBR_RCT are only valid for JPEG 2000, whose decoders return RGB.
_SUPPORTED_PHOTOMETRIC = (*MONOCHROME, "RGB", *_YBR_CONVERTIBLE, "YBR_ICT", "YBR_RCT", "PALETTE COLOR")

# What pydicom's LUT and colour functions raise on malformed attributes.
_LUT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError, struct.error)

_INSTALL_HINT = (
    "install a decoder: `pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg` "
    "or `pip install python-gdcm`"
)


@dataclass(frozen=True)
class OpenedDicom:
    """A parsed DICOM dataset whose pixels have not been decoded yet."""

    dataset: Dataset
    filename: str
    rows: int
    columns: int
    number_of_frames: int

    def decode(
        self, *, sha256: str, keep_identifiers: bool, window: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, ImageInfo, list[str]]:
        """Decode the middle frame to float32 in [0, 1] (bone bright) and describe it.

        ``window`` (center, width) replaces the file's VOI LUT or window for greyscale images (a
        viewer's window/level). Returns the pixels, the ImageInfo and human-readable warnings.
        """
        ds = self.dataset
        frames = self.number_of_frames
        index = frames // 2
        warnings: list[str] = []
        if frames > 1:
            warnings.append(f"multi-frame file: frame {index + 1} of {frames} (the middle one) was analysed")

        stored, photometric = _decode_frame(ds, index, self.filename)
        pixels, window = self._to_display(stored, photometric, warnings, window)
        with malformed_attributes(self.filename):
            info = self._describe(sha256, pixels, frames, index, window, keep_identifiers)
        return pixels.astype(np.float32, copy=False), info, warnings

    def _describe(
        self,
        sha256: str,
        pixels: np.ndarray,
        frames: int,
        index: int,
        window: tuple[float, float] | None,
        keep_identifiers: bool,
    ) -> ImageInfo:
        ds = self.dataset
        return ImageInfo(
            filename=self.filename,
            sha256=sha256,
            format="dicom",
            rows=self.rows,
            columns=self.columns,
            channels=1 if pixels.ndim == 2 else 3,
            bits_stored=_optional_int(ds, "BitsStored"),
            modality=_optional_text(ds, "Modality"),
            body_part=_optional_text(ds, "BodyPartExamined"),
            view_position=_optional_text(ds, "ViewPosition"),
            patient_orientation=_patient_orientation(ds),
            pixel_spacing_mm=_pixel_spacing(ds),
            photometric_interpretation=_optional_text(ds, "PhotometricInterpretation"),
            transfer_syntax=_transfer_syntax(ds).name,
            number_of_frames=frames,
            frame_index=index if frames > 1 else None,
            window=window,
            identifiers=_identifiers(ds) if keep_identifiers else None,
        )

    def _to_display(
        self,
        stored: np.ndarray,
        photometric: str,
        warnings: list[str],
        window: tuple[float, float] | None = None,
    ) -> tuple[np.ndarray, tuple[float, float] | None]:
        try:
            if photometric in MONOCHROME:
                pixels, window, grey_warnings = _grey_to_display(stored, photometric, self.dataset, window)
                warnings.extend(grey_warnings)
                return pixels, window
            return collapse_grey_rgb(
                _colour_to_display(stored, photometric, self.dataset, self.filename)
            ), None
        except _LUT_ERRORS as exc:  # pydicom rejecting malformed LUT, rescale or palette attributes
            raise BadInput(
                f"{self.filename} has invalid LUT, rescale or palette attributes, so its pixels cannot be "
                f"displayed ({type(exc).__name__}: {exc})."
            ) from exc


def open_dicom(data: bytes, filename: str, *, max_inflated_bytes: int) -> OpenedDicom:
    """Parse ``data`` as DICOM and check it holds a decodable image, without decoding pixels.

    ``max_inflated_bytes`` caps what a deflated dataset may inflate to (see ``parse_dicom``).
    """
    ds = parse_dicom(data, filename, max_inflated_bytes=max_inflated_bytes)
    # pydicom parses element values lazily, so malformed ones surface only when first read.
    with malformed_attributes(filename):
        _ensure_transfer_syntax(ds)
        _check_has_pixels(ds, filename)
        _check_photometric(ds, filename)
        return OpenedDicom(
            dataset=ds,
            filename=filename,
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            number_of_frames=int(get_nr_frames(ds, warn=False)),
        )


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Bare datasets have no file meta: infer the (uncompressed) transfer syntax pydicom read them with."""
    if ds.file_meta.get("TransferSyntaxUID"):
        return
    implicit_vr, little_endian = ds.original_encoding
    if implicit_vr:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif little_endian is False:
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _transfer_syntax(ds: Dataset) -> UID:
    return UID(ds.file_meta.TransferSyntaxUID)


def _check_has_pixels(ds: Dataset, filename: str) -> None:
    if "PixelData" in ds:
        if not ds.get("Rows") or not ds.get("Columns"):
            raise BadInput(f"{filename} has pixel data but no Rows/Columns; the file is corrupt.")
        return
    if "Rows" in ds:
        # An image module without its pixels: the file was cut short.
        raise BadInput(f"{filename} has image attributes but no pixel data; it is truncated or corrupt.")
    modality = _optional_text(ds, "Modality") or "unknown"
    raise BadInput(
        f"{filename} has no pixel data (Modality {modality}): it is not an image but another kind of "
        "DICOM object, such as a structured report or an RT plan. Give Sahay an image file."
    )


def _check_photometric(ds: Dataset, filename: str) -> None:
    photometric = _optional_text(ds, "PhotometricInterpretation")
    if photometric not in _SUPPORTED_PHOTOMETRIC:
        raise UnsupportedFormat(
            f"{filename} has Photometric Interpretation {photometric!r}, which Sahay cannot display; "
            f"supported: {', '.join(_SUPPORTED_PHOTOMETRIC)}."
        )


def _decode_frame(ds: Dataset, index: int, filename: str) -> tuple[np.ndarray, str]:
    """Decode frame ``index``; return the stored values and the photometric interpretation they are in."""
    syntax = _transfer_syntax(ds)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise UnsupportedFormat(
            f"{filename} uses transfer syntax {syntax.name} ({syntax}), which pydicom cannot decode."
        ) from exc
    try:
        array, properties = decoder.as_array(ds, index=index, **as_pixel_options(ds))
    except RuntimeError as exc:
        if not decoder.is_available:
            raise _missing_decoder(filename, syntax, decoder) from exc
        raise _corrupt_pixels(filename, syntax, exc) from exc
    except PYDICOM_ERRORS as exc:
        raise _corrupt_pixels(filename, syntax, exc) from exc
    except BaseException as exc:
        if not _is_decoder_panic(exc):
            raise
        raise _corrupt_pixels(filename, syntax, exc) from exc
    return array, str(properties.get("photometric_interpretation", ds.PhotometricInterpretation))


def _is_decoder_panic(exc: BaseException) -> bool:
    """A Rust decoder's panic (pylibjpeg-rle, through pyo3), which derives from BaseException, not
    Exception: on corrupt data it would otherwise escape every handler up to the door. Found by
    tests/fuzz on a corrupt RLE file ("index out of bounds")."""
    return type(exc).__name__ == "PanicException" and type(exc).__module__ == "pyo3_runtime"


def _missing_decoder(filename: str, syntax: UID, decoder: Decoder) -> UnsupportedFormat:
    missing = "; ".join(decoder.missing_dependencies) or "no decoding plugin is installed"
    return UnsupportedFormat(
        f"{filename} is compressed with {syntax.name} ({syntax}) and no decoder for it is available "
        f"({missing}). To read it, {_INSTALL_HINT}."
    )


def _corrupt_pixels(filename: str, syntax: UID, exc: BaseException) -> BadInput:
    return BadInput(
        f"{filename}: the {syntax.name} pixel data could not be decoded; "
        f"the file is truncated or corrupt ({describe_pydicom_error(exc)})."
    )


def _grey_to_display(
    stored: np.ndarray, photometric: str, ds: Dataset, chosen: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float] | None, list[str]]:
    """Modality LUT, then the chosen window, the VOI LUT, the file's first window or min..max;
    MONOCHROME1 inverted. float32 throughout: pydicom's float64 steps took most of a 2k film's read."""
    values = _modality_values(stored, ds)
    if not np.isfinite(values).all():
        raise ValueError("Rescale Slope/Intercept give non-finite values")
    window: tuple[float, float] | None = None
    warnings: list[str] = []
    if chosen is not None:
        window = chosen
        pixels = _linear_window(values, *chosen)
    elif _has_voi_lut(ds):
        pixels = _apply_voi_lut(values, ds)
    elif (window := _first_window(ds)) is not None:
        try:
            pixels = _apply_window(values, ds)
        except ValueError as exc:  # e.g. a width below 1, which pydicom rejects
            warnings.append(f"the window in the file was ignored ({exc}); the full value range was used")
            window = None
            pixels = _scale_min_max(values, warnings)
    else:
        pixels = _scale_min_max(values, warnings)
    if photometric == "MONOCHROME1":
        pixels = np.subtract(1.0, pixels, out=pixels)  # MONOCHROME1 stores dense as dark; bone bright
    return pixels, window, warnings


def _modality_values(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """The Modality LUT (PS3.3 C.11.1): a rescale in float32, or pydicom's LUT when the file has one."""
    if ds.get("ModalityLUTSequence"):
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    values = stored.astype(np.float32)  # a new array: the in-place steps below never touch ``stored``
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:  # pydicom's rule; an empty value is an error
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        if (slope, intercept) != (1.0, 0.0):
            values *= np.float32(slope)
            values += np.float32(intercept)
    return values


def _linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM LINEAR VOI function (PS3.3 C.11.2.1.2.1), onto [0, 1]."""
    if not width >= 1:
        raise BadInput(f"the window width must be at least 1, got {width}")
    return _ramp(values, center - 0.5, width - 1)


def _ramp(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """``clip((values - center) / width + 0.5, 0, 1)`` in float32; a zero width is a step at ``center``."""
    if width <= 0:
        return (values > center).astype(np.float32)
    out = np.subtract(values, np.float32(center), dtype=np.float32)
    out *= np.float32(1.0 / width)
    out += np.float32(0.5)
    return np.clip(out, 0.0, 1.0, out=out)


def _has_voi_lut(ds: Dataset) -> bool:
    items = ds.get("VOILUTSequence")
    return bool(items) and "LUTDescriptor" in items[0] and "LUTData" in items[0]


def _apply_voi_lut(values: np.ndarray, ds: Dataset) -> np.ndarray:
    # LUT inputs are integers; rescaled values arrive as float64, so round them first.
    indices = np.rint(values).astype(np.int64)
    output = apply_voi(indices, ds, index=0).astype(np.float64)
    # The LUT's own output range is the display range (many LUTs declare 16 bits but use 12).
    entries, first_mapped = (int(v) for v in ds.VOILUTSequence[0].LUTDescriptor[:2])
    every_input = np.arange(first_mapped, first_mapped + (entries or 2**16))
    all_outputs = apply_voi(every_input, ds, index=0)
    return _scale_to_range(output, float(all_outputs.min()), float(all_outputs.max()))


def _apply_window(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """The file's first window. LINEAR and LINEAR_EXACT (PS3.3 C.11.2.1.2.1, C.11.2.1.3.2) are computed
    here in float32; pydicom's float64 version gives the same values at several times the cost and
    still serves SIGMOID and the unusual cases (a Modality LUT, a negative slope)."""
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    slope = float(ds.RescaleSlope) if "RescaleSlope" in ds and "RescaleIntercept" in ds else 1.0
    if function in ("LINEAR", "LINEAR_EXACT") and not ds.get("ModalityLUTSequence") and slope > 0:
        center, width = _first_float(ds, "WindowCenter"), _first_float(ds, "WindowWidth")
        if function == "LINEAR":
            if width < 1:
                raise ValueError("the Window Width must be at least 1 for a LINEAR window")
            return _ramp(values, center - 0.5, width - 1)
        if width <= 0:
            raise ValueError("the Window Width must be above 0 for a LINEAR_EXACT window")
        return _ramp(values, center, width)
    output = apply_windowing(values, ds, index=0)
    # pydicom maps onto the modality value range; windowing -inf/+inf yields exactly its ends.
    low, high = apply_windowing(np.array([-np.inf, np.inf]), ds, index=0)
    return _scale_to_range(output, float(low), float(high))


def _scale_min_max(values: np.ndarray, warnings: list[str]) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high == low:
        warnings.append("the image is blank: every pixel has the same value")
    return _scale_to_range(values, low, high)


def _scale_to_range(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    scaled = np.subtract(values, np.float32(low), dtype=np.float32)
    scaled *= np.float32(1.0 / (high - low))
    return np.clip(scaled, 0.0, 1.0, out=scaled)


def _colour_to_display(stored: np.ndarray, photometric: str, ds: Dataset, filename: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(stored, ds)
        return rgb.astype(np.float32) / float(np.iinfo(rgb.dtype).max)
    if photometric in _YBR_CONVERTIBLE:
        stored = convert_color_space(stored, photometric, "RGB")
        photometric = "RGB"
    if photometric != "RGB":
        jpeg_2000 = ", ".join(uid.name for uid in JPEG2000TransferSyntaxes)
        raise UnsupportedFormat(
            f"{filename} has uncompressed {photometric} pixel data, which Sahay cannot convert to RGB; "
            f"{photometric} is only valid with JPEG 2000 ({jpeg_2000})."
        )
    max_value = float(2 ** int(ds.BitsStored) - 1)
    return np.clip(stored.astype(np.float32) / max_value, 0.0, 1.0)


def _first_window(ds: Dataset) -> tuple[float, float] | None:
    """(center, width) of the first window (pydicom's index 0); None when absent or unreadable."""
    try:
        window = _first_float(ds, "WindowCenter"), _first_float(ds, "WindowWidth")
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return window if all(np.isfinite(window)) else None


def _first_float(ds: Dataset, keyword: str) -> float:
    element = ds[keyword]
    return float(element.value[0] if element.VM > 1 else element.value)


def _optional_text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _optional_int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    return int(value) if value is not None else None


def _patient_orientation(ds: Dataset) -> tuple[str, str] | None:
    """(0020,0020) as two direction strings, or None when absent or not two values."""
    value = ds.get("PatientOrientation")
    if value is None:
        return None
    parts = [str(v).strip().upper() for v in (value if isinstance(value, MultiValue) else [value])]
    if len(parts) != 2 or not all(parts) or not all(set(p) <= set("LRAPHF") for p in parts):
        return None
    return parts[0], parts[1]


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm: Pixel Spacing, else Imager Pixel Spacing; None if absent,
    malformed or not a real size (0\\0, negative, not finite: "not recorded", not "0 x 0 mm")."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and getattr(value, "__len__", None) and len(value) >= 2:
            try:
                row, column = float(value[0]), float(value[1])
            except (TypeError, ValueError):
                continue
            if all(math.isfinite(v) and v > 0 for v in (row, column)):
                return row, column
    return None


def _identifiers(ds: Dataset) -> dict[str, str]:
    return {keyword: text for keyword in IDENTIFIER_KEYWORDS if (text := _optional_text(ds, keyword))}
