"""Turn a heatmap into a few regions, and say where they are in words.

Regions (``find_regions``):

- The heatmap is a float map in [0, 1] with the original image's aspect ratio (usually a
  scaled-down copy of the image grid). Non-finite values count as zero, negative ones too.
- A pixel belongs to the mask when its value is at least ``threshold`` (default 0.5) times
  the map's maximum. The mask's 8-connected components are the candidate regions.
- A region's ``mass_share`` is the map's sum inside the component divided by the map's
  total sum, so the shares of all regions add up to at most 1. Components under
  ``min_share`` (default 5 %) are dropped; the ``max_regions`` (default 3) largest by
  share are kept and numbered 1, 2, ... in that order. ``peak`` is the map's highest value
  inside the component.
- ``box`` is the component's bounding box scaled to the original image's pixels,
  (x, y, width, height), rounded outwards and clipped to the image.
- Positions use the attribution-weighted centroid of the component, in normalised image
  coordinates: x = column / width and y = row / height, both in [0, 1].
- ``grid`` splits the image into thirds each way: rows "upper", "middle", "lower" and
  columns "left", "centre", "right", joined as "upper left", "upper centre", "middle
  right", ...; the middle cell is "centre". These are image terms, not patient terms.

Chest radiographs (``chest=True``) also get the patient's side, the lung zone and the depth:

- Sides follow the radiological convention: on a standard frontal display the patient's
  RIGHT is on the IMAGE's LEFT. ``patient_orientation`` is DICOM (0020,0020), the patient
  directions of increasing column and row; only its first letter (the principal
  direction) counts. A column direction of "L", or none at all (assumed standard), means
  image left = patient right; "R" means a flipped image, image left = patient left. Any
  other column direction ("A" or "P", a lateral view; "H" or "F", a rotated image) has no
  left and right across the columns: such regions are named by ``grid`` only. A row
  direction of "H" means the image is upside down, so zones are counted from the bottom.
- The lung frame is the detected lung fields (``sahay.explain.lungs``) when given, else the
  *assumed* frame of a typical frontal radiograph: the image-left lung's box is
  x 0.10-0.45, y 0.10-0.90, the image-right lung's x 0.55-0.90, y 0.10-0.90, and the
  midline is x = 0.5. (``Explanation.lung_fields`` records which frame was used.)
- Side: a centroid strictly between the two lung boxes (right of the image-left lung's
  box and left of the image-right lung's box) is "midline", said as "midline
  (mediastinum)"; otherwise the centroid's side of the midline picks the lung.
- Zone: the centroid's height within that lung's box (for the midline, within the span
  of both boxes), clamped to the box, in thirds: "upper", "middle", "lower". These are
  thirds of the lung field's height, an approximation of the radiological zones, which
  are defined by the anterior rib ends.
- Depth: the centroid's distance from the lung box's medial edge (the edge nearer the
  midline), as a share of the box's width, clamped: the medial half is "central", the
  lateral half "peripheral". Midline regions have no depth.
- Words: "right lower zone, peripheral"; "midline (mediastinum), at lower zone level".

Without ``chest``, ``side``, ``zone`` and ``depth`` are None and ``location`` is
"<grid> of the image", e.g. "lower right of the image".

Example:
    >>> import numpy as np
    >>> heatmap = np.zeros((40, 50), dtype=np.float32)
    >>> heatmap[28:36, 35:45] = 1.0
    >>> [region] = find_regions(heatmap, (400, 500))
    >>> region.box, region.location
    ((350, 280, 100, 80), 'lower right of the image')
    >>> describe_regions("Nodule", "Grad-CAM", [region])
    'Grad-CAM: the Nodule signal is concentrated in the lower right of the image (100% of the attribution).'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

from sahay.analysis import Depth, ImageInfo, Region, Side, Zone
from sahay.explain.lungs import LungFields

DEFAULT_THRESHOLD = 0.5
DEFAULT_MAX_REGIONS = 3
DEFAULT_MIN_SHARE = 0.05

RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "RG"})
"""Projection radiography: computed, digital, and film-screen (RG) radiographs."""
CHEST_WORDS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "CXR"})
"""Words in a body part that name the chest; "THORACIC" (spine) does not."""

ASSUMED_IMAGE_LEFT = (0.10, 0.10, 0.45, 0.90)
ASSUMED_IMAGE_RIGHT = (0.55, 0.10, 0.90, 0.90)
ASSUMED_MIDLINE = 0.5

_ROWS = ("upper", "middle", "lower")
_COLUMNS = ("left", "centre", "right")
_ZONES: tuple[Zone, Zone, Zone] = ("upper", "middle", "lower")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class _Frame:
    image_left: Box
    image_right: Box
    midline_x: float


@dataclass(frozen=True)
class _Place:
    side: Side | None
    zone: Zone | None
    depth: Depth | None
    words: str


def is_chest_radiograph(info: ImageInfo, model_body_part: str | None) -> bool:
    """Whether regions on this image should be named in lung terms.

    The modality must be a projection radiograph (CR, DX or RG) or unknown (None or blank,
    as for PNG, JPEG and TIFF files); CT, MR and every other modality are never chest
    radiographs. Then the image's own BodyPartExamined decides when it is present (it
    describes this image, the model's body part only what the model was made for); when
    it is absent, the model's body part decides. A body part names the chest when one of
    its words, case-insensitive, is CHEST, THORAX, LUNG, LUNGS or CXR.

    Example:
        >>> from sahay.analysis import ImageInfo
        >>> info = ImageInfo(filename="a.png", sha256="0", format="png", rows=8, columns=8, channels=1)
        >>> is_chest_radiograph(info, "chest"), is_chest_radiograph(info, None)
        (True, False)
    """
    modality = (info.modality or "").strip().upper()
    if modality and modality not in RADIOGRAPH_MODALITIES:
        return False
    image_part = (info.body_part or "").strip()
    if image_part:
        return _names_chest(image_part)
    return bool(model_body_part) and _names_chest(model_body_part or "")


def _names_chest(body_part: str) -> bool:
    return any(word in CHEST_WORDS for word in re.split(r"[^A-Z]+", body_part.upper()))


def find_regions(
    heatmap: np.ndarray,
    image_shape: tuple[int, int],
    *,
    lung_fields: LungFields | None = None,
    chest: bool = False,
    patient_orientation: tuple[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    max_regions: int = DEFAULT_MAX_REGIONS,
    min_share: float = DEFAULT_MIN_SHARE,
) -> list[Region]:
    """The heatmap's main regions, largest attribution mass first (see the module docstring).

    ``image_shape`` is the original image's (rows, columns); boxes are in its pixels. An
    empty or all-zero map gives ``[]``.

    Raises:
        ValueError: the map is not 2-D, its aspect ratio differs from ``image_shape`` by more
            than rounding, or a parameter is out of range.
    """
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {heatmap.shape}")
    rows, columns = (int(v) for v in image_shape)
    if rows < 1 or columns < 1:
        raise ValueError(f"image_shape must be positive (rows, columns), got {image_shape}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    if max_regions < 0:
        raise ValueError(f"max_regions must be 0 or more, got {max_regions}")
    if heatmap.size == 0:
        return []
    map_h, map_w = heatmap.shape
    # h = rows * s and w = columns * s, each rounded: the cross products differ by < (rows + columns) / 2.
    if abs(map_h * columns - map_w * rows) > rows + columns:
        raise ValueError(
            f"heatmap shape {heatmap.shape} does not have the aspect ratio of the image {(rows, columns)}"
        )
    values = np.asarray(heatmap, dtype=np.float64)
    values = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    total, top = float(values.sum()), float(values.max())
    if total <= 0.0 or max_regions == 0:
        return []

    mask = (values >= threshold * top).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    # Only the pixels inside a region, in their raster order: the same sums as over the whole map.
    inside = np.flatnonzero(labels)
    inside_labels = np.asarray(labels.ravel()[inside], dtype=np.intp)
    inside_values = values.ravel()[inside]
    mass = np.bincount(inside_labels, weights=inside_values, minlength=count)
    mass_x = np.bincount(inside_labels, weights=inside_values * (inside % map_w + 0.5), minlength=count)
    mass_y = np.bincount(inside_labels, weights=inside_values * (inside // map_w + 0.5), minlength=count)
    peaks = np.zeros(count)
    np.maximum.at(peaks, inside_labels, inside_values)
    shares = mass / total
    kept = sorted(
        (label for label in range(1, count) if shares[label] >= min_share and mass[label] > 0),
        key=lambda label: (-shares[label], label),
    )[:max_regions]

    frame = _frame(lung_fields) if chest else None
    regions = []
    for index, label in enumerate(kept, start=1):
        cx = float(mass_x[label] / mass[label]) / map_w
        cy = float(mass_y[label] / mass[label]) / map_h
        grid = _grid(cx, cy)
        place = _chest_place(cx, cy, frame, patient_orientation) if frame is not None else None
        x, y, w, h = (int(v) for v in stats[label, :4])
        regions.append(
            Region(
                index=index,
                box=_scale_box(x, y, w, h, columns / map_w, rows / map_h, columns, rows),
                mass_share=min(1.0, float(shares[label])),
                peak=min(1.0, float(peaks[label])),
                grid=grid,
                side=place.side if place else None,
                zone=place.zone if place else None,
                depth=place.depth if place else None,
                location=place.words if place else f"{grid} of the image",
            )
        )
    return regions


def describe_regions(
    label: str,
    method_title: str,
    regions: list[Region],
    *,
    min_share: float = DEFAULT_MIN_SHARE,
    empty: bool = False,
) -> str:
    """One plain sentence about where the map for ``label`` is, for clinicians and reports.

    Shares are whole percentages. With no regions, the sentence says the signal is diffuse
    (no area holds ``min_share`` of it), or, with ``empty=True``, that the map is empty.

    Example:
        >>> describe_regions("Effusion", "Grad-CAM", [])
        'Grad-CAM: the Effusion signal is diffuse; no single area holds 5% or more of the attribution.'
    """
    if not regions:
        if empty:
            return f"{method_title}: the {label} map is empty; the method attributed nothing to any area."
        return (
            f"{method_title}: the {label} signal is diffuse; no single area holds "
            f"{_percent(min_share)} or more of the attribution."
        )
    first, *others = regions
    sentence = (
        f"{method_title}: the {label} signal is concentrated in the {first.location} "
        f"({_percent(first.mass_share)} of the attribution)"
    )
    if others:
        parts = [f"the {region.location} ({_percent(region.mass_share)})" for region in others]
        also = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        sentence += f"; also {also}"
    return sentence + "."


def _percent(share: float) -> str:
    return f"{round(share * 100)}%"


def _scale_box(
    x: int, y: int, w: int, h: int, sx: float, sy: float, columns: int, rows: int
) -> tuple[int, int, int, int]:
    # Outwards, with a little slack so that exact products are not bumped by float error.
    x0 = min(columns - 1, max(0, math.floor(x * sx + 1e-6)))
    y0 = min(rows - 1, max(0, math.floor(y * sy + 1e-6)))
    x1 = max(x0 + 1, min(columns, math.ceil((x + w) * sx - 1e-6)))
    y1 = max(y0 + 1, min(rows, math.ceil((y + h) * sy - 1e-6)))
    return x0, y0, x1 - x0, y1 - y0


def _grid(cx: float, cy: float) -> str:
    row, column = min(2, int(cy * 3)), min(2, int(cx * 3))
    if row == 1 and column == 1:
        return "centre"
    return f"{_ROWS[row]} {_COLUMNS[column]}"


def _frame(lung_fields: LungFields | None) -> _Frame:
    if lung_fields is None:
        return _Frame(ASSUMED_IMAGE_LEFT, ASSUMED_IMAGE_RIGHT, ASSUMED_MIDLINE)
    return _Frame(lung_fields.image_left, lung_fields.image_right, lung_fields.midline_x)


def _principal(direction: str | None) -> str:
    return (direction or "").strip().upper()[:1]


def _third(position: float, start: float, end: float) -> int:
    fraction = (position - start) / (end - start) if end > start else 0.5
    return min(2, max(0, int(min(1.0, max(0.0, fraction)) * 3)))


def _chest_place(cx: float, cy: float, frame: _Frame, patient_orientation: tuple[str, str] | None) -> _Place:
    columns_to = _principal(patient_orientation[0]) if patient_orientation else ""
    rows_to = _principal(patient_orientation[1]) if patient_orientation else ""
    if columns_to not in ("", "L", "R"):
        return _Place(None, None, None, f"{_grid(cx, cy)} of the image")
    image_left_is_right = columns_to != "R"
    upside_down = rows_to == "H"
    left, right = frame.image_left, frame.image_right

    def zone_of(top: float, bottom: float) -> Zone:
        third = _third(cy, top, bottom)
        return _ZONES[2 - third if upside_down else third]

    if left[2] < cx < right[0]:
        zone = zone_of(min(left[1], right[1]), max(left[3], right[3]))
        return _Place("midline", zone, None, f"midline (mediastinum), at {zone} zone level")
    on_image_left = cx < frame.midline_x
    x0, y0, x1, y1 = left if on_image_left else right
    zone = zone_of(y0, y1)
    from_medial = (x1 - cx) if on_image_left else (cx - x0)
    depth: Depth = "central" if from_medial < 0.5 * (x1 - x0) else "peripheral"
    side: Side = "right" if on_image_left == image_left_is_right else "left"
    return _Place(side, zone, depth, f"{side} {zone} zone, {depth}")
