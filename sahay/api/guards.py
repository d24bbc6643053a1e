"""ASGI middleware that must act before FastAPI reads a request or after it fails.

- ``RequestGuard``: every request body is bounded before the app reads it: an upload by the file
  limit, anything else by ``SAHAY_MAX_BODY_KB``; 413 on the declared length and on the bytes
  actually received. A body for an authenticated route is refused with 401 before it is read
  unless it carries a valid access token. A client that takes longer than ``SAHAY_BODY_TIMEOUT_S``
  to send its body gets 408 (slow-body attacks hold no worker).
- ``ErrorShield``: an unexpected exception becomes a plain 500 and one log line with its type only.
  Starlette's own error middleware logs the message and traceback, which can hold patient data.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sahay.errors import InputTooLarge, NotAuthenticated

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/v1"
UPLOAD_PATH = f"{API_PREFIX}/analyses"
SIGN_IN_PATHS = {f"{API_PREFIX}/auth/token", f"{API_PREFIX}/auth/refresh", f"{API_PREFIX}/auth/logout"}
"""The routes whose body is itself the credential: bounded, but read without an access token."""
MULTIPART_ALLOWANCE = 1_000_000
"""Bytes allowed beyond the file limit: multipart framing, the note and the other fields."""
log = logging.getLogger("sahay.api")


async def send_json(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = scope["app"].state.service
        settings = service.settings
        path = scope["path"].rstrip("/")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        has_body = (declared.isdigit() and int(declared) > 0) or "transfer-encoding" in headers
        upload = scope["method"] == "POST" and path == UPLOAD_PATH
        if upload:
            limit = settings.max_file_bytes + MULTIPART_ALLOWANCE
            too_large = InputTooLarge(
                f"the upload is larger than the limit of {settings.max_file_mb:g} MB (SAHAY_MAX_FILE_MB)"
            )
        else:
            limit = settings.max_body_kb * 1024
            too_large = InputTooLarge(
                f"the request body is larger than the limit of {settings.max_body_kb} KB (SAHAY_MAX_BODY_KB)"
            )
        if (upload or has_body) and path.startswith(API_PREFIX) and path not in SIGN_IN_PATHS:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            try:
                service.sessions.tokens.claims(token if scheme.lower() == "bearer" else "", "access")
            except NotAuthenticated as exc:
                await send_json(send, 401, str(exc), {"WWW-Authenticate": "Bearer"})
                return
        if declared.isdigit() and int(declared) > limit:
            await send_json(send, too_large.http_status, str(too_large))
            return
        await self._bounded(scope, receive, send, limit, too_large, settings.body_timeout_s)

    async def _bounded(
        self, scope: Scope, receive: Receive, send: Send, limit: int, too_large: Exception, timeout_s: float
    ) -> None:
        received = 0
        failure: tuple[int, str] | None = None
        body_done = False
        deadline = asyncio.get_running_loop().time() + timeout_s

        async def counted() -> Message:
            nonlocal received, failure, body_done
            if body_done:  # after the body, receive() waits for a disconnect: no deadline then
                return await receive()
            try:
                remaining = deadline - asyncio.get_running_loop().time()
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                failure = (
                    408,
                    f"the request body did not arrive within {timeout_s:g} s (SAHAY_BODY_TIMEOUT_S)",
                )
                return {"type": "http.disconnect"}  # the app stops reading; the error is sent below
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    failure = (413, str(too_large))
                    return {"type": "http.disconnect"}
            return message

        async def unless_failed(message: Message) -> None:
            if failure is None:
                await send(message)

        try:
            await self.app(scope, counted, unless_failed)
        except Exception:
            if failure is None:
                raise
        if failure is not None:
            await send_json(send, *failure)


class ErrorShield:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.error("internal error on %s %s: %s", scope["method"], scope["path"], type(exc).__name__)
            if not started:
                await send_json(send, 500, "internal error; the administrator can find it in the server log")
