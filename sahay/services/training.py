"""Training and evaluation as use cases: fine-tune, evaluate, rank explanation methods, list runs.

Every long job reports through one ``Progress``; the trainer's epochs arrive as logged steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahay.explain.options import Budget
from sahay.progress import Progress, counter, report
from sahay.training.options import METRICS_FILE, TrainOptions

__all__ = ["METRICS_FILE", "TrainOptions", "evaluate", "evaluate_explanations", "runs", "train"]

if TYPE_CHECKING:
    from sahay.config import Settings
    from sahay.explain.evaluate import ExplanationEvaluation
    from sahay.training.tracking import RunSummary
    from sahay.training.train import TrainEvent, TrainResult


def train(
    data: Path,
    out: Path,
    options: TrainOptions,
    *,
    resume: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Fine-tune on ``data`` and write a bundle to ``out`` (MLflow-tracked, resumable)."""
    from sahay.training.train import train as run_training

    def on_event(event: TrainEvent) -> None:
        if event.kind == "scan":
            report(progress, "reading images", event.done, event.total, unit="images")
        elif event.kind == "batch":
            loss = "" if event.loss is None else f"loss {event.loss:.4f}"
            report(progress, f"epoch {event.epoch}/{options.epochs}", event.done, event.total, detail=loss)
        elif event.kind == "epoch" and event.record is not None:
            r = event.record
            auroc = "n/a" if r.val_auroc is None else f"{r.val_auroc:.4f}"
            summary = (
                f"epoch {r.epoch} ({r.phase}): train loss {r.train_loss:.4f}, "
                f"val loss {r.val_loss:.4f}, val AUROC {auroc}"
            )
            report(progress, summary, log=True)

    return run_training(data, out, options, resume=resume, settings=settings, progress=on_event)


def evaluate(
    model: str,
    data: Path,
    *,
    out: Path,
    split: str = "test",
    seed: int = 0,
    by: str | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    **dataset_options: Any,
) -> dict[str, Any]:
    """Score a model on a labelled split: metrics.json, ROC, PR, confusion and calibration plots.

    ``by`` adds metrics per subgroup (sex, age, view, manufacturer, site, or a CSV column)."""
    from sahay.training.evaluate import evaluate as run_evaluation

    def on_progress(stage: str, done: int, total: int) -> None:
        report(progress, stage, done, total)

    return run_evaluation(
        model,
        data,
        out=out,
        split=split,
        seed=seed,
        by=by,
        settings=settings,
        progress=on_progress,
        **dataset_options,
    )


def evaluate_explanations(
    model: str,
    data: Path,
    *,
    methods: Sequence[str] | None = None,
    split: str = "test",
    limit: int = 50,
    budget: Budget | None = None,
    json_out: Path | None = None,
    seed: int = 0,
    settings: Settings | None = None,
    progress: Progress | None = None,
    **dataset_options: Any,
) -> ExplanationEvaluation:
    """Rank explanation methods by deletion/insertion faithfulness on up to ``limit`` images."""
    from sahay.explain.evaluate import evaluate_explanations as run

    return run(
        model,
        data,
        methods=methods,
        split=split,
        limit=limit,
        budget=budget,
        settings=settings,
        progress=counter(progress, "explaining images", unit="images"),
        json_out=json_out,
        seed=seed,
        **dataset_options,
    )


def runs(limit: int = 20, settings: Settings | None = None) -> tuple[list[RunSummary], str]:
    """The newest training and evaluation runs, and where MLflow keeps them."""
    from sahay.config import get_settings
    from sahay.training.tracking import list_runs, tracking_uri

    settings = settings or get_settings()
    return list_runs(settings, limit=limit), tracking_uri(settings)
