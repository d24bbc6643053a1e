"""The report formats Sahay writes: the one list that the CLI, the API and the UI offer.

A format is a renderer module with ``render(job) -> bytes | list[tuple[str, bytes]]`` (one file,
or several named files) plus one line in ``FORMATS``. Renderers load their libraries (Jinja2,
WeasyPrint, fhir.resources, highdicom) when called, so listing the formats is light.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from sahay.errors import BadInput

if TYPE_CHECKING:
    from pydicom import Dataset

    from sahay.analysis import Analysis
    from sahay.reports.model import Report


@dataclass(frozen=True)
class ReportFormat:
    name: str
    title: str
    media_type: str
    suffix: str
    needs_dicom: bool
    """True when the source DICOM image is needed (the output joins its study)."""
    module: str
    """The renderer module; its ``render(job)`` makes the bytes."""


@dataclass
class RenderJob:
    """What a renderer gets: the analysis, its folder (overlays), the source DICOM, and options."""

    analysis: Analysis
    analysis_dir: Path | None
    source: Dataset | None
    include_identifiers: bool
    stem: str
    _report: Report | None = field(default=None, repr=False)

    def report(self) -> Report:
        """The people-facing report model (findings, impression, cited recommendations), built once."""
        if self._report is None:
            from sahay.reports.model import build_report

            self._report = build_report(
                self.analysis, self.analysis_dir, include_identifiers=self.include_identifiers
            )
        return self._report


@dataclass(frozen=True)
class RenderedFile:
    name: str
    media_type: str
    data: bytes


DICOM = "application/dicom"

FORMATS: dict[str, ReportFormat] = {
    f.name: f
    for f in (
        ReportFormat("html", "HTML report", "text/html; charset=utf-8", ".html", False, "sahay.reports.html"),
        ReportFormat("pdf", "PDF report", "application/pdf", ".pdf", False, "sahay.reports.pdf"),
        ReportFormat(
            "fhir", "FHIR R4 Bundle", "application/fhir+json", ".fhir.json", False, "sahay.reports.fhir"
        ),
        ReportFormat(
            "dicom-sr",
            "DICOM Structured Report",
            "application/dicom",
            "-sr.dcm",
            True,
            "sahay.reports.dicom_sr",
        ),
        ReportFormat(
            "dicom-sc",
            "DICOM Secondary Captures",
            "application/dicom",
            ".dcm",
            True,
            "sahay.reports.dicom_sc",
        ),
    )
}


def get_format(name: str) -> ReportFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise BadInput(f"unknown report format {name!r}; choose one of {', '.join(FORMATS)}") from None


def render_with(fmt: ReportFormat, job: RenderJob) -> list[RenderedFile]:
    """Run the format's renderer and name its files."""
    if fmt.needs_dicom and job.source is None:
        raise BadInput(f"{fmt.name} needs the source DICOM image it refers to (--image)")
    made = import_module(fmt.module).render(job)
    if isinstance(made, bytes):
        return [RenderedFile(job.stem + fmt.suffix, fmt.media_type, made)]
    return [RenderedFile(name, fmt.media_type, data) for name, data in made]
