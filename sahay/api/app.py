"""The FastAPI application: routers under /api/v1, errors as JSON, the browser UI at /.

Example::

    import uvicorn
    from sahay.api.app import create_app

    uvicorn.run(create_app(), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
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
from sqlalchemy.exc import TimeoutError as DatabasePoolTimeout

from sahay.about import DISCLAIMER, __version__
from sahay.api.deps import Service
from sahay.api.guards import ErrorShield, RequestGuard
from sahay.api.routes import analyses, audit, auth, cases, chat, models, reports, users
from sahay.config import Settings, get_settings, keep_private
from sahay.errors import NotAuthenticated, SahayError
from sahay.services.accounts import Sessions
from sahay.services.jobs import JobBoard
from sahay.services.models import installed_models
from sahay.services.workspace import Workspace
from sahay.store.db import get_engine

API_PREFIX = "/api/v1"
IMAGE_THREADS = 2
"""Images decoded at once for the viewer; each may take a few hundred MB for a large DICOM."""
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
log = logging.getLogger("sahay.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keep_private(settings)  # before the first file: the database, uploads and heatmaps are PHI
        get_engine(settings)  # migrate before the first request
        service = Service(
            settings=settings,
            workspace=Workspace(settings),
            sessions=Sessions(settings),
            board=JobBoard(settings),
            inference=ThreadPoolExecutor(settings.workers, thread_name_prefix="sahay-inference"),
            images=ThreadPoolExecutor(IMAGE_THREADS, thread_name_prefix="sahay-images"),
        )
        app.state.service = service
        _sweep(service)  # at start-up no upload is in progress: everything left is abandoned
        sweeper = asyncio.create_task(_sweep_periodically(service))
        try:
            yield
        finally:
            sweeper.cancel()
            service.inference.shutdown(wait=True, cancel_futures=True)
            service.images.shutdown(wait=True, cancel_futures=True)
            service.workspace.close()

    app = FastAPI(
        title="Sahay",
        version=__version__,
        description=f"Medical image analysis assistant. {DISCLAIMER}",
        lifespan=lifespan,
        docs_url=None,  # served below from local files, never from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    for module in (auth, users, analyses, chat, reports, cases, models, audit):
        app.include_router(module.router, prefix=API_PREFIX)
    _add_error_handlers(app)
    app.add_middleware(RequestGuard)
    _add_security_headers(app)
    app.add_middleware(ErrorShield)  # added last, so it wraps all the others
    _add_health(app)
    if settings.api_docs:
        _add_docs(app)
    _add_web(app)
    return app


def _add_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-bundle package's files: the browser fetches nothing outside."""
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Sahay API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> Any:
        return get_swagger_ui_oauth2_redirect_html()


def _sweep(service: Service) -> None:
    """Remove what interrupted uploads left (a crash, a killed worker) and say how much."""
    try:
        removed = service.workspace.sweep()
    except Exception as exc:  # a failed sweep must not stop the service; the next one retries
        log.error("sweeping interrupted uploads failed: %s", type(exc).__name__)
    else:
        if removed:
            log.warning("removed %d folders left by interrupted uploads", removed)


async def _sweep_periodically(service: Service) -> None:
    while True:
        await asyncio.sleep(service.settings.sweep_interval_s)
        await asyncio.to_thread(_sweep, service)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SahayError)
    async def sahay_error(request: Request, exc: SahayError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        # "message" leaves out the API's hint: the browser words its own advice by "kind".
        body = {"detail": exc.for_door("api"), "kind": exc.kind, "message": str(exc)}
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    @app.exception_handler(DatabasePoolTimeout)
    async def database_busy(request: Request, exc: DatabasePoolTimeout) -> JSONResponse:
        # Every database connection is in use: a busy service, not a fault. Clients retry.
        log.warning("database pool exhausted on %s", request.url.path)
        return JSONResponse(
            {"detail": "the service is busy; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

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
        if request.url.path.startswith(API_PREFIX):  # answers can hold patient data or tokens
            response.headers.setdefault("Cache-Control", "no-store")
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
        # A count, not names: this route answers anyone (load balancers), and names say what runs here.
        count = len(installed_models(service.settings))
        checks["models"] = count
        ready = checks["database"] == "ok" and count > 0
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


def _add_web(app: FastAPI) -> None:
    if not (WEB_DIR / "index.html").is_file():
        return
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})
