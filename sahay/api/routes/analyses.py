"""Analyses: upload and analyse an image, list, view, images and heatmaps, delete, jobs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from sahay.api.deps import CurrentUser, Service, ServiceDep
from sahay.errors import SahayError
from sahay.services.analyze import DEFAULT_METHOD, ExplainOptions
from sahay.services.jobs import Job
from sahay.services.workspace import AnalysisOut, AnalysisPage, Upload, runs_in_background
from sahay.store.records import UserRecord

router = APIRouter(tags=["analyses"])
log = logging.getLogger("sahay.api")
PRIVATE = {"Cache-Control": "private, no-store"}
MAX_OFFSET = 1_000_000_000


class JobOut(BaseModel):
    id: str
    status: str
    analysis_id: str | None = None
    error: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    step: str | None = None


@router.post("/analyses", status_code=201, response_model=AnalysisOut, responses={202: {"model": JobOut}})
async def create_analysis(
    user: CurrentUser,
    service: ServiceDep,
    image: Annotated[UploadFile, File(description="DICOM, PNG, JPEG or TIFF")],
    notes: Annotated[str | None, Form(description="The clinical note that came with the image")] = None,
    model: Annotated[
        str | None, Form(description="Installed model name; chosen automatically if empty")
    ] = None,
    explain: Annotated[
        str, Form(description="Explanation method (GET /capabilities lists them)")
    ] = DEFAULT_METHOD,
    faithfulness: Annotated[
        bool, Form(description="Also score each heatmap by deletion and insertion curves (more model runs)")
    ] = False,
    force: Annotated[
        bool, Form(description="Analyse an image the model was not made for, with a warning in the result")
    ] = False,
    background: Annotated[
        bool, Query(description="Answer 202 with a job to poll instead of waiting")
    ] = False,
) -> Any:
    options = ExplainOptions(method=explain, faithfulness=faithfulness)
    Upload(filename="", path=Path(), explain=options).check()  # a wrong method before any copying
    job = service.board.new_job(user) if background or runs_in_background(options) else None
    try:
        # RequestGuard has bounded the body; it is copied to disk in a worker thread, never held whole.
        spooled = await run_in_threadpool(service.workspace.spool, image.filename or "upload", image.file)
    except BaseException:
        if job is not None:
            job.status, job.error = "failed", "the upload could not be stored"
        raise
    upload = replace(spooled, notes=notes, model=model or None, explain=options, force=force)
    if job is not None:
        task = asyncio.create_task(_run_job(service, job, user, upload))
        service.tasks.add(task)
        task.add_done_callback(service.tasks.discard)
        return JSONResponse(JobOut(id=job.id, status=job.status).model_dump(), status_code=202)
    try:
        record, analysis = await service.run(user, service.inference, service.workspace.create, user, upload)
    except BaseException:
        service.workspace.discard(upload.path)  # refused before the worker took it (429)
        raise
    return service.workspace.describe(user, record, analysis)


async def _run_job(service: Service, job: Job, user: UserRecord, upload: Upload) -> None:
    job.status = "running"
    loop = asyncio.get_running_loop()
    try:
        record, _ = await loop.run_in_executor(
            service.inference, service.workspace.create, user, upload, job.progress
        )
    except SahayError as exc:
        job.status, job.error, job.error_status = "failed", exc.for_door("api"), exc.http_status
        job.error_kind, job.error_message = exc.kind, str(exc)
        return
    except Exception as exc:  # the job must end with a status; the log gets the type only (no PHI)
        job.status, job.error, job.error_status = "failed", "internal error", 500
        log.error("analysis job %s failed: %s", job.id, type(exc).__name__)
        return
    finally:
        service.workspace.discard(upload.path)  # also when the service stops before the job ran
    job.status, job.analysis_id = "done", record.id


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def job_status(job_id: str, user: CurrentUser, service: ServiceDep) -> JobOut:
    job = service.board.job(user, job_id)
    return JobOut(
        id=job.id,
        status=job.status,
        analysis_id=job.analysis_id,
        error=job.error,
        error_kind=job.error_kind,
        error_message=job.error_message,
        step=job.step,
    )


@router.get("/analyses", response_model=AnalysisPage)
def list_analyses(
    user: CurrentUser,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> AnalysisPage:
    return service.workspace.page(user, limit=limit, offset=offset)


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut)
def get_analysis(analysis_id: str, user: CurrentUser, service: ServiceDep) -> AnalysisOut:
    return service.workspace.view(user, analysis_id)


@router.delete("/analyses/{analysis_id}", status_code=204, response_class=Response)
def delete_analysis(analysis_id: str, user: CurrentUser, service: ServiceDep) -> Response:
    service.workspace.delete(user, analysis_id)
    return Response(status_code=204)


@router.get("/analyses/{analysis_id}/image", response_class=Response)
async def analysis_image(
    analysis_id: str,
    user: CurrentUser,
    service: ServiceDep,
    window_center: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    window_width: Annotated[float | None, Query(ge=1, allow_inf_nan=False)] = None,
) -> Response:
    window = (window_center, window_width) if window_center is not None and window_width is not None else None
    # Decoding happens in the bounded image pool: concurrent views cannot each hold a decoded image.
    png = await service.run(user, service.images, service.workspace.image_png, user, analysis_id, window)
    return Response(png, media_type="image/png", headers=PRIVATE)


# Labels may hold "/", so they are paths; the layer route comes first or the other would take it.
@router.get("/analyses/{analysis_id}/heatmaps/{label:path}/layer", response_class=Response)
def heatmap_layer(analysis_id: str, label: str, user: CurrentUser, service: ServiceDep) -> Response:
    png = service.workspace.heatmap_layer(user, analysis_id, label)
    return Response(png, media_type="image/png", headers=PRIVATE)


@router.get("/analyses/{analysis_id}/heatmaps/{label:path}", response_class=FileResponse)
def heatmap(analysis_id: str, label: str, user: CurrentUser, service: ServiceDep) -> FileResponse:
    path = service.workspace.heatmap_overlay(user, analysis_id, label)
    return FileResponse(path, media_type="image/png", headers=PRIVATE)
