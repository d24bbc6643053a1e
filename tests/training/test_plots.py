from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sahay.analysis import Task
from sahay.training.metrics import compute_metrics
from sahay.training.plots import plot_calibration, plot_confusion, plot_pr, plot_roc, write_all_plots

PLOTS = {"roc", "pr", "confusion", "calibration"}


def _assert_real_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 100 and image.height > 100
        rgb = np.asarray(image.convert("RGB")).astype(np.uint32)
    colours = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    assert len(np.unique(colours)) > 10  # drawn on, not one flat colour


def _multilabel(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Three labels; the last has no positives, and a few entries are uncertain."""
    y = (rng.random((120, 3)) < [0.4, 0.3, 0.0]).astype(float)
    y[:5, 0] = np.nan
    probs = np.clip(0.6 * y + 0.4 * rng.random(y.shape), 0, 1)
    probs = np.nan_to_num(probs, nan=0.5)
    return y, probs, ["effusion", "nodule", "absent"]


def _multiclass(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Four classes; class 3 never occurs."""
    y = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 4)) + 2.0 * np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs, ["normal", "pneumonia", "covid", "other"]


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
def test_write_all_plots_writes_four_real_pngs(task: Task, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y, probs, labels = _multilabel(rng) if task == "multilabel" else _multiclass(rng)
    metrics = compute_metrics(y, probs, labels, task, [0.5] * len(labels), n_bootstrap=50)
    uncalibrated = probs**0.5 if task == "multilabel" else probs
    written = write_all_plots(
        y, probs, labels, task, metrics, tmp_path / "plots", probs_uncalibrated=uncalibrated
    )
    assert set(written) == PLOTS
    for name, path in written.items():
        assert path == tmp_path / "plots" / f"{name}.png"
        _assert_real_png(path)


def test_each_plot_returns_the_path_it_wrote(tmp_path: Path) -> None:
    y, probs, labels = _multilabel(np.random.default_rng(1))
    metrics = compute_metrics(y, probs, labels, "multilabel", [0.5] * 3, n_bootstrap=0)
    paths = [
        plot_roc(y, probs, labels, "multilabel", tmp_path / "r.png"),
        plot_pr(y, probs, labels, "multilabel", tmp_path / "p.png"),
        plot_confusion(metrics["confusion_matrix"], tmp_path / "c.png"),
        plot_calibration(y, probs, "multilabel", tmp_path / "k.png"),
    ]
    for path in paths:
        _assert_real_png(path)


def test_plot_rejects_inputs_that_do_not_match(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        plot_roc(np.zeros((3, 2)), np.full((3, 3), 0.5), ["a", "b", "c"], "multilabel", tmp_path / "r.png")
    with pytest.raises(ValueError, match="no labels"):
        plot_confusion({}, tmp_path / "c.png")
