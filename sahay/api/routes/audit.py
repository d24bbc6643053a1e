"""The audit log, for administrators."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from sahay.api.deps import AdminUser, SessionDep
from sahay.store import audit
from sahay.store.records import AuditEvent

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None


@router.get("", response_model=list[AuditEntry])
def audit_log(
    admin: AdminUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: str | None = None,
    object_id: str | None = None,
) -> list[AuditEvent]:
    return audit.events(session, limit=limit, actor=actor, object_id=object_id)
