"""Dependencies shared by the routes, as ``Annotated`` types."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from sahay.config import Settings
from sahay.errors import Forbidden
from sahay.services.accounts import Sessions
from sahay.services.jobs import JobBoard
from sahay.services.workspace import Workspace
from sahay.store.records import UserRecord

T = TypeVar("T")


@dataclass
class Service:
    """What the running service holds: its settings, the use cases' state, and its worker pools."""

    settings: Settings
    workspace: Workspace
    sessions: Sessions
    board: JobBoard
    inference: ThreadPoolExecutor
    """Model work: analyses and similar-case embeddings (``SAHAY_WORKERS`` threads)."""
    images: ThreadPoolExecutor
    """Decoding images for the viewer: bounded, so concurrent views cannot exhaust memory."""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def run(
        self, user: UserRecord, pool: ThreadPoolExecutor, function: Callable[..., T], *args: Any
    ) -> T:
        """Run ``function`` in ``pool``, off the event loop, counted against ``user``'s waiting limit."""
        with self.board.waiting(user):
            return await asyncio.get_running_loop().run_in_executor(pool, function, *args)


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
    """The client's address: the connecting peer, or, when the peer is one of SAHAY_TRUSTED_PROXIES,
    the nearest untrusted address in X-Forwarded-For."""
    peer = request.client.host if request.client else None
    return get_service(request).sessions.client_address(peer, request.headers.getlist("x-forwarded-for"))
