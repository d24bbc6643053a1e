"""Helpers that write small, valid image files for tests: DICOM (with pydicom), PNG, JPEG and TIFF.

Every helper writes to the path it is given and returns it as a ``Path``, so tests read as
``read_image(write_dicom(tmp_path / "x.dcm", pixels))``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from sahay.analysis import ImageInfo
from sahay.models.predictor import Predictor

Window = tuple[float, float]

# Identifiers written into every factory DICOM, so tests can check they are dropped or kept.
DEFAULT_IDENTIFIERS: dict[str, str] = {
    "PatientBirthDate": "19700101",
    "PatientSex": "F",
    "AccessionNumber": "ACC001",
    "StudyDate": "20240102",
    "InstitutionName": "Test Hospital",
}


def write_dicom(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    signed: bool = False,
    slope: float = 1,
    intercept: float = 0,
    window: Window | Sequence[Window] | None = None,
    voi_lut: Sequence[int] | None = None,
    voi_lut_first_mapped: int = 0,
    modality: str = "CR",
    body_part: str | None = "CHEST",
    view_position: str | None = "PA",
    pixel_spacing: tuple[float, float] | None = (0.2, 0.2),
    imager_pixel_spacing: tuple[float, float] | None = None,
    patient_name: str = "Doe^Jane",
    patient_id: str = "12345",
    frames: int | None = None,
    preamble: bool = True,
    patient_orientation: tuple[str, str] | None = None,
) -> Path:
    """Write ``pixels`` as an Explicit VR Little Endian DICOM file and return its path.

    ``pixels`` is (rows, columns) or (rows, columns, 3) for one frame; with ``frames=N`` it has a
    leading axis of length N. ``window`` is one (center, width) or a list of them (written as
    multi-valued Window Center/Width). ``voi_lut`` is a list of LUT output values (16 bits per
    entry) starting at input value ``voi_lut_first_mapped``. Rescale Slope/Intercept are written
    only when they differ from 1 and 0. ``preamble=False`` writes a bare dataset with no preamble,
    "DICM" prefix or file meta, as some old systems do.

    Example: ``write_dicom(tmp_path / "ct.dcm", stored, signed=True, intercept=-1024, window=(40, 400))``.
    """
    path = Path(path)
    ds = _base_dataset(modality, patient_name, patient_id)
    _set_pixels(ds, pixels, photometric, bits_stored, signed, frames)
    if slope != 1 or intercept != 0:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if window is not None:
        _set_windows(ds, window)
    if voi_lut is not None:
        ds.VOILUTSequence = DicomSequence([_lut_item(voi_lut, voi_lut_first_mapped)])
    _set_optional(ds, "BodyPartExamined", body_part)
    _set_optional(ds, "ViewPosition", view_position)
    _set_optional(ds, "PatientOrientation", list(patient_orientation) if patient_orientation else None)
    _set_optional(ds, "PixelSpacing", list(pixel_spacing) if pixel_spacing else None)
    _set_optional(ds, "ImagerPixelSpacing", list(imager_pixel_spacing) if imager_pixel_spacing else None)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        del ds.file_meta
        ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=False)
    return path


def write_dicom_without_pixels(path: str | os.PathLike[str], *, modality: str = "SR") -> Path:
    """Write a valid DICOM file (e.g. a structured report) that has no Pixel Data."""
    path = Path(path)
    ds = _base_dataset(modality, "Doe^Jane", "12345")
    ds.save_as(path, enforce_file_format=True)
    return path


def write_png(path: str | os.PathLike[str], array: np.ndarray, *, mode: str | None = None) -> Path:
    """Write ``array`` (uint8 or uint16; (H, W), (H, W, 3) or (H, W, 4)) as PNG."""
    return _write_pillow(path, array, "PNG", mode=mode)


def write_jpeg(
    path: str | os.PathLike[str], array: np.ndarray, *, quality: int = 95, orientation: int | None = None
) -> Path:
    """Write a uint8 ``array`` as JPEG; ``orientation`` sets the EXIF Orientation tag (e.g. 6 or 8)."""
    path = Path(path)
    image = Image.fromarray(array)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation  # EXIF Orientation
    image.save(path, format="JPEG", quality=quality, subsampling=0, exif=exif.tobytes())
    return path


def write_tiff(path: str | os.PathLike[str], *pages: np.ndarray) -> Path:
    """Write one or more arrays as the pages of one TIFF file."""
    path = Path(path)
    first, *rest = (Image.fromarray(page) for page in pages)
    first.save(path, format="TIFF", save_all=bool(rest), append_images=rest)
    return path


def _write_pillow(path: str | os.PathLike[str], array: np.ndarray, fmt: str, *, mode: str | None) -> Path:
    path = Path(path)
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path


def _base_dataset(modality: str, patient_name: str, patient_id: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientAddress = "1 Private Road"  # other patient data that must never be kept
    for keyword, value in DEFAULT_IDENTIFIERS.items():
        setattr(ds, keyword, value)
    return ds


def _set_pixels(
    ds: Dataset, pixels: np.ndarray, photometric: str, bits_stored: int, signed: bool, frames: int | None
) -> None:
    is_colour = pixels.ndim == (4 if frames else 3)
    if frames is not None and pixels.shape[0] != frames:
        raise ValueError(f"frames={frames} but pixels has {pixels.shape[0]} frames on its first axis")
    bits_allocated = 8 if bits_stored <= 8 else 16
    dtype = np.dtype(f"{'int' if signed else 'uint'}{bits_allocated}")
    # pydicom's set_pixel_data only knows the standard interpretations; write as a standard one,
    # then overwrite the tag so tests can exercise odd values such as "HSV".
    standard = "RGB" if is_colour else "MONOCHROME2"
    ds.set_pixel_data(pixels.astype(dtype), standard, bits_stored)
    ds.PhotometricInterpretation = photometric


def _set_windows(ds: Dataset, window: Window | Sequence[Window]) -> None:
    windows = [window] if isinstance(window[0], (int, float)) else list(window)
    centers = [float(w[0]) for w in windows]  # type: ignore[index]
    widths = [float(w[1]) for w in windows]  # type: ignore[index]
    ds.WindowCenter = centers if len(centers) > 1 else centers[0]
    ds.WindowWidth = widths if len(widths) > 1 else widths[0]


def _lut_item(lut: Sequence[int], first_mapped: int) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(lut), first_mapped, 16]
    item.LUTData = [int(v) for v in lut]
    item["LUTData"].VR = "US"
    return item


def _set_optional(ds: Dataset, keyword: str, value: object) -> None:
    if value is not None:
        setattr(ds, keyword, value)


def image_info(**fields: object) -> ImageInfo:
    """An ImageInfo for a small DICOM image, with ``fields`` overriding the defaults."""
    base: dict[str, object] = {
        "filename": "x.dcm",
        "sha256": "0" * 64,
        "format": "dicom",
        "rows": 8,
        "columns": 8,
        "channels": 1,
    }
    base.update(fields)
    return ImageInfo.model_validate(base)


def write_shapes_dataset(root: Path, *, train: int, test: int, size: int = 64, seed: int = 0) -> Path:
    """An ImageFolder of two visibly different classes ("disc" and "stripes"), as 8-bit PNGs."""
    from sahay.training.synthetic import make_image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for label in ("disc", "stripes"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                image = make_image(rng, size, disc=label == "disc", stripes=label == "stripes")
                write_png(folder / f"{label}-{index:03d}.png", np.round(image.pixels * 255).astype(np.uint8))
    return root


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Phantom:
    pixels: np.ndarray
    image_left: Box
    """The drawn image-left lung's box, normalised (x0, y0, x1, y1)."""
    image_right: Box
    midline_x: float


def chest_phantom(
    rows: int = 800,
    columns: int = 700,
    *,
    lung_centre_y: float = 0.45,
    lung_half_height: float = 0.28,
    lung_half_width: float = 0.13,
    lung_offset: float = 0.2,
    noise: float = 0.02,
    seed: int = 0,
    lungs: tuple[bool, bool] = (True, True),
) -> Phantom:
    """A frontal chest radiograph, drawn: dark air all round, a bright trunk, two dark lungs
    either side of a brighter mediastinum. Lung geometry is in fractions of the image."""
    rng = np.random.default_rng(seed)
    image = np.full((rows, columns), 0.05, dtype=np.float32)
    centre_x = columns // 2
    cv2.ellipse(
        image, (centre_x, int(rows * 0.62)), (int(columns * 0.47), int(rows * 0.6)), 0, 0, 360, (0.65,), -1
    )
    cv2.rectangle(image, (int(columns * 0.4), 0), (int(columns * 0.6), int(rows * 0.2)), (0.65,), -1)
    boxes = []
    for drawn, sign in zip(lungs, (-1, 1), strict=True):
        cx, cy = centre_x + sign * round(columns * lung_offset), round(rows * lung_centre_y)
        ax, ay = round(columns * lung_half_width), round(rows * lung_half_height)
        if drawn:
            cv2.ellipse(image, (cx, cy), (ax, ay), 0, 0, 360, (0.3,), -1)
        boxes.append(((cx - ax) / columns, (cy - ay) / rows, (cx + ax + 1) / columns, (cy + ay + 1) / rows))
    mediastinum_w = round(columns * 0.05)
    cv2.rectangle(
        image, (centre_x - mediastinum_w, int(rows * 0.1)), (centre_x + mediastinum_w, rows), (0.85,), -1
    )
    image += rng.normal(0.0, noise, image.shape).astype(np.float32)
    return Phantom(np.clip(image, 0.0, 1.0), boxes[0], boxes[1], centre_x / columns)


def refused_by_ood(predictor: Predictor, images: list[np.ndarray]) -> np.ndarray:
    """Whether the predictor's out-of-domain reference refuses each image."""
    assert predictor.ood is not None
    predictions = predictor.predict(images)
    scores = predictor.ood.scores(np.stack([p.features for p in predictions]))
    return np.asarray(scores > predictor.ood.spec.threshold)


CASE_CLASSES = ("round", "striped")
_CASE_WORDS = {
    "round": (
        "a round bright opacity",
        "well circumscribed round density",
        "circular dense focus",
        "rounded lesion",
    ),
    "striped": (
        "parallel linear stripes",
        "striated linear pattern",
        "multiple parallel bands",
        "linear streaks",
    ),
    "neutral": (
        "image reviewed",
        "study obtained for comparison",
        "no prior available",
        "routine acquisition",
    ),
}


def write_case_dataset(
    root: Path, *, per_class: int = 12, images_tell: bool = True, words_tell: bool = True, seed: int = 0
) -> Path:
    """A CSV dataset of two labelled classes for similar-case search, with a ``notes`` text column.

    ``images_tell``: class "round" images show a disc and "striped" ones stripes; otherwise every
    image is a plain background. ``words_tell``: each note describes its class; otherwise every
    note is drawn from the same neutral sentences.
    """
    from sahay.training.synthetic import make_image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,round,striped,notes"]
    for label in CASE_CLASSES:
        for index in range(per_class):
            shows = images_tell
            image = make_image(
                rng, 224, disc=shows and label == "round", stripes=shows and label == "striped"
            )
            name = f"{label}-{index:03d}.png"
            write_png(root / name, np.round(image.pixels * 255).astype(np.uint8))
            words = _CASE_WORDS[label if words_tell else "neutral"]
            note = str(words[int(rng.integers(len(words)))])
            rows.append(f"{name},{int(label == 'round')},{int(label == 'striped')},{note}")
    table = root / "cases.csv"
    table.write_text("\n".join(rows) + "\n")
    return table
