"""Reports as use cases: write one from an analysis.json (CLI), or download one of a stored analysis (API)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from sahay.errors import BadInput
from sahay.reports.formats import RenderedFile, get_format
from sahay.store import audit
from sahay.store.db import session_scope

if TYPE_CHECKING:
    from sahay.services.workspace import Workspace
    from sahay.store.records import UserRecord


def export(
    analysis_json: Path,
    report_format: str,
    out: Path | str,
    *,
    image: Path | None = None,
    include_identifiers: bool = False,
) -> list[Path]:
    """Write the report of ``analysis_json`` to ``out`` (a folder when it ends with "/"); returns
    the files written."""
    from sahay.reports.export import export_report

    get_format(report_format)  # an unknown format is refused before anything is read
    return export_report(
        analysis_json, report_format, out, image=image, include_identifiers=include_identifiers
    )


def download(workspace: Workspace, user: UserRecord, analysis_id: str, report_format: str) -> RenderedFile:
    """One file to download (several Secondary Captures travel as one zip); audited as an export."""
    from sahay.imaging.reader import read_dicom_dataset
    from sahay.reports.export import render

    fmt = get_format(report_format)
    with session_scope(workspace.settings) as session:
        record = workspace.get(session, user, analysis_id)
        analysis = workspace.load(record)
        source = None
        if fmt.needs_dicom:
            if record.source_format != "dicom":
                raise BadInput(
                    f"{fmt.name} needs a DICOM upload; this analysis is of a {record.source_format} file"
                )
            source = read_dicom_dataset(workspace.blobs.path(record.image_blob), settings=workspace.settings)
        files = render(analysis, fmt.name, analysis_dir=workspace.folder(record), source=source)
        audit.record(session, user, "export", "analysis", record.id, {"format": fmt.name})
    if len(files) == 1:
        return files[0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for rendered in files:
            archive.writestr(rendered.name, rendered.data)
    return RenderedFile(f"sahay-{fmt.name}-{record.id[:12]}.zip", "application/zip", buffer.getvalue())
