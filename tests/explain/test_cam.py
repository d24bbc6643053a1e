"""Grad-CAM must point at the evidence for each finding separately, and leave no hooks behind."""

from __future__ import annotations

import numpy as np
import pytest

from sahay.explain.cam import class_activation_maps
from sahay.explain.overlay import render_overlay, to_image_geometry
from sahay.models.bundle import Bundle
from sahay.models.predictor import Predictor
from sahay.models.preprocess import CropBox
from sahay.models.providers import get_provider
from sahay.training.synthetic import LABELS, make_image


def _mass_in_box(heatmap: np.ndarray, box: tuple[int, int, int, int], image_side: int) -> float:
    scale = heatmap.shape[0] / image_side
    top, left, height, width = (round(v * scale) for v in box)
    return float(heatmap[top : top + height, left : left + width].sum() / heatmap.sum())


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_each_finding_heatmap_falls_on_its_own_evidence(demo_bundle: Bundle, seed: int) -> None:
    side = 300
    image = make_image(np.random.default_rng(seed), side, disc=True, stripes=True)
    predictor = Predictor(demo_bundle)
    prediction = predictor.predict([image.pixels])[0]
    layer = get_provider(demo_bundle.manifest.architecture).cam_layer
    maps = class_activation_maps(predictor.model, prediction.input_tensor, [0, 1], layer)
    heatmaps = [to_image_geometry(m, prediction.crop, image.pixels.shape) for m in maps]
    disc_box, stripes_box = image.boxes[LABELS[0]], image.boxes[LABELS[1]]
    # Each box covers 1/16 of the image; each map must concentrate on its own finding's box.
    assert _mass_in_box(heatmaps[0], disc_box, side) > 0.2
    assert _mass_in_box(heatmaps[1], stripes_box, side) > 0.2
    assert _mass_in_box(heatmaps[0], disc_box, side) > 2 * _mass_in_box(heatmaps[0], stripes_box, side)
    assert _mass_in_box(heatmaps[1], stripes_box, side) > 2 * _mass_in_box(heatmaps[1], disc_box, side)


def test_hooks_are_released_after_the_maps_are_made(demo_bundle: Bundle) -> None:
    predictor = Predictor(demo_bundle)
    image = make_image(np.random.default_rng(0), 224, disc=True, stripes=False)
    prediction = predictor.predict([image.pixels])[0]
    class_activation_maps(predictor.model, prediction.input_tensor, [0], "_bn1")
    leftover = [m for m in predictor.model.modules() if m._forward_hooks or m._backward_hooks]
    assert leftover == []


def test_unknown_method_is_bad_input(demo_bundle: Bundle) -> None:
    from sahay.errors import BadInput

    predictor = Predictor(demo_bundle)
    prediction = predictor.predict([np.zeros((32, 32), dtype=np.float32)])[0]
    with pytest.raises(BadInput, match="unknown explanation method 'magic'"):
        class_activation_maps(predictor.model, prediction.input_tensor, [0], "_bn1", method="magic")


def test_heatmap_keeps_the_image_aspect_ratio_and_is_empty_outside_a_centre_crop() -> None:
    cam = np.ones((7, 7), dtype=np.float32)
    heatmap = to_image_geometry(cam, CropBox(top=0, left=250, height=500, width=500), (500, 1000))
    assert heatmap.shape == (256, 512)
    assert heatmap[:, :120].max() == 0.0 and heatmap[:, -120:].max() == 0.0
    assert heatmap[:, 130:380].min() == pytest.approx(1.0)


def test_overlay_is_drawn_at_the_image_aspect_ratio_with_the_banner() -> None:
    pixels = np.zeros((200, 400), dtype=np.float32)
    heat = np.zeros((100, 200), dtype=np.float32)
    heat[:, 100:] = 1.0
    overlay = render_overlay(pixels, heat, caption="finding", banner="DEMONSTRATION")
    assert overlay.size == (400, 200)
    array = np.asarray(overlay)
    # Hot (red) on the right half, cold (blue) on the left, in the band between caption and banner.
    assert array[100, 350, 0] > array[100, 350, 2]
    assert array[100, 50, 2] > array[100, 50, 0]
    assert tuple(array[-2, 200]) in {(170, 0, 0), (255, 255, 255)}
