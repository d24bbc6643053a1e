"""On a trained bundle, each finding's map must point at that finding's own evidence."""

from __future__ import annotations

import numpy as np
import pytest

from sahay.explain.methods import METHODS, Budget, MethodInput
from sahay.explain.overlay import to_image_geometry
from sahay.models.bundle import Bundle
from sahay.models.predictor import Predictor
from sahay.models.preprocess import CropBox
from sahay.models.providers import get_provider
from sahay.training.synthetic import LABELS, make_image


def _mass_in_box(heatmap: np.ndarray, box: tuple[int, int, int, int], image_side: int) -> float:
    scale = heatmap.shape[0] / image_side
    top, left, height, width = (round(v * scale) for v in box)
    return float(heatmap[top : top + height, left : left + width].sum() / heatmap.sum())


@pytest.mark.parametrize("method", [name for name, m in METHODS.items() if m.class_specific])
@pytest.mark.parametrize("seed", [11, 12])
def test_each_finding_heatmap_falls_on_its_own_evidence(demo_bundle: Bundle, seed: int, method: str) -> None:
    side = 300
    image = make_image(np.random.default_rng(seed), side, disc=True, stripes=True)
    predictor = Predictor(demo_bundle)
    prediction = predictor.predict([image.pixels])[0]
    layer = get_provider(demo_bundle.manifest.architecture).cam_layer
    request = MethodInput(
        predictor.model,
        prediction.input_tensor,
        [0, 1],
        layer,
        Budget(max_evaluations=37),
        class_maps=prediction.class_maps,
    )
    maps = METHODS[method].run(request).maps
    heatmaps = [to_image_geometry(m, prediction.crop, image.pixels.shape) for m in maps]
    disc_box, stripes_box = image.boxes[LABELS[0]], image.boxes[LABELS[1]]
    # Each box covers 1/16 of the image; each map must hold well over that share on its own box.
    assert _mass_in_box(heatmaps[0], disc_box, side) > 0.15
    assert _mass_in_box(heatmaps[1], stripes_box, side) > 0.15
    assert _mass_in_box(heatmaps[0], disc_box, side) > 2 * _mass_in_box(heatmaps[0], stripes_box, side)
    assert _mass_in_box(heatmaps[1], stripes_box, side) > 2 * _mass_in_box(heatmaps[1], disc_box, side)


def test_heatmap_keeps_the_image_aspect_ratio_and_is_empty_outside_a_centre_crop() -> None:
    cam = np.ones((7, 7), dtype=np.float32)
    heatmap = to_image_geometry(cam, CropBox(top=0, left=250, height=500, width=500), (500, 1000))
    assert heatmap.shape == (256, 512)
    assert heatmap[:, :120].max() == 0.0 and heatmap[:, -120:].max() == 0.0
    assert heatmap[:, 130:380].min() == pytest.approx(1.0)
