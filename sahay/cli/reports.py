"""``sahay report`` and ``sahay deid``: documents for people and hospital systems, and de-identification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sahay.cli.common import err, escape, out, progress_display, table
from sahay.services import capabilities
from sahay.services.deid import DeidRequest, deidentify

FORMAT_HELP = "; ".join(f"{f.name}: {f.title}" for f in capabilities.report_formats())


def report_command(
    analysis: Annotated[Path, typer.Argument(help="An analysis.json written by `sahay analyze --out`.")],
    report_format: Annotated[str, typer.Option("--format", "-f", help=f"{FORMAT_HELP}.")] = "html",
    destination: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="The file to write; a folder when it ends with / or exists (always for several files).",
        ),
    ] = "report.html",
    image: Annotated[
        Path | None,
        typer.Option("--image", help="DICOM formats: the DICOM file the analysis was made from."),
    ] = None,
    include_identifiers: Annotated[
        bool,
        typer.Option(
            "--include-identifiers",
            help="Print the patient and study identifiers the analysis kept (--keep-identifiers).",
        ),
    ] = False,
) -> None:
    """Write the report of an analysis: HTML, PDF, FHIR R4 Bundle, DICOM SR or Secondary Capture."""
    from sahay.services import reports

    written = reports.export(
        analysis, report_format, destination, image=image, include_identifiers=include_identifiers
    )
    for path in written:
        out.print(f"Wrote {escape(str(path))}")


def deid_command(
    source: Annotated[Path, typer.Argument(help="A DICOM file, or a folder searched recursively.")],
    destination: Annotated[
        Path, typer.Argument(help="The output file, or for a folder the output folder (same layout).")
    ],
    retain_dates: Annotated[
        bool,
        typer.Option("--retain-dates", help="Shift dates back by a per-patient number of days; keep times."),
    ] = False,
    retain_patient_characteristics: Annotated[
        bool,
        typer.Option(
            "--retain-patient-characteristics",
            help="Keep sex, age, size, weight, ethnic group, smoking and pregnancy status.",
        ),
    ] = False,
    allow_burned_in: Annotated[
        bool,
        typer.Option(
            "--allow-burned-in",
            help="Also process images marked Burned In Annotation YES (their pixels are not cleaned).",
        ),
    ] = False,
    keep_private_tag: Annotated[
        list[str] | None,
        typer.Option("--keep-private-tag", help="A private tag to keep, e.g. 00091001; repeat for more."),
    ] = None,
    keep_private_creator: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-private-creator", help="A private creator whose block is kept; repeat for more."
        ),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file",
            help="A file holding the secret that keys new UIDs and pseudonyms, so runs agree "
            "(default: a new random secret each run).",
        ),
    ] = None,
    mapping_out: Annotated[
        Path | None,
        typer.Option(
            "--mapping-out",
            help="Write the original-to-new UID and patient mapping to this CSV (keep it private).",
        ),
    ] = None,
) -> None:
    """De-identify DICOM files (PS3.15 Basic Application Level Confidentiality Profile).

    Exits 1 when a folder had DICOM files that were refused (each is named on stderr).
    """
    request = DeidRequest(
        source,
        destination,
        retain_dates=retain_dates,
        retain_patient_characteristics=retain_patient_characteristics,
        allow_burned_in=allow_burned_in,
        keep_private_tags=tuple(keep_private_tag or ()),
        keep_private_creators=tuple(keep_private_creator or ()),
        secret_file=secret_file,
        mapping_out=mapping_out,
    )
    with progress_display() as progress:
        report = deidentify(request, progress=progress)
    for name, warnings in report.warnings.items():
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {escape(name)}: {escape(warning)}", highlight=False)
    for name, reason in report.skipped.items():
        err.print(f"[yellow]skipped:[/] {escape(name)}: {escape(reason)}", highlight=False)
    for reason in report.refused.values():
        err.print(f"[red]refused:[/] {escape(reason)}", highlight=False)
    counts = table("Files", "Count")
    counts.add_row("written", str(len(report.written)))
    counts.add_row("skipped (not DICOM)", str(len(report.skipped)))
    counts.add_row("refused", str(len(report.refused)))
    out.print(counts)
    if mapping_out is not None:
        out.print(
            f"Mapping written to {escape(str(mapping_out))}; it re-identifies the output, keep it apart."
        )
    if report.refused:
        raise typer.Exit(1)
