"""Out-of-domain refusal: metadata checks, and the feature-distance reference of a trained bundle."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from pydicom.data import get_testdata_file

from sahay.imaging import read_image
from sahay.models.bundle import Bundle
from sahay.models.domain import metadata_problems
from sahay.models.ood import fit_reference, knn_scores, normalise
from sahay.models.predictor import Predictor
from sahay.training.synthetic import make_dataset
from tests.factories import image_info


def test_metadata_problems_name_the_mismatch(demo_bundle: Bundle) -> None:
    chest = demo_bundle.manifest.model_copy(update={"modalities": ["CR", "DX"], "body_part": "CHEST"})
    assert metadata_problems(image_info(modality="CR", body_part="CHEST"), chest, None) == []
    assert metadata_problems(image_info(), chest, None) == []
    (problem,) = metadata_problems(image_info(modality="CT", body_part="CHEST"), chest, None)
    assert "modality is CT" in problem and "CR, DX" in problem
    (problem,) = metadata_problems(image_info(modality="CR", body_part="KNEE"), chest, None)
    assert "body part is KNEE" in problem


def test_colour_images_are_refused_by_greyscale_models(demo_bundle: Bundle) -> None:
    reference = Predictor(demo_bundle).ood
    assert reference is not None and reference.spec.expects_greyscale
    (problem,) = metadata_problems(image_info(format="jpeg", channels=3), demo_bundle.manifest, reference)
    assert "colour image" in problem


def test_knn_score_is_the_mean_cosine_distance_to_the_nearest() -> None:
    reference = normalise(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    query = normalise(np.array([[1.0, 0.0]]))
    # Distances 0, 1 and 1 - cos(45°): the two nearest are 0 and 0.2929.
    assert knn_scores(reference, query, k=2)[0] == pytest.approx((0 + (1 - np.sqrt(0.5))) / 2)


def test_threshold_is_the_percentile_of_held_out_scores() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 16)) + 5
    heldout = rng.normal(size=(100, 16)) + 5
    reference = fit_reference(train, heldout, fitted_on="test", expects_greyscale=True, k=3, percentile=90)
    scores = np.concatenate(
        [
            knn_scores(reference.vectors, normalise(heldout), 3),
            knn_scores(reference.vectors, reference.vectors, 3, exclude_self=True),
        ]
    )
    assert reference.spec.threshold == pytest.approx(np.percentile(scores, 90))
    assert reference.spec.reference_size == 200


def _refused(predictor: Predictor, images: list[np.ndarray]) -> np.ndarray:
    assert predictor.ood is not None
    predictions = predictor.predict(images)
    scores = predictor.ood.scores(np.stack([p.features for p in predictions]))
    return scores > predictor.ood.spec.threshold


def test_the_demo_bundle_refuses_clearly_different_images(demo_bundle: Bundle) -> None:
    predictor = Predictor(demo_bundle)
    photographs = [
        np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        for name in (
            "camera",
            "astronaut",
            "coffee",
            "chelsea",
            "moon",
            "text",
            "coins",
            "brick",
            "grass",
            "gravel",
        )
    ]
    scans = [
        read_image(get_testdata_file(name, download=False)).pixels
        for name in ("CT_small.dcm", "MR_small.dcm")
    ]
    refused = _refused(predictor, photographs + scans)
    assert refused.mean() >= 0.95


def test_the_demo_bundle_accepts_its_own_kind_of_image(demo_bundle: Bundle) -> None:
    predictor = Predictor(demo_bundle)
    held_out = [image.pixels for image in make_dataset(60, 224, seed=4242)]
    assert _refused(predictor, held_out).mean() <= 0.05
