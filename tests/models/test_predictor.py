from __future__ import annotations

import numpy as np
import pytest
import torch

from sahay.models.bundle import Bundle, save_bundle
from sahay.models.predictor import Predictor
from sahay.models.preprocess import preprocess
from sahay.training.synthetic import make_dataset


def test_probabilities_are_the_temperature_scaled_sigmoid_of_the_logits(demo_bundle: Bundle) -> None:
    predictor = Predictor(demo_bundle)
    images = [im.pixels for im in make_dataset(4, 224, seed=5)]
    manifest = demo_bundle.manifest
    with torch.no_grad():
        batch = torch.stack([preprocess(p, manifest.input)[0] for p in images])
        expected = torch.sigmoid(predictor.model(batch) / manifest.calibration.temperature)
    for prediction, row in zip(predictor.predict(images), expected, strict=True):
        got = [f.probability for f in prediction.findings]
        assert got == pytest.approx(row.tolist(), abs=1e-5)
        for finding in prediction.findings:
            assert finding.positive == (finding.probability >= finding.threshold)


def test_batching_does_not_change_results(demo_bundle: Bundle) -> None:
    predictor = Predictor(demo_bundle)
    images = [im.pixels for im in make_dataset(5, 224, seed=6)]
    one_by_one = [[f.probability for f in p.findings] for p in predictor.predict(images, batch_size=1)]
    batched = [[f.probability for f in p.findings] for p in predictor.predict(images, batch_size=4)]
    assert np.allclose(one_by_one, batched, atol=1e-5)


def test_model_detects_what_was_drawn(demo_bundle: Bundle) -> None:
    predictor = Predictor(demo_bundle)
    dataset = make_dataset(16, 224, seed=123)
    predictions = predictor.predict([im.pixels for im in dataset])
    correct = [
        [f.positive for f in p.findings] == [bool(t) for t in im.targets]
        for p, im in zip(predictions, dataset, strict=True)
    ]
    assert sum(correct) >= 14


def test_multiclass_marks_only_the_top_class_positive(demo_bundle: Bundle, tmp_path) -> None:
    manifest = demo_bundle.manifest.model_copy(
        update={
            "ood": None,
            "task": "multiclass",
            "thresholds": dict.fromkeys(demo_bundle.manifest.labels, 0.0),
        }
    )
    bundle = save_bundle(tmp_path / "mc", manifest, demo_bundle.load_model().state_dict())
    predictor = Predictor(bundle)
    for prediction in predictor.predict([im.pixels for im in make_dataset(4, 224, seed=9)]):
        probabilities = [f.probability for f in prediction.findings]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert [f.positive for f in prediction.findings].count(True) == 1
        assert prediction.findings[int(np.argmax(probabilities))].positive
