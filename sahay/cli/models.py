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
def models_info(name: ModelName) -> None:
    """Show a model's card: what it is for, how it was trained and calibrated."""
    from sahay.services import models

    out.print_json(models.model_card(name).model_dump_json())


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
