from __future__ import annotations

import pytest
import torch

from sahay.models.calibration import fit_temperature, probabilities


@pytest.mark.parametrize("true_temperature", [0.5, 2.0, 4.0])
def test_fitted_temperature_recovers_the_one_that_generated_the_labels(true_temperature: float) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 3, generator=generator) * 4
    labels = torch.bernoulli(torch.sigmoid(logits / true_temperature), generator=generator)
    fitted = fit_temperature(logits, labels, "multilabel")
    assert fitted == pytest.approx(true_temperature, rel=0.1)


def test_multiclass_temperature_recovers_the_generating_one() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(20000, 4, generator=generator) * 3
    classes = torch.multinomial(torch.softmax(logits / 2.5, dim=1), 1, generator=generator).squeeze(1)
    assert fit_temperature(logits, classes, "multiclass") == pytest.approx(2.5, rel=0.1)


def test_probabilities_apply_the_temperature_before_the_link() -> None:
    logits = torch.tensor([[2.0, -1.0]])
    assert torch.allclose(probabilities(logits, 2.0, "multilabel"), torch.sigmoid(logits / 2.0))
    softmax = probabilities(logits, 0.5, "multiclass")
    assert torch.allclose(softmax, torch.softmax(logits * 2.0, dim=1))
    assert softmax.sum().item() == pytest.approx(1.0)


def test_ignored_labels_do_not_move_the_temperature() -> None:
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(5000, 1, generator=generator) * 3
    labels = torch.bernoulli(torch.sigmoid(logits / 2.0), generator=generator)
    alone = fit_temperature(logits, labels, "multilabel")
    # A second label whose values are all uncertain (NaN) and whose logits are wild must change nothing.
    with_ignored = fit_temperature(
        torch.cat([logits, torch.randn(5000, 1, generator=generator) * 50], dim=1),
        torch.cat([labels, torch.full((5000, 1), float("nan"))], dim=1),
        "multilabel",
    )
    assert with_ignored == pytest.approx(alone, rel=1e-3)
