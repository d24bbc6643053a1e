"""Evaluation metrics for a model's predictions on held-out data.

Pure functions over numpy arrays. Every metric comes from scikit-learn except what it lacks:
the expected calibration error (Guo et al., 2017) and a vectorised bootstrap of AUROC. Each
bootstrap AUROC equals ``roc_auc_score(truth, score, sample_weight=counts)`` where ``counts``
says how often each row was drawn; the tests check this against scikit-learn.

Conventions, for K labels and N samples:

- ``y_true``: multilabel, an (N, K) array of 0/1 in which NaN marks an uncertain entry that
  every metric of that label ignores; multiclass, an (N,) array of class indices in [0, K).
- ``probs``: (N, K) probabilities, a sigmoid per label (multilabel) or softmax rows (multiclass).
- ``thresholds``: (K,). A multilabel label is predicted positive when ``prob >= threshold``.
  A multiclass prediction is the argmax, so there the thresholds are informational only, and
  the per-class (one-vs-rest) metrics count a sample as predicted ``k`` when the argmax is ``k``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from sahay.analysis import Task

ThresholdMethod = Literal["youden", "sensitivity"]

CI_LEVEL = 0.95
ECE_BINS = 15
_BOOTSTRAP_CHUNK_CELLS = 4_000_000  # resample-count cells held at once: bounds memory for large N

_AVERAGED_KEYS = ("accuracy", "precision", "recall", "specificity", "f1", "auroc")


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class LabelColumn:
    """One label seen as a binary problem: the rows it uses, their 0/1 truth and their scores.

    Multilabel rows exclude uncertain (NaN) entries; multiclass columns are one-vs-rest.
    """

    rows: np.ndarray  # (n,) indices into the N samples
    truth: np.ndarray  # (n,) int 0/1
    score: np.ndarray  # (n,) float probability of the positive class

    @property
    def has_both_classes(self) -> bool:
        return 0 < int(self.truth.sum()) < len(self.truth)


def check_inputs(
    y_true: ArrayLike, probs: ArrayLike, task: Task, labels: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y_true, probs)`` as float arrays after checking shapes, values and ``task``.

    Raises ``ValueError`` naming the value that is wrong.
    """
    if task not in ("multilabel", "multiclass"):
        raise ValueError(f"task must be 'multilabel' or 'multiclass', got {task!r}")
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must be a non-empty (N, K) array, got shape {p.shape}")
    n, k = p.shape
    if labels is not None and len(labels) != k:
        raise ValueError(f"probs has {k} columns but {len(labels)} labels were given: {list(labels)}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"probs must be finite, found {p[~np.isfinite(p)][0]}")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"probs must lie in [0, 1], found values in [{p.min()}, {p.max()}]")
    y = np.asarray(y_true, dtype=float)
    expected_shape = (n, k) if task == "multilabel" else (n,)
    if y.shape != expected_shape:
        raise ValueError(f"{task} y_true must have shape {expected_shape} to match probs, got {y.shape}")
    if task == "multilabel":
        bad = y[~np.isnan(y) & (y != 0) & (y != 1)]
        if bad.size:
            raise ValueError(f"multilabel y_true must hold 0, 1 or NaN (uncertain), found {bad[0]}")
    else:
        bad = y[~np.isin(y, np.arange(k))]
        if bad.size:
            raise ValueError(f"multiclass y_true must hold class indices in [0, {k - 1}], found {bad[0]}")
    return y, p


def label_columns(y_true: ArrayLike, probs: ArrayLike, task: Task) -> list[LabelColumn]:
    """Split validated inputs into one binary problem per label (one-vs-rest for multiclass)."""
    y, p = check_inputs(y_true, probs, task)
    columns = []
    for k in range(p.shape[1]):
        if task == "multilabel":
            rows = np.flatnonzero(~np.isnan(y[:, k]))
            truth = y[rows, k]
        else:
            rows = np.arange(len(y))
            truth = y == k
        columns.append(LabelColumn(rows, truth.astype(int), p[rows, k]))
    return columns


def _check_thresholds(thresholds: ArrayLike, n_labels: int) -> np.ndarray:
    t = np.asarray(thresholds, dtype=float)
    if t.shape != (n_labels,):
        raise ValueError(f"thresholds must have shape ({n_labels},), got {t.shape}")
    if not np.all((t >= 0.0) & (t <= 1.0)):
        raise ValueError(f"thresholds must lie in [0, 1], got {t.tolist()}")
    return t


def _predicted(probs: np.ndarray, task: Task, thresholds: np.ndarray) -> np.ndarray:
    """(N, K) booleans: the per-label decision that the metrics score."""
    if task == "multilabel":
        return probs >= thresholds
    return np.eye(probs.shape[1], dtype=bool)[probs.argmax(axis=1)]


def _number(value: Any) -> float | None:
    """A JSON-safe float: None where the metric is undefined (NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


# --------------------------------------------------------------------------- binary metrics


def _binary_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, specificity, F1 and counts of one set of binary decisions."""
    if truth.size == 0:
        return dict.fromkeys(("accuracy", "precision", "recall", "specificity", "f1"), None) | {
            "tn": 0,
            "fp": 0,
            "fn": 0,
            "tp": 0,
        }
    # Scores per class [negative, positive]: the negative class's recall is the specificity.
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1], zero_division=np.nan
    )
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(truth, predicted, labels=[0, 1]).ravel())
    return {
        "accuracy": _number(accuracy_score(truth, predicted)),
        "precision": _number(precision[1]),
        "recall": _number(recall[1]),
        "specificity": _number(recall[0]),
        "f1": _number(f1[1]),
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
    }


def _auroc(truth: np.ndarray, score: np.ndarray) -> float | None:
    if not 0 < truth.sum() < len(truth):
        return None  # undefined with one class present
    return _number(roc_auc_score(truth, score))


# --------------------------------------------------------------------------- bootstrap


def _resample_counts(rng: np.random.Generator, n_rows: int, n_resamples: int) -> np.ndarray:
    """(n_resamples, n_rows): how often each row is drawn in each resample with replacement."""
    drawn = rng.integers(0, n_rows, size=(n_resamples, n_rows))
    flat = drawn + (np.arange(n_resamples) * n_rows)[:, None]
    return np.bincount(flat.ravel(), minlength=n_resamples * n_rows).reshape(n_resamples, n_rows)


def _weighted_aurocs(weights: np.ndarray, truth: np.ndarray, score: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``weights`` (B, n), NaN where a resample holds one class only.

    The Mann-Whitney form: the weighted share of (positive, negative) pairs that are ranked
    correctly, ties counting half. Sorting once and summing per tied score keeps it O(B n).
    """
    order = np.argsort(score, kind="stable")
    _, group_starts = np.unique(score[order], return_index=True)
    positive = truth[order].astype(bool)
    w = weights[:, order].astype(float)
    pos = np.add.reduceat(np.where(positive, w, 0.0), group_starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, w), group_starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    correct_pairs = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    all_pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(all_pairs > 0, correct_pairs / all_pairs, np.nan)


def _chunks(total: int, size: int) -> Iterator[int]:
    for start in range(0, total, size):
        yield min(size, total - start)


def bootstrap_auroc_ci(
    columns: Sequence[LabelColumn], n_rows: int, n_bootstrap: int = 1000, seed: int = 0
) -> list[list[float] | None]:
    """95% percentile bootstrap interval of each label's AUROC, or None where undefined.

    Rows are resampled with replacement, the same resamples for every label (so intervals of
    different labels come from the same draws). Resamples with one class only are skipped.
    """
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    estimates: list[list[np.ndarray]] = [[] for _ in columns]
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // max(n_rows, 1))
    for n_resamples in _chunks(n_bootstrap, chunk):
        counts = _resample_counts(rng, n_rows, n_resamples)
        for k, column in enumerate(columns):
            if column.has_both_classes:
                estimates[k].append(_weighted_aurocs(counts[:, column.rows], column.truth, column.score))
    tail = 100 * (1 - CI_LEVEL) / 2
    intervals: list[list[float] | None] = []
    for parts in estimates:
        values = np.concatenate(parts) if parts else np.array([])
        values = values[~np.isnan(values)]
        if values.size == 0:
            intervals.append(None)
        else:
            intervals.append([float(v) for v in np.percentile(values, [tail, 100 - tail])])
    return intervals


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per equal-width bin of confidence: mean confidence, observed accuracy and count.

    Empty bins hold NaN means and a zero count. For multilabel, "confidence" is each entry's
    probability and "accuracy" the share of positives; for multiclass, the top-class probability
    and the share of correct argmax predictions.
    """

    bin_edges: np.ndarray  # (n_bins + 1,)
    mean_confidence: np.ndarray  # (n_bins,)
    accuracy: np.ndarray  # (n_bins,)
    count: np.ndarray  # (n_bins,) int

    @property
    def ece(self) -> float:
        """Count-weighted mean gap |accuracy - confidence| over non-empty bins; NaN if all empty."""
        total = self.count.sum()
        if total == 0:
            return math.nan
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.mean_confidence[filled])
        return float((self.count[filled] / total * gaps).sum())


def _confidence_and_outcome(y: np.ndarray, p: np.ndarray, task: Task) -> tuple[np.ndarray, np.ndarray]:
    if task == "multilabel":
        certain = ~np.isnan(y)
        return p[certain], y[certain]
    return p.max(axis=1), (p.argmax(axis=1) == y).astype(float)


def reliability_curve(
    y_true: ArrayLike, probs: ArrayLike, task: Task, n_bins: int = ECE_BINS
) -> ReliabilityCurve:
    """Bin the confidences into ``n_bins`` equal-width bins ((m-1)/M, m/M] (0 joins the first).

    Multilabel uses every certain (sample, label) entry as a binary prediction of probability
    p; multiclass uses the top-label confidence against the correctness of the argmax.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p = check_inputs(y_true, probs, task)
    confidence, outcome = _confidence_and_outcome(y, p, task)
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=outcome, minlength=n_bins) / count
    return ReliabilityCurve(np.linspace(0.0, 1.0, n_bins + 1), mean_confidence, accuracy, count)


def expected_calibration_error(
    y_true: ArrayLike, probs: ArrayLike, task: Task, n_bins: int = ECE_BINS
) -> float:
    """Expected calibration error (Guo et al., 2017): sum over bins of (n_b / n) |acc_b - conf_b|.

    Equal-width bins as in ``reliability_curve``. NaN when there is nothing to bin (every
    multilabel entry uncertain).

    >>> ece = expected_calibration_error([[0], [1], [1], [1]], [[0.1], [0.2], [0.9], [0.95]], "multilabel", 2)
    >>> round(ece, 4)  # bins (0, 0.5] and (0.5, 1]: 0.5 * |0.5 - 0.15| + 0.5 * |1 - 0.925|
    0.2125
    """
    return reliability_curve(y_true, probs, task, n_bins).ece


# --------------------------------------------------------------------------- report


def _mean_defined(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _confusion(
    y: np.ndarray, predicted: np.ndarray, columns: list[LabelColumn], labels: list[str], task: Task
) -> dict[str, Any]:
    if task == "multiclass":
        matrix = confusion_matrix(y.astype(int), predicted.argmax(axis=1), labels=range(len(labels)))
        return {"labels": list(labels), "matrix": matrix.tolist()}
    return {
        label: (
            confusion_matrix(column.truth, predicted[column.rows, k], labels=[0, 1]).tolist()
            if len(column.truth)
            else [[0, 0], [0, 0]]  # every value of this label was uncertain and ignored
        )
        for k, (label, column) in enumerate(zip(labels, columns, strict=True))
    }


def compute_metrics(
    y_true: ArrayLike,
    probs: ArrayLike,
    labels: Sequence[str],
    task: Task,
    thresholds: ArrayLike,
    *,
    probs_uncalibrated: ArrayLike | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every evaluation number for a bundle, as a JSON-serialisable dict (None where undefined).

    ``accuracy`` at the top level is the top-1 accuracy for multiclass and, for multilabel, the
    mean accuracy over all certain (sample, label) entries (the same as ``micro.accuracy``).
    ``micro`` pools every per-label decision; for multiclass its precision, recall and F1 are
    scikit-learn's micro averages (all equal to top-1 accuracy) and its accuracy is top-1.
    ``macro`` is the mean over labels of each value that is defined.

    >>> m = compute_metrics([[0], [0], [1], [1]], [[0.1], [0.4], [0.35], [0.8]], ["nodule"],
    ...                     "multilabel", [0.5], n_bootstrap=0)
    >>> m["per_label"]["nodule"]["auroc"], m["per_label"]["nodule"]["recall"]
    (0.75, 0.5)
    >>> m["confusion_matrix"]["nodule"]
    [[2, 0], [1, 1]]
    """
    labels = list(labels)
    y, p = check_inputs(y_true, probs, task, labels)
    t = _check_thresholds(thresholds, len(labels))
    columns = label_columns(y, p, task)
    predicted = _predicted(p, task, t)
    intervals = bootstrap_auroc_ci(columns, len(p), n_bootstrap, seed)

    per_label = {}
    for k, (label, column) in enumerate(zip(labels, columns, strict=True)):
        scores = _binary_metrics(column.truth, predicted[column.rows, k])
        per_label[label] = {
            "accuracy": scores["accuracy"],
            "precision": scores["precision"],
            "recall": scores["recall"],
            "sensitivity": scores["recall"],
            "specificity": scores["specificity"],
            "f1": scores["f1"],
            "auroc": _auroc(column.truth, column.score),
            "auroc_ci95": intervals[k],
            "support_positive": scores["tp"] + scores["fn"],
            "support_negative": scores["tn"] + scores["fp"],
            "threshold": float(t[k]),
        }

    pooled_truth = np.concatenate([c.truth for c in columns])
    pooled_predicted = np.concatenate([predicted[c.rows, k] for k, c in enumerate(columns)])
    pooled = _binary_metrics(pooled_truth, pooled_predicted)
    micro = {key: pooled[key] for key in _AVERAGED_KEYS if key != "auroc"}
    micro["auroc"] = _auroc(pooled_truth, np.concatenate([c.score for c in columns]))
    if task == "multiclass":
        micro["accuracy"] = _number(accuracy_score(y.astype(int), p.argmax(axis=1)))

    uncalibrated = None
    if probs_uncalibrated is not None:
        check_inputs(y, probs_uncalibrated, task, labels)
        uncalibrated = _number(expected_calibration_error(y, probs_uncalibrated, task))

    return {
        "task": task,
        "n_samples": len(p),
        "labels": labels,
        "per_label": per_label,
        "macro": {key: _mean_defined([m[key] for m in per_label.values()]) for key in _AVERAGED_KEYS},
        "micro": micro,
        "accuracy": micro["accuracy"],
        "confusion_matrix": _confusion(y, predicted, columns, labels, task),
        "ece": {"calibrated": _number(expected_calibration_error(y, p, task)), "uncalibrated": uncalibrated},
        "bootstrap": {"n": n_bootstrap, "seed": seed, "ci": CI_LEVEL},
    }


# --------------------------------------------------------------------------- thresholds


def _fallback_threshold(task: Task, n_labels: int) -> float:
    return 0.5 if task == "multilabel" else 1.0 / n_labels


def _threshold_for(column: LabelColumn, method: ThresholdMethod, target_sensitivity: float | None) -> float:
    # No intermediate points dropped: the highest threshold reaching a sensitivity may be one of them.
    fpr, tpr, cut = roc_curve(column.truth, column.score, drop_intermediate=False)
    if method == "youden":
        best = int(np.argmax(tpr - fpr))  # first maximum: the highest threshold among ties
    else:
        assert target_sensitivity is not None
        best = int(np.argmax(tpr >= target_sensitivity))  # thresholds decrease, tpr rises
    # Halfway to the next lower score: the same decisions on these data, but the threshold does not
    # sit on a held-out score, which on well-separated data would be a calibrated 0.99999.
    lower = cut[best + 1] if best + 1 < len(cut) else 0.0
    chosen = cut[best] if np.isinf(cut[best]) else (cut[best] + lower) / 2
    return float(np.clip(chosen, 0.0, 1.0))  # the first threshold is inf


def choose_thresholds(
    y_true: ArrayLike,
    probs: ArrayLike,
    task: Task,
    *,
    method: ThresholdMethod = "youden",
    target_sensitivity: float | None = None,
) -> np.ndarray:
    """One decision threshold per label, chosen on held-out (calibrated) probabilities.

    ``"youden"`` maximises Youden's J = sensitivity + specificity - 1 on the ROC curve;
    ``"sensitivity"`` takes the highest threshold whose sensitivity reaches
    ``target_sensitivity``. The threshold is placed halfway between the chosen score and the
    next lower one. A label with one class present falls back to 0.5 (multilabel) or 1/K
    (multiclass). Multiclass thresholds are one-vs-rest and informational only.

    >>> choose_thresholds([[0], [0], [1], [1]], [[0.1], [0.3], [0.6], [0.9]], "multilabel")
    array([0.45])
    >>> choose_thresholds([[0], [0], [1], [1]], [[0.1], [0.3], [0.6], [0.9]], "multilabel",
    ...                   method="sensitivity", target_sensitivity=0.5)
    array([0.75])
    """
    if method not in ("youden", "sensitivity"):
        raise ValueError(f"method must be 'youden' or 'sensitivity', got {method!r}")
    if method == "sensitivity" and target_sensitivity is None:
        raise ValueError("method='sensitivity' needs target_sensitivity in (0, 1], got None")
    if method == "youden" and target_sensitivity is not None:
        raise ValueError(
            f"target_sensitivity={target_sensitivity} applies only to method='sensitivity', not 'youden'"
        )
    if target_sensitivity is not None and not 0.0 < target_sensitivity <= 1.0:
        raise ValueError(f"target_sensitivity must lie in (0, 1], got {target_sensitivity}")
    columns = label_columns(y_true, probs, task)
    fallback = _fallback_threshold(task, len(columns))
    return np.array(
        [_threshold_for(c, method, target_sensitivity) if c.has_both_classes else fallback for c in columns]
    )
