"""Similar prior cases from the de-identified case library."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel

from sahay.api.deps import CurrentUser, ServiceDep
from sahay.services import cases
from sahay.services.cases import CaseDetailOut, SimilarCaseOut

router = APIRouter(tags=["cases"])


class SimilarCases(BaseModel):
    items: list[SimilarCaseOut]


@router.get("/analyses/{analysis_id}/similar", response_model=SimilarCases)
async def similar(
    analysis_id: str,
    user: CurrentUser,
    service: ServiceDep,
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SimilarCases:
    # In the inference pool: embedding the image reuses that worker's loaded model. Awaited, so a
    # burst of searches holds no request thread and no database session while it waits.
    found = await service.run(user, service.inference, cases.similar, service.workspace, user, analysis_id, k)
    return SimilarCases(items=found)


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
def case_detail(case_id: str, user: CurrentUser, service: ServiceDep) -> CaseDetailOut:
    return cases.case_detail(service.workspace, user, case_id)


@router.get("/cases/{case_id}/thumbnail", response_class=FileResponse)
def case_thumbnail(case_id: str, user: CurrentUser, service: ServiceDep) -> FileResponse:
    path = cases.case_thumbnail(service.workspace, case_id)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
