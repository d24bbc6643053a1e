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
from tests.factories import image_info, refused_by_ood


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


def test_threshold_separates_new_in_domain_vectors_from_shifted_ones() -> None:
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16) * 3

    def sample(n: int, shift: float = 0.0) -> np.ndarray:
        return centre + shift + rng.normal(size=(n, 16))

    reference = fit_reference(sample(60), sample(12), fitted_on="test", expects_greyscale=True)
    fresh = knn_scores(reference.vectors, normalise(sample(2000)), reference.spec.k)
    shifted = knn_scores(reference.vectors, normalise(sample(200, shift=4.0)), reference.spec.k)
    assert (fresh > reference.spec.threshold).mean() <= 0.02
    assert (shifted > reference.spec.threshold).mean() >= 0.95
    plain = fit_reference(sample(60), sample(12), fitted_on="test", expects_greyscale=True, margin=0.0)
    assert plain.spec.threshold < reference.spec.threshold


def test_a_reference_needs_enough_images() -> None:
    with pytest.raises(ValueError, match="at least 10 images"):
        fit_reference(np.ones((4, 3)), np.ones((2, 3)), fitted_on="x", expects_greyscale=True)


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
    refused = refused_by_ood(predictor, photographs + scans)
    assert refused.mean() >= 0.95


def test_the_demo_bundle_accepts_its_own_kind_of_image(demo_bundle: Bundle) -> None:
    predictor = Predictor(demo_bundle)
    held_out = [image.pixels for image in make_dataset(60, 224, seed=4242)]
    assert refused_by_ood(predictor, held_out).mean() <= 0.05
