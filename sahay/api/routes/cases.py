"""Similar prior cases from the de-identified case library."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from sahay.api.deps import CurrentUser, ServiceDep, SessionDep
from sahay.store import audit

router = APIRouter(tags=["cases"])


class SimilarCase(BaseModel):
    case_id: str
    score: float
    diagnosis: str | None
    modality: str | None
    labels: list[str]
    created_at: datetime
    signals: dict[str, float | None]


class SimilarCases(BaseModel):
    items: list[SimilarCase]


@router.get("/analyses/{analysis_id}/similar", response_model=SimilarCases)
def similar(
    analysis_id: str,
    user: CurrentUser,
    service: ServiceDep,
    session: SessionDep,
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SimilarCases:
    record = service.workspace.get(session, user, analysis_id)
    # In the inference pool: embedding the image reuses that worker's loaded model.
    results = service.inference.submit(service.workspace.similar, record, k).result()
    audit.record(session, user, "search", "analysis", record.id, {"k": k, "results": len(results)})
    session.commit()
    return SimilarCases(
        items=[
            SimilarCase(
                case_id=r.case.id,
                score=r.similarity,
                diagnosis=r.case.diagnosis,
                modality=r.case.modality,
                labels=list(r.case.positive_findings),
                created_at=r.case.created_at,
                signals=r.signals,
            )
            for r in results
        ]
    )
