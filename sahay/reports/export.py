"""Render an analysis in any report format, and write it to disk atomically.

The CLI, the API and ``sahay pacs analyze`` all come through here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydicom import Dataset

from sahay.analysis import Analysis, load_analysis
from sahay.errors import BadInput
from sahay.fileio import atomic_write_bytes
from sahay.reports.formats import RenderedFile, RenderJob, get_format, render_with


def render(
    analysis: Analysis,
    report_format: str,
    *,
    analysis_dir: Path | None = None,
    source: Dataset | None = None,
    include_identifiers: bool = False,
) -> list[RenderedFile]:
    """The report as files in memory; DICOM formats need the source image's dataset."""
    job = RenderJob(analysis, analysis_dir, source, include_identifiers, f"sahay-report-{analysis.id[:12]}")
    return render_with(get_format(report_format), job)


def export_report(
    analysis_json: Path,
    report_format: str,
    out: Path | str,
    *,
    image: Path | None = None,
    include_identifiers: bool = False,
) -> list[Path]:
    """Write the report of ``analysis_json`` to ``out``. Files go into a folder there when ``out``
    is an existing folder or ends with a path separator ("overlays/"), and when there are several
    (Secondary Captures); a single file otherwise."""
    into_folder = str(out).endswith(("/", os.sep)) or Path(out).is_dir()
    out = Path(out)
    analysis = load_analysis(analysis_json)
    source = read_source(image, analysis) if image is not None else None
    files = render(
        analysis,
        report_format,
        analysis_dir=analysis_json.parent,
        source=source,
        include_identifiers=include_identifiers,
    )
    if len(files) == 1 and not into_folder:
        _check_destination(out)
        atomic_write_bytes(out, files[0].data)
        return [out]
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} is a file; give a folder for these {len(files)} report files")
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
    from sahay.imaging.reader import read_dicom_dataset

    dataset = read_dicom_dataset(image)  # bounded: refuses bombs, deep nesting, bad lengths
    with image.open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    if digest != analysis.image.sha256:
        raise BadInput(f"{image} is not the image this analysis was made from (its sha256 differs)")
    return dataset


def _check_destination(out: Path) -> None:
    if out.is_dir():
        raise BadInput(f"{out} is a folder; give a file name for the report")
    if not out.parent.exists():
        raise BadInput(f"the folder {out.parent} does not exist")
