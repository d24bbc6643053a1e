"""``sahay train``, ``evaluate``, ``explain-eval`` and ``runs``: models on a user's own dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sahay.cli.common import (
    ImageColumn,
    LabelColumns,
    ModelName,
    PatientColumn,
    Split,
    SplitColumn,
    SplitSeed,
    Uncertain,
    choices,
    dataset_options,
    err,
    escape,
    number,
    out,
    progress_display,
    table,
)
from sahay.services import capabilities, training
from sahay.services.analyze import Budget
from sahay.services.training import TrainOptions

runs_app = typer.Typer(
    rich_markup_mode=None, help="Training and evaluation runs tracked in MLflow.", no_args_is_help=True
)

DataArgument = Annotated[
    Path,
    typer.Argument(help=f"A labelled dataset: {capabilities.described(capabilities.dataset_layouts())}."),
]
METHOD_NAMES = [method.name for method in capabilities.explain_methods()]
BACKBONE_HELP = capabilities.described(capabilities.architectures())

__all__ = ["evaluate_command", "explain_eval_command", "runs_app", "train_command"]


def train_command(
    data: DataArgument,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the bundle.")],
    task: Annotated[
        str | None, typer.Option(help="multiclass or multilabel (default: from the data).")
    ] = None,
    backbone: Annotated[str, typer.Option(help=f"The network to fine-tune. {BACKBONE_HELP}.")] = (
        TrainOptions.backbone
    ),
    epochs: Annotated[int, typer.Option(help="Most epochs to train.")] = 10,
    head_epochs: Annotated[int, typer.Option(help="Epochs that train the head alone first.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate of the head (the backbone gets a tenth).")] = 1e-3,
    image_size: Annotated[int, typer.Option(help="Input side in pixels.")] = 224,
    seed: Annotated[int, typer.Option(help="Seed for splits, shuffling and augmentation.")] = 0,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without better val AUROC.")] = 3,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    target_sensitivity: Annotated[
        float | None, typer.Option(help="Choose thresholds for this sensitivity instead of Youden's J.")
    ] = None,
    horizontal_flip: Annotated[
        bool, typer.Option("--horizontal-flip", help="Augment with flips (off: they break laterality).")
    ] = False,
    modality: Annotated[
        list[str] | None, typer.Option(help="DICOM modality the model is for (repeatable).")
    ] = None,
    body_part: Annotated[str | None, typer.Option(help="DICOM body part the model is for.")] = None,
    name: Annotated[str | None, typer.Option(help="Bundle name (default: the --out folder's name).")] = None,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    uncertain: Uncertain = "ignore",
) -> None:
    """Fine-tune a model on your dataset and write a bundle that `sahay analyze --model` uses."""
    columns = dataset_options(
        labels,
        image_column=image_column,
        patient_column=patient_column,
        split_column=split_column,
        uncertain=uncertain,
    )
    if columns["label_columns"] is not None:
        columns["label_columns"] = tuple(columns["label_columns"])
    options = TrainOptions(
        backbone=backbone,
        task=task,  # type: ignore[arg-type]  # checked by load_dataset
        epochs=epochs,
        head_epochs=head_epochs,
        batch_size=batch_size,
        lr=lr,
        image_size=image_size,
        seed=seed,
        patience=patience,
        target_sensitivity=target_sensitivity,
        horizontal_flip=horizontal_flip,
        modalities=tuple(modality or ()),
        body_part=body_part,
        name=name,
        **columns,
    )
    with progress_display() as progress:
        try:
            result = training.train(data, out_dir, options, resume=resume, progress=progress)
        except KeyboardInterrupt:
            err.print(
                "[yellow]interrupted:[/] the last completed epoch is checkpointed; "
                "run the same command with --resume to continue"
            )
            raise typer.Exit(130) from None
    manifest = result.bundle.manifest
    for note in result.notes:
        loud = note.startswith("WARNING: ")
        err.print(f"[bold yellow]{escape(note)}[/]" if loud else f"[dim]note:[/] {escape(note)}")
    metrics = table("Metric", "Value")
    for key, value in manifest.metrics.items():
        metrics.add_row(escape(key), f"{value:.4f}")
    out.print(metrics)
    out.print(
        f"Best epoch {result.best_epoch}; calibration temperature {manifest.calibration.temperature:.3f}; "
        f"MLflow run {result.run_id}"
    )
    path = escape(str(result.bundle.path))
    out.print(f"Wrote the bundle {path}. Use it with: sahay analyze IMAGE --model {path}")


def evaluate_command(
    bundle: ModelName,
    data: DataArgument,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics.json and plots.")],
    split: Split = "test",
    seed: SplitSeed = 0,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    uncertain: Uncertain = "ignore",
    by: Annotated[
        str | None,
        typer.Option(help="Also score each subgroup: sex, age, view, manufacturer, site, or a CSV column."),
    ] = None,
) -> None:
    """Measure a model on a labelled dataset: metrics.json, ROC, PR, confusion and calibration plots."""
    options = dataset_options(
        labels,
        image_column=image_column,
        patient_column=patient_column,
        split_column=split_column,
        uncertain=uncertain,
    )
    with progress_display() as progress:
        metrics = training.evaluate(
            bundle, data, out=out_dir, split=split, seed=seed, by=by, progress=progress, **options
        )
    scores = table("Label", "AUROC (95% CI)", "Sensitivity", "Specificity", "F1")
    for label, values in metrics["per_label"].items():
        ci = values["auroc_ci95"]
        auroc = "n/a" if values["auroc"] is None else f"{values['auroc']:.3f}"
        if ci:
            auroc += f" ({ci[0]:.3f}-{ci[1]:.3f})"
        scores.add_row(
            escape(label), auroc, *(number(values[k]) for k in ("sensitivity", "specificity", "f1"))
        )
    out.print(scores)
    out.print(
        f"accuracy {number(metrics['accuracy'])}; ECE {number(metrics['ece']['calibrated'])} calibrated, "
        f"{number(metrics['ece']['uncalibrated'])} uncalibrated"
    )
    if "subgroups" in metrics:
        groups = table(f"{metrics['subgroups']['by']}", "Images", "Mean AUROC", "Flags")
        for group, entry in metrics["subgroups"]["groups"].items():
            aurocs = [v["auroc"] for v in entry["per_label"].values() if v["auroc"] is not None]
            mean = number(sum(aurocs) / len(aurocs)) if aurocs else entry.get("note", "n/a")
            groups.add_row(escape(group), str(entry["images"]), mean, str(len(entry["flags"])))
        out.print(groups)
    for warning in metrics.get("warnings", []):
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print(
        f"Wrote {escape(str(out_dir / training.METRICS_FILE))} and plots; "
        f"MLflow run {metrics['mlflow_run_id']}"
    )


def explain_eval_command(
    bundle: ModelName,
    data: DataArgument,
    methods: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated methods (default: all): {choices(METHOD_NAMES)}."),
    ] = None,
    split: Split = "test",
    limit: Annotated[int, typer.Option(min=1, help="Score at most this many images of the split.")] = 50,
    explain_budget: Annotated[
        int, typer.Option(min=2, help="Occlusion and SHAP: the most model evaluations per image.")
    ] = 64,
    json_out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the scores to this JSON file.")
    ] = None,
    seed: SplitSeed = 0,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    uncertain: Uncertain = "ignore",
) -> None:
    """Rank explanation methods by faithfulness (deletion/insertion) on a labelled dataset."""
    chosen = [name.strip() for name in methods.split(",") if name.strip()] if methods else None
    options = dataset_options(
        labels,
        image_column=image_column,
        patient_column=patient_column,
        split_column=split_column,
        uncertain=uncertain,
    )
    with progress_display() as progress:
        report = training.evaluate_explanations(
            bundle,
            data,
            methods=chosen,
            split=split,
            limit=limit,
            budget=Budget(max_evaluations=explain_budget),
            json_out=json_out,
            seed=seed,
            progress=progress,
            **options,
        )
    ranked = table("Method", "Faithfulness (mean ± sd)", "Deletion AUC", "Insertion AUC", "Evaluations")
    for row in report.rows:
        score = "n/a" if row.mean_score is None else f"{row.mean_score:+.3f} ± {row.sd_score or 0:.3f}"
        ranked.add_row(
            escape(row.method),
            score,
            number(row.mean_deletion),
            number(row.mean_insertion),
            f"{row.evaluations_per_image:.0f}",
        )
    out.print(f"{escape(report.model)} on {report.images} images of {escape(report.data)} ({report.split})")
    out.print(ranked)
    out.print("Higher is more faithful; a useful method scores clearly above the random reference.")
    for skipped in report.skipped:
        err.print(f"[yellow]skipped:[/] {escape(skipped)}")
    if json_out is not None:
        out.print(f"Wrote {escape(str(json_out))}")


@runs_app.command("list")
def runs_list(limit: Annotated[int, typer.Option(min=1, help="How many runs to show.")] = 20) -> None:
    """Show recent training and evaluation runs tracked in MLflow."""
    runs, where = training.runs(limit)
    if not runs:
        out.print(f"No runs yet in {escape(where)}.")
        return
    listed = table("Run", "Kind", "Name", "Status", "Started (UTC)", "Key metric")
    listed.columns[1].no_wrap = listed.columns[4].no_wrap = True
    for run in runs:
        key = next((k for k in ("val_auroc_macro", "macro_auroc") if k in run.metrics), None)
        metric = f"{key} {run.metrics[key]:.3f}" if key else ""
        started = run.started.strftime("%Y-%m-%d %H:%M")
        listed.add_row(run.run_id, run.kind, escape(run.name), run.status.lower(), started, metric)
    out.print(listed)
