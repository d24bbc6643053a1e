"""``sahay models``: list, inspect, pull, import and remove model bundles; fit the out-of-domain reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sahay.cli.common import (
    ImageColumn,
    LabelColumns,
    ModelName,
    PatientColumn,
    SplitColumn,
    dataset_options,
    err,
    escape,
    number,
    out,
    progress_display,
    table,
)

app = typer.Typer(
    rich_markup_mode=None, help="List, pull, import and inspect model bundles.", no_args_is_help=True
)


@app.command("list")
def models_list(
    available: Annotated[bool, typer.Option("--available", help="List models that can be pulled.")] = False,
) -> None:
    """List installed models (or, with --available, the catalogue)."""
    from sahay.config import get_settings
    from sahay.services import models

    if available:
        listed = table("Name", "Labels", "sha256 known", "Source")
        for entry in models.catalogue():
            listed.add_row(
                entry.name, str(len(entry.kept_outputs)), "yes" if entry.sha256 else "no", entry.url
            )
        out.print(listed)
        return
    bundles, broken = models.installed()
    if not bundles:
        out.print(
            f"No models installed in {get_settings().models_dir}. "
            "Try `sahay demo` or `sahay models pull NAME`."
        )
    listed = table("Name", "Version", "Task", "Modalities", "Body part", "Labels")
    for bundle in bundles:
        m = bundle.manifest
        name = f"{m.name} [red](demo)[/]" if m.demonstration else m.name
        listed.add_row(
            name, m.version, m.task, ",".join(m.modalities) or "any", m.body_part or "-", str(len(m.labels))
        )
    if bundles:
        out.print(listed)
    for folder, reason in broken.items():
        err.print(f"[yellow]warning:[/] skipped {escape(str(folder))}: {escape(reason)}")


@app.command("info")
def models_info(
    name: ModelName,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole bundle.json instead.")] = False,
) -> None:
    """Show a model's card: what it is for and not for, its data, evidence, failure modes, calibration."""
    from sahay.services import models

    manifest = models.model_card(name)
    if as_json:
        out.print_json(manifest.model_dump_json())
        return
    for line in models.CardOut.of(manifest).lines():
        out.print(escape(line))


@app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Catalogue name, e.g. xrv-densenet121-res224-all.")],
) -> None:
    """Download a model, check its sha256, and install it."""
    from sahay.services import models

    with progress_display() as progress:
        bundle = models.pull(name, progress=progress)
    out.print(
        f"Installed {bundle.name} in {bundle.path} (weights sha256 {bundle.manifest.weights.source_sha256})"
    )


@app.command("import")
def models_import(
    path: Annotated[Path, typer.Argument(help="A bundle folder, or a weights file downloaded elsewhere.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an installed model of the same name.")
    ] = False,
) -> None:
    """Install a bundle folder or a provider's weights file (checked against its known sha256)."""
    from sahay.services import models

    bundle = models.import_model(path, force=force)
    out.print(f"Installed {bundle.name} in {bundle.path}")


@app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="Installed model name.")]) -> None:
    """Delete an installed model."""
    from sahay.services import models

    out.print(f"Removed {models.remove(name)}")


@app.command("fit-ood")
def models_fit_ood(
    bundle: ModelName,
    data: Annotated[Path, typer.Argument(help="Images the model should accept: an ImageFolder or a CSV.")],
    percentile: Annotated[
        float, typer.Option(min=1.0, max=100.0, help="Held-out percentile that sets the threshold.")
    ] = 99.0,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
) -> None:
    """Fit the model's out-of-domain reference from local images (e.g. for a pulled model)."""
    from sahay.services import models

    options = dataset_options(
        labels,
        image_column=image_column,
        patient_column=patient_column,
        split_column=split_column,
        uncertain="ignore",
    )
    with progress_display() as progress:
        updated = models.fit_ood(bundle, data, percentile=percentile, progress=progress, **options)
    spec = updated.manifest.ood
    assert spec is not None
    out.print(
        f"Fitted the out-of-domain reference of {escape(updated.name)}: {spec.reference_size} images, "
        f"threshold {spec.threshold:.4f} ({spec.percentile:g}th percentile of held-out scores)"
    )


@app.command("calibrate")
def models_calibrate(
    model: ModelName,
    data: Annotated[Path, typer.Argument(help="The site's labelled images: an ImageFolder or a CSV.")],
    as_name: Annotated[str, typer.Option("--as", help="Name of the new, recalibrated model.")],
    method: Annotated[str, typer.Option(help="temperature, platt or isotonic.")] = "isotonic",
    target_sensitivity: Annotated[
        float | None, typer.Option(help="Thresholds for this sensitivity (default: Youden's J).")
    ] = None,
    youden: Annotated[bool, typer.Option("--youden", help="Thresholds by Youden's J (the default).")] = False,
    holdout: Annotated[float, typer.Option(help="Share of patients held back to measure the result.")] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the fit/held-back split.")] = 0,
    min_positives: Annotated[
        int, typer.Option(help="Fewest positives (and negatives) a finding needs to be recalibrated.")
    ] = 20,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Folder for calibration.json and the plots.")
    ] = None,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
) -> None:
    """Recalibrate an installed model to a site; the original stays as it is."""
    from sahay.errors import BadInput
    from sahay.services import models

    if youden and target_sensitivity is not None:
        raise BadInput("give --target-sensitivity or --youden, not both")
    options = dataset_options(labels, image_column=image_column, patient_column=patient_column)
    with progress_display() as progress:
        result = models.calibrate(
            model,
            data,
            as_name=as_name,
            method=method,  # type: ignore[arg-type]  # checked by the service
            target_sensitivity=target_sensitivity,
            holdout=holdout,
            seed=seed,
            min_positives=min_positives,
            report_dir=report_dir,
            progress=progress,
            uncertain="ignore",
            **options,
        )
    shown = table("Finding", "ECE before", "ECE after", "Brier before", "Brier after", "Sens / spec after")
    for label, entry in result.per_label.items():
        before, after = entry["before"], entry["after"]
        shown.add_row(
            escape(label),
            number(before["ece"]),
            number(after["ece"]),
            number(before["brier"]),
            number(after["brier"]),
            f"{number(after['sensitivity'])} / {number(after['specificity'])}",
        )
    out.print(shown)
    summary = result.summary
    out.print(
        f"Held-back images: ECE {number(summary.get('ece_before'))} -> {number(summary.get('ece_after'))}, "
        f"Brier {number(summary.get('brier_before'))} -> {number(summary.get('brier_after'))}"
    )
    for label, why in result.kept.items():
        err.print(f"[yellow]kept as it was:[/] {escape(label)}: {escape(why)}")
    out.print(f"Installed {escape(result.bundle.name)}; report in {escape(str(result.report_dir))}")


@app.command("check-site")
def models_check_site(
    model: ModelName,
    data: Annotated[Path, typer.Argument(help="The site's images: a folder or a CSV of image paths.")],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for site-check.html and .json.")
    ] = Path("sahay-site-check"),
    image_column: ImageColumn = None,
) -> None:
    """Compare a model's predictions on a site's unlabelled images with its training data."""
    from sahay.services import models

    with progress_display() as progress:
        report = models.check_site(model, data, out=out_dir, image_column=image_column, progress=progress)
    shown = table("Finding", "Predicted here", "Training data", "Ratio", "")
    for rate in report.rates:
        reference = "n/a" if rate.reference_prevalence is None else f"{rate.reference_prevalence:.1%}"
        ratio = "n/a" if rate.ratio is None else f"{rate.ratio:.2f}x"
        shown.add_row(
            escape(rate.label),
            f"{rate.predicted_rate:.1%}",
            reference,
            ratio,
            "flagged" if rate.flagged else "",
        )
    out.print(f"{report.images} images checked ({len(report.unreadable)} unreadable)")
    out.print(shown)
    for note in report.property_notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    for advice in report.advice:
        out.print(f"- {escape(advice)}")
    out.print(f"Wrote {escape(str(report.html_path))}")


@app.command("verify")
def models_verify(
    name: Annotated[str, typer.Argument(help="Installed model name.")],
    sha256: Annotated[str, typer.Option("--sha256", help="The published sha256 of the weights file.")],
    source: Annotated[str | None, typer.Option(help="Where the checksum was published.")] = None,
) -> None:
    """Confirm an installed model's weights against a published checksum."""
    from sahay.services import models

    bundle = models.verify(name, sha256, source=source)
    out.print(
        f"{escape(bundle.name)}: weights verified ({escape(bundle.manifest.weights.verified_by or '')})"
    )


@app.command("export-onnx")
def models_export_onnx(
    name: Annotated[str, typer.Argument(help="Installed model name or bundle folder.")],
    int8: Annotated[
        bool, typer.Option("--int8", help="Quantize to int8 (faster, measured accuracy change recorded).")
    ] = False,
) -> None:
    """Export a model to ONNX for ONNX Runtime: torch-free analyses (SAHAY_RUNTIME=auto or onnx)."""
    from sahay.services.model_export import export_onnx

    with progress_display() as progress:
        bundle = export_onnx(name, int8=int8, progress=progress)
    spec = bundle.manifest.onnx
    assert spec is not None
    out.print(f"{escape(bundle.name)}: wrote {escape(str(bundle.path / spec.file))} ({spec.precision})")
    if spec.int8 is not None:
        accuracy = spec.int8
        auroc = (
            f"; macro AUROC {accuracy.macro_auroc_fp32:.4f} (fp32) -> {accuracy.macro_auroc_int8:.4f} (int8)"
            if accuracy.macro_auroc_fp32 is not None and accuracy.macro_auroc_int8 is not None
            else ""
        )
        out.print(
            f"int8 against fp32 on {escape(accuracy.measured_on)}: probabilities differ by at most "
            f"{accuracy.max_abs_probability_difference:.4f} "
            f"(mean {accuracy.mean_abs_probability_difference:.5f}){auroc}"
        )
