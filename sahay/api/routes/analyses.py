"""Analyses: upload and analyse an image, list, view, images and heatmaps, delete, jobs."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from sahay.analysis import Analysis
from sahay.api.deps import CurrentUser, Job, Service, ServiceDep, SessionDep
from sahay.errors import BadInput, SahayError
from sahay.explain.options import ExplainOptions
from sahay.explain.methods import METHODS
from sahay.services.workspace import Upload
from sahay.store import audit
from sahay.store.records import AnalysisRecord, UserRecord

router = APIRouter(tags=["analyses"])
log = logging.getLogger("sahay.api")


class AnalysisOut(Analysis):
    """The Analysis, with what the service keeps beside it."""

    owner: str
    notes_text: str | None = None
    source_format: str


class AnalysisSummary(BaseModel):
    id: str
    created_at: datetime
    filename: str
    model: str
    modality: str | None
    positives: list[str]


class AnalysisPage(BaseModel):
    items: list[AnalysisSummary]
    total: int
    limit: int
    offset: int


class JobOut(BaseModel):
    id: str
    status: str
    analysis_id: str | None = None
    error: str | None = None


def analysis_out(record: AnalysisRecord, analysis: Analysis, owner: str) -> AnalysisOut:
    return AnalysisOut(
        **analysis.model_dump(), owner=owner, notes_text=record.notes_text, source_format=record.source_format
    )


@router.post("/analyses", status_code=201, response_model=AnalysisOut, responses={202: {"model": JobOut}})
async def create_analysis(
    request: Request,
    user: CurrentUser,
    service: ServiceDep,
    image: Annotated[UploadFile, File(description="DICOM, PNG, JPEG or TIFF")],
    notes: Annotated[str | None, Form(description="The clinical note that came with the image")] = None,
    model: Annotated[
        str | None, Form(description="Installed model name; chosen automatically if empty")
    ] = None,
    explain: Annotated[str, Form(description="Explanation method")] = "gradcam",
    force: Annotated[
        bool, Form(description="Analyse an image the model was not made for, with a warning in the result")
    ] = False,
    background: Annotated[
        bool, Query(description="Answer 202 with a job to poll instead of waiting")
    ] = False,
) -> Any:
    if explain not in METHODS:
        raise BadInput(f"unknown explanation method {explain!r}; use one of {', '.join(METHODS)}")
    upload = Upload(
        filename=image.filename or "upload",
        data=await image.read(),  # UploadGuard has bounded the body; Workspace.create checks the file
        notes=notes,
        model=model or None,
        explain=ExplainOptions(method=explain),
        force=force,
    )
    if background or METHODS[explain].family == "perturbation":
        job = service.new_job(user)
        task = asyncio.create_task(_run_job(service, job, user, upload))
        service.tasks.add(task)
        task.add_done_callback(service.tasks.discard)
        return JSONResponse(JobOut(id=job.id, status=job.status).model_dump(), status_code=202)
    record, analysis = await service.run(service.workspace.create, user, upload)
    return analysis_out(record, analysis, user.username)


async def _run_job(service: Service, job: Job, user: UserRecord, upload: Upload) -> None:
    job.status = "running"
    try:
        record, _ = await service.run(service.workspace.create, user, upload)
    except SahayError as exc:
        job.status, job.error, job.error_status = "failed", str(exc), exc.http_status
        return
    except Exception as exc:  # the job must end with a status; the log gets the type only (no PHI)
        job.status, job.error, job.error_status = "failed", "internal error", 500
        log.error("analysis job %s failed: %s", job.id, type(exc).__name__)
        return
    job.status, job.analysis_id = "done", record.id


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def job_status(job_id: str, user: CurrentUser, service: ServiceDep) -> JobOut:
    job = service.job(user, job_id)
    return JobOut(id=job.id, status=job.status, analysis_id=job.analysis_id, error=job.error)


@router.get("/analyses", response_model=AnalysisPage)
def list_analyses(
    user: CurrentUser,
    service: ServiceDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AnalysisPage:
    rows, total = service.workspace.owned(session, user, limit=limit, offset=offset)
    items = [
        AnalysisSummary(
            id=r.id,
            created_at=r.created_at,
            filename=r.filename,
            model=r.model_name,
            modality=r.modality,
            positives=list(r.positives),
        )
        for r in rows
    ]
    return AnalysisPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut)
def get_analysis(
    analysis_id: str, user: CurrentUser, service: ServiceDep, session: SessionDep
) -> AnalysisOut:
    record = service.workspace.get(session, user, analysis_id)
    analysis = service.workspace.load(record)
    owner = user.username if record.owner_id == user.id else _owner_name(session, record)
    audit.record(session, user, "view", "analysis", record.id)
    session.commit()
    return analysis_out(record, analysis, owner)


def _owner_name(session: SessionDep, record: AnalysisRecord) -> str:
    owner = session.get(UserRecord, record.owner_id)
    return owner.username if owner else "unknown"


@router.delete("/analyses/{analysis_id}", status_code=204, response_class=Response)
def delete_analysis(analysis_id: str, user: CurrentUser, service: ServiceDep) -> Response:
    service.workspace.delete(user, analysis_id)
    return Response(status_code=204)


@router.get("/analyses/{analysis_id}/image", response_class=Response)
def analysis_image(
    analysis_id: str,
    user: CurrentUser,
    service: ServiceDep,
    session: SessionDep,
    window_center: float | None = None,
    window_width: Annotated[float | None, Query(ge=1)] = None,
) -> Response:
    record = service.workspace.get(session, user, analysis_id)
    window = (window_center, window_width) if window_center is not None and window_width is not None else None
    png = service.workspace.image_png(record, window)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


# Labels may hold "/", so they are paths; the layer route comes first or the other would take it.
@router.get("/analyses/{analysis_id}/heatmaps/{label:path}/layer", response_class=Response)
def heatmap_layer(
    analysis_id: str, label: str, user: CurrentUser, service: ServiceDep, session: SessionDep
) -> Response:
    record = service.workspace.get(session, user, analysis_id)
    png = service.workspace.heatmap_layer(record, service.workspace.load(record), label)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})


@router.get("/analyses/{analysis_id}/heatmaps/{label:path}", response_class=FileResponse)
def heatmap(
    analysis_id: str, label: str, user: CurrentUser, service: ServiceDep, session: SessionDep
) -> FileResponse:
    record = service.workspace.get(session, user, analysis_id)
    path = service.workspace.heatmap_overlay(record, service.workspace.load(record), label)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, no-store"})
