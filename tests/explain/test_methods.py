"""Every explanation method: the right evidence per finding, bounded cost, no hooks left behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sahay.errors import BadInput
from sahay.explain.faithfulness import deletion_insertion, random_map
from sahay.explain.methods import METHODS, Budget, MethodInput, get_method
from sahay.explain.methods.occlusion import window_plan
from sahay.explain.methods.shapley import sampling_plan
from tests.explain.known_models import CAM_LAYER, SIDE, HalvesModel, noise_image

# The one-pass CAM reads a GAP-plus-linear head's class maps (test_onepass_cam); these run the network.
CLASS_SPECIFIC = [name for name, method in METHODS.items() if method.class_specific and method.needs_network]


def _maps(name: str, budget: Budget | None = None) -> tuple[list[np.ndarray], int]:
    model = HalvesModel().eval()
    request = MethodInput(model, noise_image(), [0, 1], CAM_LAYER, budget or Budget())
    result = get_method(name).run(request)
    return result.maps, result.evaluations


def _left_share(heatmap: np.ndarray) -> float:
    return float(heatmap[:, : SIDE // 2].sum() / heatmap.sum())


def test_the_known_model_answers_as_constructed() -> None:
    model = HalvesModel().eval()
    image = noise_image()
    blurred_left = image.clone()
    blurred_left[:, :, : SIDE // 2] = image[:, :, : SIDE // 2].mean()
    with torch.no_grad():
        both, left_gone = torch.sigmoid(model(torch.stack([image, blurred_left])))
    assert both[0] > 0.9 and both[1] > 0.9
    assert left_gone[0] < 0.1 and left_gone[1] > 0.9


@pytest.mark.parametrize("name", CLASS_SPECIFIC)
def test_each_finding_map_falls_in_the_half_its_output_reads(name: str) -> None:
    (left_label, right_label), _ = _maps(name)
    assert left_label.shape == right_label.shape == (SIDE, SIDE)
    assert left_label.min() >= 0.0 and left_label.max() == pytest.approx(1.0)
    assert _left_share(left_label) > 0.8
    assert _left_share(right_label) < 0.2


def test_eigencam_is_documented_as_one_map_for_every_finding() -> None:
    (first, second), _ = _maps("eigencam")
    assert not METHODS["eigencam"].class_specific
    np.testing.assert_allclose(first, second)


@pytest.mark.parametrize("name", ["occlusion", "shap"])
@pytest.mark.parametrize("budget", [5, 17, 64, 100])
def test_perturbation_methods_stay_within_their_budget(name: str, budget: int) -> None:
    model = HalvesModel().eval()
    seen: list[int] = []
    handle = model.register_forward_hook(lambda _m, inputs, _o: seen.append(int(inputs[0].shape[0])))
    progress: list[tuple[int, int]] = []
    request = MethodInput(
        model,
        noise_image(),
        [0, 1],
        CAM_LAYER,
        Budget(max_evaluations=budget, batch_size=8),
        lambda done, total: progress.append((done, total)),
    )
    try:
        result = get_method(name).run(request)
    finally:
        handle.remove()
    assert sum(seen) == result.evaluations <= budget
    assert max(seen) <= 8  # batched as asked
    assert progress[-1] == (result.evaluations, result.evaluations)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_budget_plans_match_the_documented_defaults() -> None:
    assert window_plan(224, 0.25, 64) == (56, 28, 7)
    assert sampling_plan(64) == (4, 3)
    with pytest.raises(ValueError, match="at least 2"):
        Budget(max_evaluations=1)


def test_shapley_sampling_is_reproducible() -> None:
    first, _ = _maps("shap")
    second, _ = _maps("shap")
    np.testing.assert_array_equal(first[0], second[0])


@pytest.mark.parametrize("name", [name for name, method in METHODS.items() if method.needs_network])
def test_methods_leave_no_hooks_on_the_model(name: str) -> None:
    model = HalvesModel().eval()
    get_method(name).run(MethodInput(model, noise_image(), [0], CAM_LAYER, Budget(max_evaluations=10)))
    assert [m for m in model.modules() if m._forward_hooks or m._backward_hooks] == []


def test_unknown_method_names_the_choices() -> None:
    with pytest.raises(BadInput, match=r"unknown explanation method 'magic'.*gradcam.*occlusion.*shap"):
        get_method("magic")


@pytest.mark.parametrize("name", CLASS_SPECIFIC)
def test_a_real_map_is_more_faithful_than_a_random_or_a_wrong_one(name: str) -> None:
    model = HalvesModel().eval()
    (left_label, _), _ = _maps(name)
    wrong = np.fliplr(left_label).copy()  # the same shape, on the half the output never reads
    candidates = [left_label, random_map((SIDE, SIDE), seed=3), wrong]
    real, random, flipped = deletion_insertion(
        model, noise_image(), [0, 0, 0], candidates, torch.sigmoid, steps=8
    )
    assert real is not None and random is not None and flipped is not None
    assert real.score > random.score + 0.2
    assert real.score > flipped.score + 0.5
    assert real.deletion_auc < flipped.deletion_auc and real.insertion_auc > flipped.insertion_auc


def test_an_empty_map_is_not_scored() -> None:
    model = HalvesModel().eval()
    (score,) = deletion_insertion(model, noise_image(), [0], [np.zeros((SIDE, SIDE))], torch.sigmoid)
    assert score is None


def test_a_saturated_output_makes_the_score_not_informative() -> None:
    model = HalvesModel().eval()
    (left_label, _), _ = _maps("gradcam")
    (informative,) = deletion_insertion(model, noise_image(), [0], [left_label], torch.sigmoid, steps=4)
    # The same model behind a large bias: the probability stays near 1 whatever is blurred.
    (saturated,) = deletion_insertion(
        model, noise_image(), [0], [left_label], lambda logits: torch.sigmoid(logits / 1000 + 10), steps=4
    )
    assert informative is not None and informative.informative
    assert (
        saturated is not None
        and not saturated.informative
        and saturated.score == pytest.approx(0.0, abs=1e-3)
    )
