from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from sahay.training.metrics import (
    _weighted_aurocs,
    choose_thresholds,
    compute_metrics,
    expected_calibration_error,
    reliability_curve,
)

TOP_KEYS = {
    "task",
    "n_samples",
    "labels",
    "per_label",
    "macro",
    "micro",
    "accuracy",
    "confusion_matrix",
    "ece",
    "bootstrap",
}
PER_LABEL_KEYS = {
    "accuracy",
    "precision",
    "recall",
    "sensitivity",
    "specificity",
    "f1",
    "auroc",
    "auroc_ci95",
    "support_positive",
    "support_negative",
    "threshold",
}


def _scores_with_auroc(rng: np.random.Generator, n: int, separation: float = 1.0) -> tuple[np.ndarray, ...]:
    """Half positives scored N(separation, 1), half negatives N(0, 1), squashed into (0, 1)."""
    truth = (np.arange(n) % 2).astype(float)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + separation * truth)))
    return truth, score


# --------------------------------------------------------------------------- hand-checked cases


def test_binary_case_matches_hand_computed_values() -> None:
    y = np.array([[0], [0], [1], [1]])
    probs = np.array([[0.1], [0.4], [0.35], [0.8]])
    m = compute_metrics(y, probs, ["nodule"], "multilabel", [0.5], n_bootstrap=200)
    label = m["per_label"]["nodule"]
    assert set(m) == TOP_KEYS
    assert set(label) == PER_LABEL_KEYS
    # Pairs (pos, neg): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert label["auroc"] == pytest.approx(0.75)
    assert label["precision"] == 1.0
    assert label["recall"] == label["sensitivity"] == 0.5
    assert label["specificity"] == 1.0
    assert label["f1"] == pytest.approx(2 / 3)
    assert label["accuracy"] == 0.75
    assert (label["support_positive"], label["support_negative"]) == (2, 2)
    assert label["threshold"] == 0.5
    assert m["confusion_matrix"] == {"nodule": [[2, 0], [1, 1]]}
    assert m["accuracy"] == 0.75
    assert m["n_samples"] == 4 and m["labels"] == ["nodule"] and m["task"] == "multilabel"
    assert m["bootstrap"] == {"n": 200, "seed": 0, "ci": 0.95}


def test_multilabel_micro_pools_every_label_decision_and_macro_averages_labels() -> None:
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    probs = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.7], [0.1, 0.4]])
    m = compute_metrics(y, probs, ["a", "b"], "multilabel", [0.5, 0.5], n_bootstrap=0)
    # a: tp 1 (0.9), fn 1 (0.3), fp 1 (0.6), tn 1; b: tp 2, tn 2.
    assert m["confusion_matrix"] == {"a": [[1, 1], [1, 1]], "b": [[2, 0], [0, 2]]}
    assert m["micro"]["precision"] == pytest.approx(3 / 4)
    assert m["micro"]["recall"] == pytest.approx(3 / 4)
    assert m["micro"]["specificity"] == pytest.approx(3 / 4)
    assert m["micro"]["accuracy"] == m["accuracy"] == pytest.approx(6 / 8)
    assert m["macro"]["precision"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["macro"]["auroc"] == pytest.approx((m["per_label"]["a"]["auroc"] + 1.0) / 2)
    assert m["per_label"]["a"]["auroc_ci95"] is None  # n_bootstrap=0: no interval


def test_multiclass_confusion_accuracy_and_per_class_scores() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array(
        [
            [0.8, 0.1, 0.1],  # 0 -> 0
            [0.2, 0.7, 0.1],  # 0 -> 1
            [0.1, 0.8, 0.1],  # 1 -> 1
            [0.1, 0.6, 0.3],  # 1 -> 1
            [0.2, 0.2, 0.6],  # 2 -> 2
            [0.5, 0.1, 0.4],  # 2 -> 0
        ]
    )
    labels = ["normal", "pneumonia", "covid"]
    m = compute_metrics(y, probs, labels, "multiclass", [1 / 3] * 3, n_bootstrap=100)
    assert m["confusion_matrix"] == {"labels": labels, "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 1]]}
    assert m["accuracy"] == pytest.approx(4 / 6)
    pneumonia = m["per_label"]["pneumonia"]
    assert pneumonia["precision"] == pytest.approx(2 / 3)
    assert pneumonia["recall"] == 1.0
    assert pneumonia["specificity"] == pytest.approx(3 / 4)
    assert (pneumonia["support_positive"], pneumonia["support_negative"]) == (2, 4)
    # Micro precision, recall and F1 are scikit-learn's and equal top-1 accuracy.
    p, r, f, _ = precision_recall_fscore_support(y, probs.argmax(axis=1), average="micro")
    assert (m["micro"]["precision"], m["micro"]["recall"], m["micro"]["f1"]) == pytest.approx((p, r, f))
    assert m["micro"]["accuracy"] == pytest.approx(4 / 6)
    assert m["per_label"]["covid"]["auroc"] == pytest.approx(roc_auc_score(y == 2, probs[:, 2]))
    json.dumps(m, allow_nan=False)


def test_uncertain_entries_are_left_out_of_their_label_only() -> None:
    y = np.array([[1, 1], [np.nan, 0], [0, np.nan], [np.nan, 1], [0, 0]])
    probs = np.array([[0.9, 0.8], [0.9, 0.2], [0.2, 0.9], [0.1, 0.7], [0.3, 0.1]])
    m = compute_metrics(y, probs, ["effusion", "edema"], "multilabel", [0.5, 0.5], n_bootstrap=50)
    effusion, edema = m["per_label"]["effusion"], m["per_label"]["edema"]
    assert (effusion["support_positive"], effusion["support_negative"]) == (1, 2)
    assert (edema["support_positive"], edema["support_negative"]) == (2, 2)
    # Effusion's uncertain rows scored 0.9 and 0.1: counted, they would add a false positive.
    assert effusion["precision"] == 1.0 and effusion["auroc"] == 1.0
    assert m["accuracy"] == pytest.approx(7 / 7)


def test_label_with_one_class_has_no_auroc_and_the_result_is_strict_json() -> None:
    y = np.array([[0, 1], [0, 0], [0, 1], [0, 0]])
    probs = np.array([[0.2, 0.9], [0.1, 0.2], [0.6, 0.7], [0.3, 0.4]])
    m = compute_metrics(y, probs, ["absent", "present"], "multilabel", [0.5, 0.5], probs_uncalibrated=probs)
    absent = m["per_label"]["absent"]
    assert absent["auroc"] is None and absent["auroc_ci95"] is None
    assert absent["recall"] is None  # no positives: sensitivity undefined
    assert absent["precision"] == 0.0  # one false positive at 0.6
    assert m["macro"]["auroc"] == m["per_label"]["present"]["auroc"] == 1.0
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text)["ece"]["uncalibrated"] == m["ece"]["calibrated"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"probs": [[0.2, 1.4]]}, "1.4"),
        ({"y_true": [[0, 2]]}, "2.0"),
        ({"labels": ["only"]}, "['only']"),
        ({"thresholds": [0.5]}, "(2,)"),
        ({"task": "binary"}, "'binary'"),
    ],
)
def test_bad_inputs_are_named_in_the_error(kwargs: dict, message: str) -> None:
    args = {
        "y_true": [[0, 1]],
        "probs": [[0.2, 0.7]],
        "labels": ["a", "b"],
        "task": "multilabel",
        "thresholds": [0.5, 0.5],
    } | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        compute_metrics(**args, n_bootstrap=0)


def test_multiclass_labels_out_of_range_are_rejected() -> None:
    with pytest.raises(ValueError, match="found 3"):
        compute_metrics([0, 3], [[0.5, 0.5], [0.4, 0.6]], ["a", "b"], "multiclass", [0.5, 0.5])


# --------------------------------------------------------------------------- bootstrap


def test_vectorised_bootstrap_auroc_equals_sklearn_with_sample_weights() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 60)
    score = np.round(rng.random(60), 1)  # rounding makes ties, which count half
    weights = rng.integers(0, 4, size=(5, 60))
    expected = [roc_auc_score(truth, score, sample_weight=w) for w in weights]
    assert _weighted_aurocs(weights, truth, score) == pytest.approx(expected)


def test_bootstrap_skips_resamples_with_one_class() -> None:
    truth, score = np.array([0, 1, 1]), np.array([0.2, 0.5, 0.9])
    weights = np.array([[0, 2, 1], [1, 1, 1]])
    aurocs = _weighted_aurocs(weights, truth, score)
    assert np.isnan(aurocs[0]) and aurocs[1] == 1.0


def _ci(n: int, seed: int = 0) -> tuple[float, list[float]]:
    truth, score = _scores_with_auroc(np.random.default_rng(7), n)
    m = compute_metrics(truth[:, None], score[:, None], ["x"], "multilabel", [0.5], seed=seed)
    return m["per_label"]["x"]["auroc"], m["per_label"]["x"]["auroc_ci95"]


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_samples() -> None:
    small_auroc, (small_lo, small_hi) = _ci(50)
    large_auroc, (large_lo, large_hi) = _ci(2000)
    assert small_lo < small_auroc < small_hi
    assert large_lo < large_auroc < large_hi
    assert large_hi - large_lo < (small_hi - small_lo) / 3
    assert large_auroc == pytest.approx(0.76, abs=0.03)  # Phi(1 / sqrt(2)): unit-variance scores one apart


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    assert _ci(200, seed=5) == _ci(200, seed=5)
    assert _ci(200, seed=5) != _ci(200, seed=6)


# --------------------------------------------------------------------------- calibration


def test_ece_of_a_hand_computed_case() -> None:
    # Bins (0, 0.5] and (0.5, 1]: 0.5 * |0.5 - 0.15| + 0.5 * |1.0 - 0.925| = 0.2125.
    ece = expected_calibration_error([[0], [1], [1], [1]], [[0.1], [0.2], [0.9], [0.95]], "multilabel", 2)
    assert ece == pytest.approx(0.2125)
    # Multiclass: confidences 0.9 (right) and 0.6 (wrong) land in (0.5, 1]: |0.5 - 0.75| = 0.25.
    probs = [[0.9, 0.1], [0.4, 0.6]]
    assert expected_calibration_error([0, 0], probs, "multiclass", 2) == pytest.approx(0.25)


def test_ece_is_small_for_calibrated_and_larger_for_overconfident_probabilities() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((100_000, 2))
    y = (rng.random(p.shape) < p).astype(float)  # each label ~ Bernoulli(p): calibrated by design
    calibrated = expected_calibration_error(y, p, "multilabel")
    overconfident = expected_calibration_error(y, np.where(p > 0.5, p**0.2, p**5), "multilabel")
    assert calibrated < 0.01
    assert overconfident > 0.1


def test_multiclass_ece_uses_top_label_confidence() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50_000, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(len(probs))[:, None] > probs.cumsum(axis=1)).sum(axis=1)  # y ~ Categorical(probs)
    sharpened = np.exp(logits * 3) / np.exp(logits * 3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(y, probs, "multiclass") < 0.01
    assert expected_calibration_error(y, sharpened, "multiclass") > 0.05


def test_reliability_curve_bins_and_counts() -> None:
    curve = reliability_curve(
        np.array([[0.0], [1.0], [np.nan], [1.0]]), [[0.0], [0.5], [0.7], [1.0]], "multilabel", n_bins=2
    )
    assert curve.count.tolist() == [2, 1]  # 0 joins the first bin; the NaN entry is left out
    assert curve.mean_confidence.tolist() == pytest.approx([0.25, 1.0])
    assert curve.accuracy.tolist() == pytest.approx([0.5, 1.0])
    assert curve.bin_edges.tolist() == [0.0, 0.5, 1.0]


# --------------------------------------------------------------------------- thresholds


def test_youden_threshold_separates_separable_classes() -> None:
    y = np.array([[0], [0], [0], [1], [1], [1]])
    probs = np.array([[0.1], [0.2], [0.3], [0.6], [0.7], [0.9]])
    (threshold,) = choose_thresholds(y, probs, "multilabel")
    assert 0.3 < threshold <= 0.6


def test_target_sensitivity_keeps_every_positive() -> None:
    rng = np.random.default_rng(2)
    truth, score = _scores_with_auroc(rng, 300)
    (threshold,) = choose_thresholds(
        truth[:, None], score[:, None], "multilabel", method="sensitivity", target_sensitivity=1.0
    )
    assert threshold <= score[truth == 1].min()
    (looser,) = choose_thresholds(
        truth[:, None], score[:, None], "multilabel", method="sensitivity", target_sensitivity=0.8
    )
    assert looser > threshold
    assert np.mean(score[truth == 1] >= looser) >= 0.8


def test_thresholds_fall_back_where_one_class_is_present() -> None:
    y = np.array([[0, 1], [0, 0], [0, 1]])
    probs = np.array([[0.2, 0.9], [0.7, 0.1], [0.1, 0.8]])
    thresholds = choose_thresholds(y, probs, "multilabel")
    assert thresholds[0] == 0.5 and 0.1 < thresholds[1] <= 0.8
    multiclass = choose_thresholds(
        [0, 0, 1], [[0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]], "multiclass"
    )
    assert multiclass[2] == pytest.approx(1 / 3)  # class 2 never occurs
    assert np.all((multiclass >= 0) & (multiclass <= 1))


@pytest.mark.parametrize("target", [0.0, 1.5, -0.2])
def test_bad_target_sensitivity_is_rejected(target: float) -> None:
    with pytest.raises(ValueError, match=str(target)):
        choose_thresholds(
            [[0], [1]], [[0.2], [0.8]], "multilabel", method="sensitivity", target_sensitivity=target
        )


def test_threshold_method_and_target_must_agree() -> None:
    with pytest.raises(ValueError, match="needs target_sensitivity"):
        choose_thresholds([[0], [1]], [[0.2], [0.8]], "multilabel", method="sensitivity")
    with pytest.raises(ValueError, match="'median'"):
        choose_thresholds([[0], [1]], [[0.2], [0.8]], "multilabel", method="median")  # type: ignore[arg-type]
