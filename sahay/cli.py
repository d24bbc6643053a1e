"""The ``sahay`` command line: a thin door onto the library. No logic lives here.

Exit codes: 0 done, 1 a failed check or an internal error, 2 bad input or usage.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from sahay import __version__
from sahay.analysis import DEMONSTRATION_BANNER, Analysis
from sahay.config import get_settings
from sahay.errors import SahayError
from sahay.models.download import ProgressCallback

app = typer.Typer(
    name="sahay",
    help="Sahay: medical image analysis assistant. Decision support, not a diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List, pull, import and inspect model bundles.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors (give it before the command).")
    ] = False,
) -> None:
    """Sahay: medical image analysis assistant. Decision support, not a diagnosis."""


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


@contextmanager
def download_bar() -> Iterator[ProgressCallback]:
    """A rich download bar on stderr that appears only when bytes actually flow."""
    progress = Progress(
        TextColumn("downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    task: list[TaskID] = []

    def update(done: int, total: int | None) -> None:
        if not task:
            progress.start()
            task.append(progress.add_task("download", total=total))
        progress.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            progress.stop()


@app.command()
def analyze(
    image: Annotated[Path, typer.Argument(help="DICOM, PNG, JPEG or TIFF file.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Installed model name or bundle folder.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for analysis.json and overlays.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the Analysis JSON on stdout, nothing else.")
    ] = False,
    heatmaps: Annotated[
        bool, typer.Option("--heatmaps/--no-heatmaps", help="Write Grad-CAM overlays.")
    ] = True,
    keep_identifiers: Annotated[
        bool, typer.Option("--keep-identifiers", help="Keep patient and study identifiers in the result.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Analyse an image the model was not made for, with a warning.")
    ] = False,
) -> None:
    """Classify an image, show where the model looked, and write analysis.json."""
    from sahay.pipeline import analyze as run_analysis
    from sahay.pipeline import default_out_dir

    destination = out_dir or default_out_dir(image)
    with download_bar() as on_download, err.status("analysing", spinner="dots") as status:
        analysis = run_analysis(
            image,
            model=model,
            out_dir=destination,
            heatmaps=heatmaps,
            keep_identifiers=keep_identifiers,
            force=force,
            download_progress=on_download,
            on_step=lambda message: status.update(message),
        )
    if as_json:
        sys.stdout.write(analysis.to_json() + "\n")
        return
    print_analysis(analysis, destination)


def print_analysis(analysis: Analysis, destination: Path | None) -> None:
    # Values from the image file are printed with escape(): DICOM text must not be read as markup.
    if analysis.demonstration_notice:
        out.print(f"[bold red]{escape(analysis.demonstration_notice)}[/]")
    image = analysis.image
    described = ", ".join(
        str(v) for v in (image.format.upper(), image.modality, image.body_part, image.view_position) if v
    )
    out.print(f"[bold]{escape(image.filename)}[/] ({escape(described)}; {image.columns}x{image.rows})")
    out.print(
        f"Model: {escape(analysis.model.name)} {escape(analysis.model.version)} ({analysis.model.task})"
    )
    title = DEMONSTRATION_BANNER if analysis.model.demonstration else None
    table = Table(show_header=True, header_style="bold", title=title, title_style="bold red")
    for column in ("Finding", "Probability", "Threshold", "Result", "Heatmap"):
        table.add_column(
            column,
            justify="right" if column in ("Probability", "Threshold") else "left",
            no_wrap=column == "Finding",
        )
    for finding in sorted(analysis.findings, key=lambda f: f.probability, reverse=True):
        result = "[bold red]POSITIVE[/]" if finding.positive else "negative"
        heatmap = finding.heatmap.overlay_png if finding.heatmap else ""
        table.add_row(
            escape(finding.label),
            f"{finding.probability:.3f}",
            f"{finding.threshold:.3f}",
            result,
            escape(heatmap),
        )
    out.print(table)
    for warning in analysis.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    if destination:
        out.print(f"Wrote {escape(str(destination / 'analysis.json'))} (heatmap paths are relative to it)")
    out.print(f"[dim]{escape(analysis.disclaimer)}[/]")


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the example and its analysis.")
    ] = Path("sahay-demo"),
    retrain: Annotated[bool, typer.Option("--retrain", help="Train the demonstration bundle again.")] = False,
) -> None:
    """Train a demonstration model on synthetic images and analyse a synthetic example (offline)."""
    from sahay.demo import DEMO_MODEL_NAME, EXAMPLE_NAME, run_demo

    with Progress(TextColumn("{task.description}"), BarColumn(), console=err, transient=True) as bar:
        task = bar.add_task("preparing the demonstration model", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        analysis = run_demo(out_dir, get_settings(), retrain=retrain, progress=on_progress)
    print_analysis(analysis, out_dir / "analysis")
    out.print(f"Try: sahay analyze {escape(str(out_dir / EXAMPLE_NAME))} --model {DEMO_MODEL_NAME}")


def _table(*columns: str) -> Table:
    """A table whose first column (a name people copy into commands) never wraps."""
    table = Table()
    for index, column in enumerate(columns):
        table.add_column(column, no_wrap=index == 0)
    return table


@models_app.command("list")
def models_list(
    available: Annotated[bool, typer.Option("--available", help="List models that can be pulled.")] = False,
) -> None:
    """List installed models (or, with --available, the catalogue)."""
    from sahay.models.catalog import catalog
    from sahay.models.registry import scan

    settings = get_settings()
    if available:
        table = _table("Name", "Labels", "sha256 known", "Source")
        for entry in catalog().values():
            table.add_row(
                entry.name, str(len(entry.kept_outputs)), "yes" if entry.sha256 else "no", entry.url
            )
        out.print(table)
        return
    bundles, broken = scan(settings)
    if not bundles:
        out.print(
            f"No models installed in {settings.models_dir}. Try `sahay demo` or `sahay models pull NAME`."
        )
    table = _table("Name", "Version", "Task", "Modalities", "Body part", "Labels")
    for bundle in bundles:
        m = bundle.manifest
        name = f"{m.name} [red](demo)[/]" if m.demonstration else m.name
        table.add_row(
            name, m.version, m.task, ",".join(m.modalities) or "any", m.body_part or "-", str(len(m.labels))
        )
    if bundles:
        out.print(table)
    for folder, reason in broken.items():
        err.print(f"[yellow]warning:[/] skipped {escape(str(folder))}: {escape(reason)}")


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument(help="Installed model name or bundle folder.")]) -> None:
    """Show a model's card: what it is for, how it was trained and calibrated."""
    from sahay.errors import ModelUnavailable
    from sahay.models.registry import locate

    bundle = locate(name, get_settings())
    if bundle is None:
        raise ModelUnavailable(f"no installed model named {name!r}; `sahay models list` shows them")
    out.print_json(bundle.manifest.model_dump_json())


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Catalogue name, e.g. xrv-densenet121-res224-all.")],
) -> None:
    """Download a model, check its sha256, and install it."""
    from sahay.models.registry import pull

    with download_bar() as on_download:
        bundle = pull(name, get_settings(), progress=on_download)
    out.print(
        f"Installed {bundle.name} in {bundle.path} (weights sha256 {bundle.manifest.weights.source_sha256})"
    )


@models_app.command("import")
def models_import(
    path: Annotated[Path, typer.Argument(help="A bundle folder, or a weights file downloaded elsewhere.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an installed model of the same name.")
    ] = False,
) -> None:
    """Install a bundle folder or a provider's weights file (checked against its known sha256)."""
    from sahay.models.registry import import_path

    bundle = import_path(path, get_settings(), force=force)
    out.print(f"Installed {bundle.name} in {bundle.path}")


@models_app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="Installed model name.")]) -> None:
    """Delete an installed model."""
    from sahay.models.registry import remove

    folder = remove(name, get_settings())
    out.print(f"Removed {folder}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: map every error to its exit code with a one-line reason on stderr.

    Usage errors are Typer's own (exit 2 with the usage line); Sahay's errors and any
    unexpected one are caught here, so that no traceback reaches the user without --debug.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="sahay")
    except SahayError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(run again as `sahay --debug ...` for details)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
