"""Render an analysis in any report format, and write it to disk atomically.

The CLI, the API and ``sahay pacs analyze`` all come through here.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError

from sahay.analysis import Analysis, load_analysis
from sahay.errors import BadInput, describe_error
from sahay.fileio import atomic_write_bytes

ReportFormat = Literal["html", "pdf", "fhir", "dicom-sr", "dicom-sc"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)
DICOM_FORMATS = ("dicom-sr", "dicom-sc")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "fhir": "application/fhir+json",
    "dicom-sr": "application/dicom",
    "dicom-sc": "application/dicom",
}
SUFFIXES = {"html": ".html", "pdf": ".pdf", "fhir": ".fhir.json", "dicom-sr": ".dcm", "dicom-sc": ".dcm"}


@dataclass(frozen=True)
class RenderedFile:
    name: str
    media_type: str
    data: bytes


def render(
    analysis: Analysis,
    report_format: str,
    *,
    analysis_dir: Path | None = None,
    source: Dataset | None = None,
    include_identifiers: bool = False,
) -> list[RenderedFile]:
    """The report as files in memory; DICOM formats need the source image's dataset."""
    if report_format not in FORMATS:
        raise BadInput(f"unknown report format {report_format!r}; choose one of {', '.join(FORMATS)}")
    stem = f"sahay-report-{analysis.id[:12]}"
    media_type = MEDIA_TYPES[report_format]
    if report_format in DICOM_FORMATS:
        if source is None:
            raise BadInput(f"{report_format} needs the source DICOM image it refers to (--image)")
        from sahay.reports.dicom import secondary_captures, structured_report

        if report_format == "dicom-sr":
            datasets = [structured_report(analysis, source, analysis_dir=analysis_dir)]
        else:
            if analysis_dir is None:
                raise BadInput("dicom-sc needs the folder that holds the analysis's overlays")
            datasets = secondary_captures(analysis, source, analysis_dir)
        return [
            RenderedFile(
                f"{stem}-{_slug(_label(ds))}.dcm" if report_format == "dicom-sc" else f"{stem}-sr.dcm",
                media_type,
                _dicom_bytes(ds),
            )
            for ds in datasets
        ]
    from sahay.reports.model import build_report

    report = build_report(analysis, analysis_dir, include_identifiers=include_identifiers)
    if report_format == "html":
        from sahay.reports.html import render_html

        data = render_html(report).encode("utf-8")
    elif report_format == "pdf":
        from sahay.reports.pdf import render_pdf

        data = render_pdf(report)
    else:
        from sahay.reports.fhir import render_fhir

        data = render_fhir(report, analysis).encode("utf-8")
    return [RenderedFile(stem + SUFFIXES[report_format], media_type, data)]


def export_report(
    analysis_json: Path,
    report_format: str,
    out: Path,
    *,
    image: Path | None = None,
    include_identifiers: bool = False,
) -> list[Path]:
    """Write the report of ``analysis_json`` to ``out``; several Secondary Captures go into a folder."""
    analysis = load_analysis(analysis_json)
    source = read_source(image, analysis) if image is not None else None
    files = render(
        analysis,
        report_format,
        analysis_dir=analysis_json.parent,
        source=source,
        include_identifiers=include_identifiers,
    )
    if len(files) == 1:
        _check_destination(out)
        atomic_write_bytes(out, files[0].data)
        return [out]
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} is a file; {len(files)} Secondary Captures need a folder there")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for rendered in files:
        atomic_write_bytes(out / rendered.name, rendered.data)
        written.append(out / rendered.name)
    return written


def read_source(image: Path, analysis: Analysis) -> Dataset:
    """The DICOM the analysis was made from; its bytes must match the analysis's sha256."""
    from sahay.reports.dicom import require_dicom_analysis

    require_dicom_analysis(analysis)
    try:
        data = image.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {image}: {exc.strerror or exc}") from exc
    if hashlib.sha256(data).hexdigest() != analysis.image.sha256:
        raise BadInput(f"{image} is not the image this analysis was made from (its sha256 differs)")
    try:
        return dcmread(io.BytesIO(data))
    except (InvalidDicomError, ValueError, EOFError) as exc:
        raise BadInput(f"{image} is not a readable DICOM file ({describe_error(exc)})") from exc


def _check_destination(out: Path) -> None:
    if out.is_dir():
        raise BadInput(f"{out} is a folder; give a file name for the report")
    if not out.parent.exists():
        raise BadInput(f"the folder {out.parent} does not exist")


def _label(ds: Dataset) -> str:
    return str(ds.get("ImageComments", "overlay")).split(":", 1)[0]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "overlay"


def _dicom_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
