"""Evaluation plots, one function per plot, each writing a PNG and returning its path.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas, never through pyplot, so
there is no global figure registry to leak into and no display is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from sahay.analysis import Task
from sahay.training.metrics import label_columns, reliability_curve

_DPI = 110
_SKIPPED = "skipped: one class present"


def new_figure(width: float = 6.0, height: float = 5.0) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    figure.clear()  # not registered with pyplot: dropping it frees it
    return path


def _note_skipped(ax: Axes, label: str) -> None:
    ax.plot([], [], linestyle="none", label=f"{label} ({_SKIPPED})")


def plot_roc(
    y_true: ArrayLike, probs: ArrayLike, labels: Sequence[str], task: Task, path: Path | str
) -> Path:
    """ROC curve per label (one-vs-rest for multiclass), AUROC in the legend, chance diagonal."""
    figure = new_figure()
    ax = figure.subplots()
    for label, column in zip(labels, label_columns(y_true, probs, task), strict=True):
        if not column.has_both_classes:
            _note_skipped(ax, label)
            continue
        fpr, tpr, _ = roc_curve(column.truth, column.score)
        ax.plot(fpr, tpr, label=f"{label} (AUROC {roc_auc_score(column.truth, column.score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    ax.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_pr(y_true: ArrayLike, probs: ArrayLike, labels: Sequence[str], task: Task, path: Path | str) -> Path:
    """Precision-recall curve per label (one-vs-rest for multiclass), average precision in the legend."""
    figure = new_figure()
    ax = figure.subplots()
    for label, column in zip(labels, label_columns(y_true, probs, task), strict=True):
        if not column.has_both_classes:
            _note_skipped(ax, label)
            continue
        precision, recall, _ = precision_recall_curve(column.truth, column.score)
        average = average_precision_score(column.truth, column.score)
        ax.step(recall, precision, where="post", label=f"{label} (AP {average:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend(loc="lower left", fontsize="small")
    return _save(figure, path)


def _draw_counts(ax: Axes, matrix: np.ndarray, tick_labels: Sequence[str], fontsize: float) -> None:
    """A heatmap of counts, each cell written in a colour readable on its background."""
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    dark = matrix > matrix.max() / 2
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if dark[row, col] else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=fontsize)
    ticks = range(len(tick_labels))
    ax.set_xticks(ticks, tick_labels, rotation=45 if len(tick_labels) > 2 else 0, ha="right")
    ax.set_yticks(ticks, tick_labels)


def _is_multiclass_confusion(confusion: Mapping[str, Any]) -> bool:
    return set(confusion) == {"labels", "matrix"} and all(isinstance(x, str) for x in confusion["labels"])


def plot_confusion(metrics_confusion: Mapping[str, Any], path: Path | str) -> Path:
    """Draw the ``confusion_matrix`` entry of ``compute_metrics``.

    Multiclass: one K x K heatmap of counts (rows true, columns predicted). Multilabel: a grid
    of 2 x 2 matrices [[tn, fp], [fn, tp]], one per label.
    """
    if _is_multiclass_confusion(metrics_confusion):
        labels = list(metrics_confusion["labels"])
        size = max(5.0, 0.6 * len(labels) + 3)
        figure = new_figure(size, size)
        ax = figure.subplots()
        _draw_counts(ax, np.asarray(metrics_confusion["matrix"], dtype=int), labels, fontsize=9)
        ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
        figure.tight_layout()
        return _save(figure, path)
    if not metrics_confusion:
        raise ValueError("metrics_confusion holds no labels: pass compute_metrics(...)['confusion_matrix']")
    n_cols = math.ceil(math.sqrt(len(metrics_confusion)))
    n_rows = math.ceil(len(metrics_confusion) / n_cols)
    figure = new_figure(3.0 * n_cols + 1, 3.0 * n_rows + 0.6)
    axes = np.atleast_1d(figure.subplots(n_rows, n_cols)).ravel()
    for ax, (label, matrix) in zip(axes, metrics_confusion.items(), strict=False):
        _draw_counts(ax, np.asarray(matrix, dtype=int), ["neg", "pos"], fontsize=11)
        ax.set(xlabel="predicted", ylabel="true", title=label)
    for ax in axes[len(metrics_confusion) :]:
        ax.set_axis_off()
    figure.suptitle("Confusion per label")
    figure.tight_layout()
    return _save(figure, path)


def plot_calibration(
    y_true: ArrayLike,
    probs: ArrayLike,
    task: Task,
    path: Path | str,
    *,
    probs_uncalibrated: ArrayLike | None = None,
    names: tuple[str, str] = ("uncalibrated", "calibrated"),
    title: str = "Calibration",
) -> Path:
    """Reliability diagram: observed accuracy against confidence per bin, ECE in the legend.

    Both curves are drawn when ``probs_uncalibrated`` is given; ``names`` label the two. A lower
    panel shows how many predictions fall in each bin.
    """
    figure = new_figure(6.0, 6.0)
    curve_ax, count_ax = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    curves: list[tuple[str, ArrayLike]] = [(names[1], probs)]
    if probs_uncalibrated is not None:
        curves.insert(0, (names[0], probs_uncalibrated))
    for name, values in curves:
        curve = reliability_curve(y_true, values, task)
        filled = curve.count > 0
        line = curve_ax.plot(
            curve.mean_confidence[filled],
            curve.accuracy[filled],
            marker="o",
            label=f"{name} (ECE {curve.ece:.3f})",
        )[0]
        centres = (curve.bin_edges[:-1] + curve.bin_edges[1:]) / 2
        width = np.diff(curve.bin_edges)
        count_ax.bar(centres, curve.count, width=width, alpha=0.4, color=line.get_color(), label=name)
    curve_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    confidence = "predicted probability" if task == "multilabel" else "confidence (top-class probability)"
    observed = "observed frequency" if task == "multilabel" else "observed accuracy"
    curve_ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel=observed, title=title)
    curve_ax.legend(loc="upper left", fontsize="small")
    count_ax.set(xlabel=confidence, ylabel="count")
    figure.tight_layout()
    return _save(figure, path)


def write_all_plots(
    y_true: ArrayLike,
    probs: ArrayLike,
    labels: Sequence[str],
    task: Task,
    metrics: Mapping[str, Any],
    out_dir: Path | str,
    *,
    probs_uncalibrated: ArrayLike | None = None,
) -> dict[str, Path]:
    """Write roc.png, pr.png, confusion.png and calibration.png into ``out_dir``.

    ``metrics`` is the dict from ``compute_metrics`` on the same predictions.
    """
    out = Path(out_dir)
    return {
        "roc": plot_roc(y_true, probs, labels, task, out / "roc.png"),
        "pr": plot_pr(y_true, probs, labels, task, out / "pr.png"),
        "confusion": plot_confusion(metrics["confusion_matrix"], out / "confusion.png"),
        "calibration": plot_calibration(
            y_true, probs, task, out / "calibration.png", probs_uncalibrated=probs_uncalibrated
        ),
    }
