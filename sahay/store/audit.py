"""The audit log: who created, viewed, exported or deleted what, and when. Append-only.

Entries name objects by id and never hold image content, notes, answers or secrets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session

from sahay.store.records import AuditEvent, UserRecord

Action = Literal[
    "login",
    "login-failed",
    "logout",
    "create",
    "view",
    "export",
    "delete",
    "chat",
    "search",
    "disable",
    "enable",
    "set-password",
    "revoke-sessions",
]


def record(
    session: Session,
    actor: UserRecord | None,
    action: Action,
    object_type: str,
    object_id: str | None = None,
    detail: dict[str, Any] | None = None,
    *,
    actor_name: str | None = None,
) -> AuditEvent:
    entry = AuditEvent(
        actor_id=actor.id if actor else None,
        actor=actor.username if actor else (actor_name or "anonymous"),
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
    )
    session.add(entry)
    return entry


def events(
    session: Session,
    *,
    limit: int = 100,
    actor: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
) -> list[AuditEvent]:
    """Newest first."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if object_id:
        query = query.where(AuditEvent.object_id == object_id)
    if since:
        query = query.where(AuditEvent.at >= since)
    return list(session.scalars(query))


@event.listens_for(Session, "do_orm_execute")
def _no_bulk_rewrite(state: ORMExecuteState) -> None:
    """Refuse ``update(AuditEvent)`` and ``delete(AuditEvent)`` run through a session."""
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is AuditEvent for mapper in state.all_mappers
    ):
        raise PermissionError("the audit log is append-only; entries cannot be changed or deleted")


@event.listens_for(Session, "before_flush")
def _append_only(session: Session, flush_context: Any, instances: Any) -> None:
    """Refuse any change to an audit entry already written: the log must not be rewritten."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEvent):
            raise PermissionError("the audit log is append-only; entries cannot be changed or deleted")
