"""Find the two lung fields on a frontal chest radiograph, classically (no learned model).

The result lets ``sahay.explain.regions`` name a heatmap's position in lung terms (side,
zone, depth). When the search fails, ``detect_lung_fields`` returns ``None`` and the
caller falls back to an *assumed* lung frame; it never guesses.

Method (all sizes are at the working scale, long side ``WORKING_SIDE`` = 256 pixels):

1. Greyscale (the channel mean for colour input; NaN counts as 0), resize with area
   averaging (an image whose short side would be under 32 px has no lungs), then a
   Gaussian blur (sigma ``SMOOTH_SIGMA`` = 2 px) to soften ribs and vessels. The display
   range is stretched between the 1st and 99th percentiles; a range under
   ``MIN_CONTRAST`` (0.02) is a flat image: no lungs.
2. Dark pixels: at or below Otsu's threshold over the whole image (pass 1), or, if pass 1
   finds no lungs, at or below Otsu's threshold over the body only (pass 2). The body is
   what is left after removing pass 1's dark pixels connected to the image border. Pass 2
   helps when a large dark background pulls pass 1's threshold below the lungs.
3. A morphological opening (a 5 px ellipse, then an 11 px one if the first finds no pair)
   breaks thin dark bridges, then 8-connected components are labelled. Components
   touching the image border are air outside the body and are dropped.
4. Of the components covering at least ``MIN_LUNG_SHARE`` (2 %) of the image, the largest
   one whose centroid lies left of the image's vertical centre line and the largest one
   right of it are the two lungs. Each is closed (9 px ellipse) and its holes filled.
5. The pair must look like two lungs, or the pass fails: each box at least 25 % of the
   image's height and at least 0.8 times as tall as it is wide (in pixels); the two boxes
   overlap vertically by at least half the shorter one's height; the smaller lung has at
   least a fifth of the larger one's area; the midline (below) lies between the two
   lungs' centroids.

Coordinates in ``LungFields`` are normalised to the image: x = column / width and
y = row / height, both in [0, 1], so they apply unchanged to the original image and to
any heatmap with its aspect ratio. A box is (x0, y0, x1, y1) with x1, y1 exclusive.
"image_left" and "image_right" are sides of the image as displayed, not of the patient.
The midline is the centre of the thoracic cage: halfway between the outer (lateral)
edges of the two lungs, which, unlike the inner edges, the heart shadow does not move.

Example:
    >>> import numpy as np
    >>> detect_lung_fields(np.full((300, 300), 0.5, dtype=np.float32)) is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORKING_SIDE = 256
SMOOTH_SIGMA = 2.0
MIN_CONTRAST = 0.02
MIN_LUNG_SHARE = 0.02
MIN_LUNG_HEIGHT = 0.25
MIN_LUNG_ASPECT = 0.8
MIN_VERTICAL_OVERLAP = 0.5
MIN_AREA_RATIO = 0.2
_MIN_WORKING_SIDE = 32
_OPEN_SIZES = (5, 11)
_CLOSE_SIZE = 9

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class LungFields:
    """Two lung fields, in normalised image coordinates (see the module docstring)."""

    mask: np.ndarray
    """bool, both lungs, at the working scale (long side ``WORKING_SIDE``, the image's aspect ratio)."""
    image_left: Box
    """(x0, y0, x1, y1) of the lung on the image's left (the patient's right on a standard display)."""
    image_right: Box
    """(x0, y0, x1, y1) of the lung on the image's right."""
    midline_x: float
    """The thoracic cage's centre line: halfway between the lungs' outer edges."""


def detect_lung_fields(pixels: np.ndarray) -> LungFields | None:
    """Find the lungs on a display-ready chest radiograph (float in [0, 1], air dark, bone bright).

    ``pixels`` is (H, W), (H, W, 1) or (H, W, 3). Returns ``None`` when two plausible lung
    fields are not found: a flat image, a photograph, a lateral view, a CT slice that does
    not look like a radiograph, or a radiograph whose lungs merge with the outside air.

    Raises:
        ValueError: ``pixels`` is not a 2-D image or an image with 1 or 3 channels.
    """
    small = _working_image(pixels)
    if small is None:
        return None
    small = cv2.GaussianBlur(small, (0, 0), SMOOTH_SIGMA)
    low, high = np.percentile(small, [1.0, 99.0])
    if high - low < MIN_CONTRAST:
        return None
    scaled = np.round(np.clip((small - low) / (high - low), 0.0, 1.0) * 255.0).astype(np.uint8)

    dark = _otsu_dark(scaled, np.ones(scaled.shape, dtype=bool))
    body = ~_border_connected(dark)
    candidates = [dark]
    if body.sum() >= MIN_LUNG_SHARE * body.size:
        candidates.append(_otsu_dark(scaled, body) & body)
    for mask in candidates:
        for open_size in _OPEN_SIZES:
            found = _two_lungs(mask, open_size)
            if found is not None:
                return found
    return None


def _working_image(pixels: np.ndarray) -> np.ndarray | None:
    """The image in grey at the working scale (long side ``WORKING_SIDE``), or None when too small.

    Shrunk first and cleaned after: a 2k film is 3.6 M pixels, the working image 65 thousand."""
    array = np.asarray(pixels)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3))) or array.size == 0:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got an array of shape {array.shape}")
    height, width = array.shape[:2]
    scale = WORKING_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(size) < _MIN_WORKING_SIDE:
        return None
    # Non-finite values (never from Sahay's readers) would spread through the resize: zero them first.
    finite: np.ndarray = np.asarray(array, dtype=np.float32)
    if not np.isfinite(finite).all():
        finite = np.nan_to_num(finite, nan=0.0, posinf=1.0, neginf=0.0)
    # An integer-factor area average first: OpenCV's fast path, 1 ms where one step takes 8 on a 2k film.
    factor = max(1, min(height // size[1], width // size[0]))
    if factor > 1:
        whole = finite[: height // factor * factor, : width // factor * factor]
        finite = cv2.resize(whole, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    small = cv2.resize(finite, size, interpolation=cv2.INTER_AREA)
    return np.asarray(small.mean(axis=2) if small.ndim == 3 else small, dtype=np.float32)


def _otsu_dark(scaled: np.ndarray, within: np.ndarray) -> np.ndarray:
    values = scaled[within].reshape(-1, 1)
    threshold, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return np.asarray(scaled <= threshold)


def _border_connected(mask: np.ndarray) -> np.ndarray:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0]) if count > 1 else np.zeros(mask.shape, dtype=bool)


def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _two_lungs(dark: np.ndarray, open_size: int) -> LungFields | None:
    height, width = dark.shape
    opened = cv2.morphologyEx(dark.astype(np.uint8), cv2.MORPH_OPEN, _ellipse(open_size))
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(opened, connectivity=8)
    best: dict[bool, int] = {}
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        touches_border = x == 0 or y == 0 or x + w == width or y + h == height
        if touches_border or area < MIN_LUNG_SHARE * height * width:
            continue
        on_left = bool(centroids[label][0] < width / 2)
        if on_left not in best or area > stats[best[on_left], cv2.CC_STAT_AREA]:
            best[on_left] = label
    if len(best) < 2:
        return None
    left, right = (_clean(labels == best[side]) for side in (True, False))
    left_box, right_box = _box(left), _box(right)
    if not _plausible(left, right, left_box, right_box):
        return None
    midline = (left_box[0] + right_box[2]) / 2
    left_cx = float(np.nonzero(left)[1].mean() + 0.5) / width
    right_cx = float(np.nonzero(right)[1].mean() + 0.5) / width
    if not left_cx < midline < right_cx:
        return None
    return LungFields(mask=left | right, image_left=left_box, image_right=right_box, midline_x=midline)


def _clean(component: np.ndarray) -> np.ndarray:
    closed = cv2.morphologyEx(component.astype(np.uint8), cv2.MORPH_CLOSE, _ellipse(_CLOSE_SIZE)) > 0
    # Holes (vessels, nodules, rib crossings) are the background the image border cannot reach.
    return np.asarray(closed | ~_border_connected(~closed))


def _box(component: np.ndarray) -> Box:
    rows, cols = np.nonzero(component)
    height, width = component.shape
    return (
        float(cols.min()) / width,
        float(rows.min()) / height,
        float(cols.max() + 1) / width,
        float(rows.max() + 1) / height,
    )


def _plausible(left: np.ndarray, right: np.ndarray, left_box: Box, right_box: Box) -> bool:
    height, width = left.shape
    for x0, y0, x1, y1 in (left_box, right_box):
        if y1 - y0 < MIN_LUNG_HEIGHT or (y1 - y0) * height < MIN_LUNG_ASPECT * (x1 - x0) * width:
            return False
    overlap = min(left_box[3], right_box[3]) - max(left_box[1], right_box[1])
    shorter = min(left_box[3] - left_box[1], right_box[3] - right_box[1])
    if overlap < MIN_VERTICAL_OVERLAP * shorter:
        return False
    areas = sorted((int(left.sum()), int(right.sum())))
    return areas[0] >= MIN_AREA_RATIO * areas[1]
