"""``sahay batch``: triage a folder or a CSV of images into one results file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sahay.cli.common import ImageColumn, escape, out, progress_display, table


def batch_command(
    source: Annotated[Path, typer.Argument(help="A folder of images, or a CSV with an image path column.")],
    results: Annotated[Path, typer.Option("--out", "-o", help="Results file: .csv or .parquet.")],
    model: Annotated[str | None, typer.Option(help="Installed model name or bundle folder.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Threads that decode images (with --engine ray: model actors).")
    ] = 2,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per model call.")] = 8,
    heatmaps: Annotated[
        Path | None, typer.Option(help="Folder for overlays of the top positive findings (display size).")
    ] = None,
    top_k: Annotated[int, typer.Option(min=1, help="With --heatmaps: findings explained per image.")] = 3,
    weights: Annotated[
        str | None, typer.Option(help='Triage weights, e.g. "Pneumothorax=3,Effusion=1.5" (others 1).')
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Classify images the model was not made for, marked, instead of refusing."
        ),
    ] = False,
    image_column: ImageColumn = None,
    engine: Annotated[
        str,
        typer.Option(help="local (threads on this machine) or ray (Ray Data, here or on a cluster)."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="With --engine ray: the cluster to join (HOST:PORT from `ray start --head`)."),
    ] = None,
) -> None:
    """Classify every image, resumably; bad files become rows; rank the results for triage."""
    from sahay.services.batch import BatchOptions, parse_weights, run_batch

    options = BatchOptions(
        model=model,
        workers=workers,
        batch_size=batch_size,
        top_k=top_k,
        heatmaps=heatmaps,
        force=force,
        weights=parse_weights(weights),
        image_column=image_column,
        engine=engine,
        address=address,
    )
    with progress_display() as progress:
        summary = run_batch(source, results, options, progress=progress)
    out.print(
        f"{summary.images} images: {summary.analysed} analysed, {summary.resumed} already done, "
        f"{summary.refused} refused, {summary.errors} unreadable; "
        f"{summary.images_per_second:.1f} images/s with {escape(summary.model)}"
        + (f" (after {summary.loading_seconds:.1f} s loading it)" if summary.loading_seconds else "")
    )
    if summary.positives:
        shown = table("Finding", "Positive images")
        for label, count in sorted(summary.positives.items(), key=lambda item: -item[1]):
            shown.add_row(escape(label), str(count))
        out.print(shown)
    out.print(
        f"Wrote {escape(str(summary.out))}; triage order (most urgent first) in {escape(str(summary.triage))}"
    )
