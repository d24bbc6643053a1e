"""The audit log, for administrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sahay.api.deps import AdminUser, ServiceDep
from sahay.services import accounts
from sahay.services.accounts import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntry])
def audit_log(
    admin: AdminUser,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    actor: str | None = None,
    object_id: str | None = None,
) -> list[AuditEntry]:
    return accounts.audit_log(limit=limit, actor=actor, object_id=object_id, settings=service.settings)
