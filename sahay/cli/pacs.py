"""``sahay pacs``: the hospital archive over DICOMweb: query, pull, push and analyze studies."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sahay.cli.common import AsJson, err, escape, out, print_json
from sahay.errors import BadInput
from sahay.progress import Step

app = typer.Typer(
    rich_markup_mode=None,
    help="The hospital archive (PACS) over DICOMweb: query, pull, push and analyze studies.",
    no_args_is_help=True,
)


@app.command("query")
def pacs_query(
    patient: Annotated[
        str | None, typer.Option(help="Patient ID or name (Family^Given); * and ? are wildcards.")
    ] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="Study date or range: 20240102, 20240101-20241231.")
    ] = None,
    modality: Annotated[str | None, typer.Option(help="Only studies with this modality, e.g. CR.")] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="List the series of this study instead of searching.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The most studies to show.")] = 25,
    as_json: AsJson = False,
) -> None:
    """Search the archive (QIDO-RS) for studies by patient, date or modality, newest first."""
    from sahay.services import pacs

    archive = pacs.open_archive()
    if study is not None:
        if patient or date or modality:
            raise BadInput(
                "--study lists one study's series; give no --patient, --date or --modality with it"
            )
        found = archive.search_series(study)
        if as_json:
            print_json([s.model_dump(mode="json") for s in found])
            return
        # One entry per series, its UID on a line of its own: UIDs are long and copied whole.
        for one in found:
            number = "" if one.number is None else f"series {one.number}  "
            described = _spaced(one.modality, one.description, _count(one.instances, "instance"))
            out.print(f"{number}{escape(described)}")
            out.print(f"   {one.series_uid}")
        if not found:
            err.print(f"no series found for study {escape(study)}")
        return
    studies = archive.search_studies(patient=patient, study_date=date, modality=modality, limit=limit)
    if as_json:
        print_json([s.model_dump(mode="json") for s in studies])
        return
    for item in studies:
        described = _spaced(
            item.date,
            item.patient_id,
            item.patient_name,
            ",".join(item.modalities),
            item.description,
            _count(item.instances, "instance"),
        )
        out.print(f"[bold]{escape(described)}[/]")
        out.print(f"   study {item.study_uid}")
    if not studies:
        err.print("no studies match")


@app.command("pull")
def pacs_pull(
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID of the study to download.")],
    series: Annotated[
        str | None, typer.Option("--series", help="Only this SeriesInstanceUID of the study.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the files (default: sahay-pacs/<study>).")
    ] = None,
) -> None:
    """Download a study or one series (WADO-RS): one <SOPInstanceUID>.dcm per instance."""
    from sahay.services import pacs

    archive = pacs.open_archive()
    destination = out_dir or pacs.default_pull_dir(study)
    with err.status(f"pulling {'series' if series else 'study'} from the archive"):
        paths = archive.retrieve(study, series, dest=destination)
    out.print(f"Pulled {len(paths)} instances into {escape(str(destination))}")


@app.command("push")
def pacs_push(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, or folders searched recursively.")],
    as_json: AsJson = False,
) -> None:
    """Send DICOM files (e.g. Sahay's SR and Secondary Captures) to the archive (STOW-RS).

    Exits 1 when the archive refused some instances (each is named on stderr).
    """
    from sahay.services import pacs

    archive = pacs.open_archive()
    with err.status("pushing to the archive"):
        result = archive.store(paths)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        out.print(f"Stored {len(result.stored)} instances")
    for skipped in result.skipped:
        err.print(f"[yellow]skipped:[/] {escape(skipped)}")
    _print_store_failures(result)
    if not result.ok:
        raise typer.Exit(1)


@app.command("analyze")
def pacs_analyze(
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID of the study to analyse.")],
    series: Annotated[
        str | None, typer.Option("--series", help="Only this SeriesInstanceUID of the study.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Installed model name or bundle folder.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Folder for the pulled images and results (default: sahay-out/<study>)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Analyse images the model was not made for, with a warning.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Pull a study, analyse each image, and push a DICOM SR and heatmap Secondary Captures back.

    The results join the same study as two new series (SR, and Secondary Capture).

    Exits 1 when no image could be analysed or the archive refused a result.
    """
    from sahay.services import pacs

    archive = pacs.open_archive()
    destination = out_dir or pacs.default_analysis_dir(study)
    with err.status("pulling the study") as status:

        def show(step: Step) -> None:
            status.update(escape(step.message))

        result = pacs.analyze_study(
            archive, study, series_uid=series, model=model, out_dir=destination, force=force, progress=show
        )
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        for item in result.instances:
            out.print(f"[bold]{item.status}[/] {item.sop_instance_uid}")
            if item.status == "analysed":
                positive = ", ".join(item.positive_findings) or "no positive findings"
                out.print(f"   {escape(positive)}; {len(item.results)} DICOM results")
            else:
                out.print(f"   {escape(item.reason or '')}")
        out.print(
            f"Pushed {len(result.stored.stored)} results to study {escape(study)}; "
            f"local copies under {escape(str(destination))}"
        )
        out.print("[dim]Decision support, not a diagnosis.[/]")
    _print_store_failures(result.stored)
    if not result.analysed or not result.stored.ok:
        raise typer.Exit(1)


def _spaced(*values: str | None) -> str:
    return "  ".join(v for v in values if v)


def _count(number: int | None, noun: str) -> str | None:
    return None if number is None else f"({number} {noun}{'' if number == 1 else 's'})"


def _print_store_failures(result: Any) -> None:
    for failure in result.failed:
        uid = failure.sop_instance_uid or "an instance"
        err.print(f"[bold red]refused:[/] {escape(uid)}: {escape(failure.reason)}")
