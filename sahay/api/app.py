"""The FastAPI application: routers under /api/v1, errors as JSON, the browser UI at /.

Example::

    import uvicorn
    from sahay.api.app import create_app

    uvicorn.run(create_app(), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from sahay.about import DISCLAIMER, __version__
from sahay.api.deps import Service
from sahay.api.guards import ErrorShield, UploadGuard
from sahay.api.routes import analyses, audit, auth, cases, chat, models, reports, users
from sahay.config import Settings, get_settings
from sahay.errors import NotAuthenticated, SahayError, TooManyAttempts
from sahay.services.accounts import Sessions
from sahay.services.models import installed_models
from sahay.services.workspace import Workspace
from sahay.store.db import get_engine

API_PREFIX = "/api/v1"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
log = logging.getLogger("sahay.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        get_engine(settings)  # migrate before the first request
        service = Service(
            settings=settings,
            workspace=Workspace(settings),
            sessions=Sessions(settings),
            inference=ThreadPoolExecutor(settings.workers, thread_name_prefix="sahay-inference"),
        )
        app.state.service = service
        removed = service.workspace.sweep()
        if removed:
            log.warning("removed %d folders left by interrupted uploads", removed)
        try:
            yield
        finally:
            service.inference.shutdown(wait=True, cancel_futures=True)
            service.workspace.close()

    app = FastAPI(
        title="Sahay",
        version=__version__,
        description=f"Medical image analysis assistant. {DISCLAIMER}",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    for module in (auth, users, analyses, chat, reports, cases, models, audit):
        app.include_router(module.router, prefix=API_PREFIX)
    _add_error_handlers(app)
    app.add_middleware(UploadGuard)
    _add_security_headers(app)
    app.add_middleware(ErrorShield)  # added last, so it wraps all the others
    _add_health(app)
    _add_web(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SahayError)
    async def sahay_error(request: Request, exc: SahayError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)


# The UI loads only its own files; blob: URLs carry the images fetched with the token.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _add_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith(("/docs", "/redoc")):  # Swagger UI loads its own assets
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


def _add_health(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        service: Service = request.app.state.service
        checks: dict[str, Any] = {}
        try:
            with get_engine(service.settings).connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # readiness reports, it does not raise
            checks["database"] = f"unreachable ({type(exc).__name__})"
        names = [model.name for model in installed_models(service.settings)]
        checks["models"] = names or "none installed"
        ready = checks["database"] == "ok" and bool(names)
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


def _add_web(app: FastAPI) -> None:
    if not (WEB_DIR / "index.html").is_file():
        return
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})
