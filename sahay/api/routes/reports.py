"""Reports of an analysis in each format, as downloads."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sahay.api.deps import CurrentUser, ServiceDep
from sahay.services import reports

router = APIRouter(tags=["reports"])


@router.get("/analyses/{analysis_id}/reports/{report_format}", response_class=Response)
def report(analysis_id: str, report_format: str, user: CurrentUser, service: ServiceDep) -> Response:
    file = reports.download(service.workspace, user, analysis_id, report_format)
    return Response(
        file.data,
        media_type=file.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{file.name}"',
            "Cache-Control": "private, no-store",
        },
    )
