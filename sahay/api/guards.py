"""ASGI middleware that must act before FastAPI reads a request or after it fails.

- ``UploadGuard``: an upload is refused before its body is read, unless it carries a valid access
  token, and as soon as it passes the size limit (with or without a Content-Length header).
- ``ErrorShield``: an unexpected exception becomes a plain 500 and one log line with its type only.
  Starlette's own error middleware logs the message and traceback, which can hold patient data.
"""

from __future__ import annotations

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

UPLOAD_PATH = "/api/v1/analyses"
MULTIPART_ALLOWANCE = 1_000_000
"""Bytes allowed beyond the file limit: multipart framing, the note and the other fields."""
log = logging.getLogger("sahay.api")


async def send_json(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class UploadGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != UPLOAD_PATH:
            await self.app(scope, receive, send)
            return
        service = scope["app"].state.service
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        try:
            service.sessions.tokens.claims(token if scheme.lower() == "bearer" else "", "access")
        except NotAuthenticated as exc:
            await send_json(send, 401, str(exc), {"WWW-Authenticate": "Bearer"})
            return
        limit = service.settings.max_file_bytes + MULTIPART_ALLOWANCE
        too_large = InputTooLarge(
            f"the upload is larger than the limit of {service.settings.max_file_mb:g} MB (SAHAY_MAX_FILE_MB)"
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await send_json(send, too_large.http_status, str(too_large))
            return
        received = 0
        exceeded = False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}  # the app stops reading; the 413 is sent below
            return message

        async def unless_exceeded(message: Message) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counted, unless_exceeded)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await send_json(send, too_large.http_status, str(too_large))


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
