"""Reports of an analysis in each format, as downloads."""

from __future__ import annotations

import io
import zipfile

from fastapi import APIRouter, Response

from sahay.api.deps import CurrentUser, ServiceDep, SessionDep
from sahay.errors import BadInput
from sahay.reports import FORMATS
from sahay.store import audit

router = APIRouter(tags=["reports"])


@router.get("/analyses/{analysis_id}/reports/{report_format}", response_class=Response)
def report(
    analysis_id: str, report_format: str, user: CurrentUser, service: ServiceDep, session: SessionDep
) -> Response:
    if report_format not in FORMATS:
        raise BadInput(f"unknown report format {report_format!r}; choose one of {', '.join(FORMATS)}")
    record = service.workspace.get(session, user, analysis_id)
    files = service.workspace.report(record, report_format)
    audit.record(session, user, "export", "analysis", record.id, {"format": report_format})
    session.commit()
    if len(files) == 1:
        name, media_type, data = files[0].name, files[0].media_type, files[0].data
    else:  # several Secondary Captures travel as one zip
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for rendered in files:
                archive.writestr(rendered.name, rendered.data)
        name, media_type, data = (
            f"sahay-{report_format}-{record.id[:12]}.zip",
            "application/zip",
            buffer.getvalue(),
        )
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )
