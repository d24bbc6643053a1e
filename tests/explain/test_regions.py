"""Heatmaps into regions and words: boxes in the image's pixels, shares, lung terms, sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sahay.analysis import ImageInfo, Region
from sahay.explain.lungs import LungFields, detect_lung_fields
from sahay.explain.regions import describe_regions, find_regions, is_chest_radiograph
from tests.factories import chest_phantom

# Lung fields as drawn by hand: image-left lung x 0.15-0.42, image-right x 0.58-0.85, both y 0.15-0.75.
FIELDS = LungFields(
    mask=np.zeros((256, 256), dtype=bool),
    image_left=(0.15, 0.15, 0.42, 0.75),
    image_right=(0.58, 0.15, 0.85, 0.75),
    midline_x=0.5,
)


def disc(shape: tuple[int, int], cx: float, cy: float, radius: float, value: float = 1.0) -> np.ndarray:
    """A map of zeros with a disc of ``value`` centred at normalised (cx, cy); radius in map pixels."""
    rows, columns = np.indices(shape)
    inside = (columns + 0.5 - cx * shape[1]) ** 2 + (rows + 0.5 - cy * shape[0]) ** 2 <= radius**2
    return np.where(inside, value, 0.0).astype(np.float32)


def _region(location: str, share: float, index: int = 1) -> Region:
    return Region(index=index, box=(0, 0, 1, 1), mass_share=share, peak=1.0, grid="centre", location=location)


# Regions and boxes


def test_a_blob_on_a_non_square_image_of_another_size() -> None:
    rows, columns = 1000, 800  # the image; the map is its 512 x 410 copy
    heatmap = np.full((512, 410), 0.1, dtype=np.float32)
    heatmap[100:200, 50:150] = 1.0
    [region] = find_regions(heatmap, (rows, columns))
    x, y, width, height = region.box
    sx, sy = columns / 410, rows / 512
    assert (x, y) == (math.floor(50 * sx), math.floor(100 * sy))
    assert (x + width, y + height) == (math.ceil(150 * sx), math.ceil(200 * sy))
    assert region.index == 1
    assert region.mass_share == pytest.approx(100 * 100 / (100 * 100 + 0.1 * (512 * 410 - 100 * 100)))
    assert region.peak == pytest.approx(1.0)
    assert region.grid == "upper left"
    assert region.location == "upper left of the image"
    assert region.side is None and region.zone is None and region.depth is None


def test_a_map_at_full_size_gives_the_blob_s_own_pixels() -> None:
    heatmap = np.zeros((300, 500), dtype=np.float32)
    heatmap[220:260, 400:480] = 0.8
    [region] = find_regions(heatmap, (300, 500))
    assert region.box == (400, 220, 80, 40)
    assert region.mass_share == pytest.approx(1.0)
    assert region.peak == pytest.approx(0.8)
    assert region.location == "lower right of the image"


def test_boxes_are_clipped_to_the_image() -> None:
    heatmap = np.zeros((512, 410), dtype=np.float32)
    heatmap[400:, 300:] = 1.0
    [region] = find_regions(heatmap, (1000, 800))
    x, y, width, height = region.box
    assert x + width == 800 and y + height == 1000


def test_regions_are_ordered_by_mass_and_numbered() -> None:
    shape = (200, 300)
    heatmap = disc(shape, 0.2, 0.5, 20) + disc(shape, 0.8, 0.5, 30)
    regions = find_regions(heatmap, (400, 600))
    assert [r.index for r in regions] == [1, 2]
    assert [r.grid for r in regions] == ["middle right", "middle left"]
    small, large = np.pi * 20**2, np.pi * 30**2
    assert regions[0].mass_share == pytest.approx(large / (small + large), abs=0.01)
    assert regions[1].mass_share == pytest.approx(small / (small + large), abs=0.01)
    assert sum(r.mass_share for r in regions) == pytest.approx(1.0)


def test_min_share_drops_a_tiny_blob() -> None:
    shape = (200, 200)
    heatmap = disc(shape, 0.3, 0.3, 30) + disc(shape, 0.8, 0.8, 5)
    assert len(find_regions(heatmap, shape, min_share=0.0)) == 2
    [kept] = find_regions(heatmap, shape)
    assert kept.grid == "upper left"
    assert kept.mass_share == pytest.approx(900 / 925, abs=0.01)


def test_max_regions_keeps_the_largest() -> None:
    shape = (300, 300)
    heatmap = np.sum(
        [disc(shape, cx, 0.5, radius) for cx, radius in [(0.15, 20), (0.5, 25), (0.85, 30)]], axis=0
    )
    regions = find_regions(heatmap, shape, max_regions=2)
    assert [r.grid for r in regions] == ["middle right", "centre"]
    assert find_regions(heatmap, shape, max_regions=0) == []


def test_threshold_sets_what_counts_as_high() -> None:
    heatmap = np.zeros((100, 100), dtype=np.float32)
    heatmap[10:30, 10:30] = 1.0
    heatmap[60:90, 60:90] = 0.4
    assert len(find_regions(heatmap, (100, 100))) == 1
    assert len(find_regions(heatmap, (100, 100), threshold=0.3)) == 2


def test_diagonal_neighbours_are_one_region() -> None:
    heatmap = np.zeros((60, 60), dtype=np.float32)
    for i in range(10, 50):
        heatmap[i, i] = 1.0
    assert len(find_regions(heatmap, (60, 60))) == 1


@pytest.mark.parametrize(
    "heatmap", [np.zeros((50, 40), dtype=np.float32), np.zeros((0, 0), dtype=np.float32)]
)
def test_an_empty_map_has_no_regions(heatmap: np.ndarray) -> None:
    assert find_regions(heatmap, (500, 400)) == []


def test_nan_counts_as_zero() -> None:
    heatmap = np.full((50, 50), np.nan, dtype=np.float32)
    assert find_regions(heatmap, (50, 50)) == []
    heatmap[5:15, 5:15] = 1.0
    [region] = find_regions(heatmap, (50, 50))
    assert region.mass_share == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("cx", "cy", "grid"),
    [
        (0.1, 0.1, "upper left"),
        (0.5, 0.1, "upper centre"),
        (0.9, 0.1, "upper right"),
        (0.1, 0.5, "middle left"),
        (0.5, 0.5, "centre"),
        (0.9, 0.5, "middle right"),
        (0.1, 0.9, "lower left"),
        (0.5, 0.9, "lower centre"),
        (0.9, 0.9, "lower right"),
    ],
)
def test_grid_words(cx: float, cy: float, grid: str) -> None:
    [region] = find_regions(disc((90, 120), cx, cy, 5), (900, 1200))
    assert region.grid == grid
    assert region.location == f"{grid} of the image"


def test_the_centroid_is_weighted_by_attribution() -> None:
    # One component over columns 20-70 of 90 (its box's centre is in the centre column), with
    # almost all of its mass in columns 62-70 (the right column).
    heatmap = np.zeros((90, 90), dtype=np.float32)
    heatmap[40:50, 20:62] = 0.02
    heatmap[40:50, 62:70] = 1.0
    [region] = find_regions(heatmap, (90, 90), threshold=0.01)
    assert region.box == (20, 40, 50, 10)
    assert region.grid == "middle right"


@pytest.mark.parametrize("shape", [(10,), (4, 4, 4)])
def test_a_map_that_is_not_2d_raises(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="2-D"):
        find_regions(np.zeros(shape, dtype=np.float32), (4, 4))


@pytest.mark.parametrize(("map_shape", "image_shape"), [((410, 512), (1000, 800)), ((100, 100), (100, 150))])
def test_a_map_with_another_aspect_ratio_raises(
    map_shape: tuple[int, int], image_shape: tuple[int, int]
) -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        find_regions(np.ones(map_shape, dtype=np.float32), image_shape)


def test_rounding_of_the_map_size_is_accepted() -> None:
    # 3001 x 2003 at long side 512: 512 x 341.7, which to_image_geometry rounds to 342.
    [region] = find_regions(np.ones((512, 342), dtype=np.float32), (3001, 2003))
    assert region.box == (0, 0, 2003, 3001)


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"min_share": -0.1}, {"max_regions": -1}]
)
def test_bad_parameters_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        find_regions(np.ones((10, 10), dtype=np.float32), (10, 10), **kwargs)  # type: ignore[arg-type]


# Chest radiographs: the patient's side, the zone and the depth


def _chest_region(
    cx: float,
    cy: float,
    lung_fields: LungFields | None = FIELDS,
    orientation: tuple[str, str] | None = None,
) -> Region:
    [region] = find_regions(
        disc((200, 160), cx, cy, 6),
        (1000, 800),
        lung_fields=lung_fields,
        chest=True,
        patient_orientation=orientation,
    )
    return region


def test_the_image_s_upper_left_is_the_patient_s_right_upper_zone() -> None:
    region = _chest_region(0.3, 0.2)
    assert (region.side, region.zone) == ("right", "upper")
    assert region.location.startswith("right upper zone")
    assert region.grid == "upper left"


def test_lower_right_lateral_is_the_left_lower_zone_peripheral() -> None:
    region = _chest_region(0.8, 0.7)
    assert (region.side, region.zone, region.depth) == ("left", "lower", "peripheral")
    assert region.location == "left lower zone, peripheral"


def test_medial_and_middle() -> None:
    region = _chest_region(0.38, 0.45)
    assert region.location == "right middle zone, central"


@pytest.mark.parametrize("orientation", [None, ("L", "F"), ("LP", "FL"), ("", "")])
def test_standard_orientation(orientation: tuple[str, str] | None) -> None:
    assert _chest_region(0.3, 0.2, orientation=orientation).side == "right"


def test_a_flipped_image_swaps_the_sides() -> None:
    assert _chest_region(0.2, 0.2, orientation=("R", "F")).location == "left upper zone, peripheral"
    assert _chest_region(0.8, 0.7, orientation=("R", "F")).location == "right lower zone, peripheral"


def test_an_upside_down_image_counts_zones_from_the_bottom() -> None:
    assert _chest_region(0.3, 0.2, orientation=("L", "H")).zone == "lower"


def test_a_lateral_view_has_no_sides() -> None:
    region = _chest_region(0.8, 0.7, orientation=("A", "F"))
    assert region.side is None and region.zone is None and region.depth is None
    assert region.location == "lower right of the image"


def test_between_the_lungs_is_the_midline() -> None:
    region = _chest_region(0.5, 0.45)
    assert (region.side, region.zone, region.depth) == ("midline", "middle", None)
    assert region.location == "midline (mediastinum), at middle zone level"


def test_outside_the_lung_boxes_is_clamped_to_the_nearest_lung() -> None:
    # Above the apex and lateral to the image-right lung.
    assert _chest_region(0.92, 0.08).location == "left upper zone, peripheral"


def test_without_lung_fields_the_assumed_frame_is_used() -> None:
    # Assumed lungs: x 0.10-0.45 and 0.55-0.90, y 0.10-0.90.
    assert _chest_region(0.15, 0.8, lung_fields=None).location == "right lower zone, peripheral"
    assert _chest_region(0.4, 0.5, lung_fields=None).location == "right middle zone, central"
    assert _chest_region(0.5, 0.5, lung_fields=None).side == "midline"


def test_detected_lung_fields_change_the_zone() -> None:
    # Small, high lungs: y 0.18-0.52. A blob at y 0.47 is in their lower third,
    # but in the middle third of the assumed frame (y 0.10-0.90).
    phantom = chest_phantom(1000, 800, lung_centre_y=0.35, lung_half_height=0.17, lung_half_width=0.12)
    fields = detect_lung_fields(phantom.pixels)
    assert fields is not None
    assert _chest_region(0.3, 0.47, lung_fields=fields).zone == "lower"
    assert _chest_region(0.3, 0.47, lung_fields=None).zone == "middle"


def test_a_phantom_from_end_to_end() -> None:
    phantom = chest_phantom(1000, 800)
    fields = detect_lung_fields(phantom.pixels)
    assert fields is not None
    x0, y0, x1, y1 = phantom.image_right
    heatmap = disc((512, 410), x0 + 0.85 * (x1 - x0), y0 + 0.85 * (y1 - y0), 15)
    [region] = find_regions(heatmap, (1000, 800), lung_fields=fields, chest=True)
    assert region.location == "left lower zone, peripheral"


def test_lung_fields_are_ignored_when_the_image_is_not_a_chest() -> None:
    [region] = find_regions(disc((200, 160), 0.8, 0.8, 6), (1000, 800), lung_fields=FIELDS, chest=False)
    assert region.side is None and region.zone is None and region.depth is None
    assert region.location == "lower right of the image"


# Sentences


def test_one_region_sentence() -> None:
    sentence = describe_regions("Effusion", "Grad-CAM", [_region("right lower zone, peripheral", 0.641)])
    assert sentence == (
        "Grad-CAM: the Effusion signal is concentrated in the right lower zone, peripheral "
        "(64% of the attribution)."
    )


def test_two_region_sentence() -> None:
    regions = [_region("right lower zone, peripheral", 0.64), _region("left lower zone, central", 0.206, 2)]
    assert describe_regions("Effusion", "Grad-CAM", regions) == (
        "Grad-CAM: the Effusion signal is concentrated in the right lower zone, peripheral "
        "(64% of the attribution); also the left lower zone, central (21%)."
    )


def test_three_region_sentence() -> None:
    regions = [
        _region("lower right of the image", 0.5),
        _region("upper left of the image", 0.2, 2),
        _region("centre of the image", 0.051, 3),
    ]
    assert describe_regions("Nodule", "Occlusion", regions) == (
        "Occlusion: the Nodule signal is concentrated in the lower right of the image "
        "(50% of the attribution); also the upper left of the image (20%) and the centre of the image (5%)."
    )


def test_diffuse_and_empty_sentences() -> None:
    assert describe_regions("Effusion", "Grad-CAM", []) == (
        "Grad-CAM: the Effusion signal is diffuse; no single area holds 5% or more of the attribution."
    )
    assert describe_regions("Effusion", "Grad-CAM", [], min_share=0.1).endswith(
        "holds 10% or more of the attribution."
    )
    assert describe_regions("Effusion", "Grad-CAM", [], empty=True) == (
        "Grad-CAM: the Effusion map is empty; the method attributed nothing to any area."
    )


def test_sentences_from_found_regions() -> None:
    heatmap = disc((200, 160), 0.8, 0.7, 20)
    regions = find_regions(heatmap, (1000, 800), lung_fields=FIELDS, chest=True)
    assert describe_regions("Effusion", "Grad-CAM", regions) == (
        "Grad-CAM: the Effusion signal is concentrated in the left lower zone, peripheral "
        "(100% of the attribution)."
    )


# Which images are chest radiographs


def _info(
    modality: str | None = None, body_part: str | None = None, image_format: str = "dicom"
) -> ImageInfo:
    return ImageInfo(
        filename="image",
        sha256="0" * 64,
        format=image_format,  # type: ignore[arg-type]
        rows=512,
        columns=512,
        channels=1,
        modality=modality,
        body_part=body_part,
    )


@pytest.mark.parametrize(
    ("info", "model_body_part", "expected"),
    [
        (_info("CR", "CHEST"), None, True),
        (_info("CR", "CHEST"), "chest", True),
        (_info("DX"), "chest", True),
        (_info("DX", "Thorax"), None, True),
        (_info("RG", "PORT CHEST"), None, True),
        (_info("dx ", "lung"), None, True),
        (_info(None, None, "png"), "chest", True),
        (_info(None, None, "png"), "CHEST", True),
        (_info("CT", "CHEST"), "chest", False),
        (_info("MR", "CHEST"), "chest", False),
        (_info("MG", "BREAST"), "chest", False),
        (_info(None, None, "png"), None, False),
        (_info(None, None, "png"), "hand", False),
        (_info("CR", None), None, False),
        (_info("DX", "KNEE"), "chest", False),
        (_info("DX", "THORACIC SPINE"), None, False),
    ],
)
def test_is_chest_radiograph(info: ImageInfo, model_body_part: str | None, expected: bool) -> None:
    assert is_chest_radiograph(info, model_body_part) is expected
