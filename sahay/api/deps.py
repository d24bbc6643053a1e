"""Dependencies shared by the routes, as ``Annotated`` types."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from sahay.config import Settings
from sahay.errors import Forbidden, NotFound
from sahay.services.accounts import Sessions
from sahay.services.workspace import Workspace
from sahay.store.records import UserRecord

T = TypeVar("T")
JOB_RETENTION = timedelta(hours=24)
"""Finished jobs are forgotten after this; their analyses stay."""


@dataclass
class Job:
    """Long work (a perturbation explanation) that the client polls; ``step`` is its last progress."""

    id: str
    owner_id: str
    status: str = "queued"  # queued, running, done, failed
    analysis_id: str | None = None
    error: str | None = None
    error_status: int | None = None
    step: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Service:
    settings: Settings
    workspace: Workspace
    sessions: Sessions
    inference: ThreadPoolExecutor
    jobs: dict[str, Job] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run model work in the inference pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.inference, function, *args)

    def new_job(self, owner: UserRecord) -> Job:
        cutoff = datetime.now(UTC) - JOB_RETENTION
        for old in [
            j for j in self.jobs.values() if j.status in ("done", "failed") and j.created_at < cutoff
        ]:
            del self.jobs[old.id]
        job = Job(id=uuid.uuid4().hex, owner_id=owner.id)
        self.jobs[job.id] = job
        return job

    def job(self, user: UserRecord, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or (job.owner_id != user.id and user.role != "admin"):
            raise NotFound(f"no job {job_id!r}")
        return job


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def current_user(service: ServiceDep, token: Annotated[str | None, Depends(_bearer)]) -> UserRecord:
    return service.sessions.user_for(token)


CurrentUser = Annotated[UserRecord, Depends(current_user)]


def admin_user(user: CurrentUser) -> UserRecord:
    if user.role != "admin":
        raise Forbidden("only an administrator may do this")
    return user


AdminUser = Annotated[UserRecord, Depends(admin_user)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
