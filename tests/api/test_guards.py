"""What happens before FastAPI reads a request, and after a route fails unexpectedly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter

from tests.api.conftest import API, World

PART = b'--x\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'


def _post_endless(world: World, headers: dict[str, str]) -> tuple[int, int]:
    """POST an upload whose body never ends, straight to the ASGI app (TestClient would send a
    body whole first). Returns the status answered and how many 1 MB chunks the app pulled."""
    pulled = 0
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {
            "type": "http.request",
            "body": (PART if pulled == 1 else b"") + b"\0" * 1_000_000,
            "more_body": True,
        }

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    raw_headers = [(b"content-type", b"multipart/form-data; boundary=x")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{API}/analyses",
        "raw_path": f"{API}/analyses".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    app = world.client.app  # its lifespan has run: the service is in app.state
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=60))
    return statuses[0], pulled


def test_an_upload_without_a_token_is_refused_before_its_body_is_read(
    make_world: Callable[..., World],
) -> None:
    world = make_world(model=False, max_file_mb=1)
    assert _post_endless(world, {}) == (401, 0)


def test_an_endless_upload_is_refused_at_the_limit(make_world: Callable[..., World]) -> None:
    world = make_world(model=False, max_file_mb=1)
    status, pulled = _post_endless(world, world.account().headers)
    assert status == 413
    assert pulled <= 3, f"{pulled} MB were read for a 1 MB limit"


def test_a_declared_length_over_the_limit_is_refused_at_once(make_world: Callable[..., World]) -> None:
    world = make_world(model=False, max_file_mb=1)
    account = world.account()
    response = world.client.post(
        f"{API}/analyses",
        content=b"\0" * 3_000_000,
        headers={**account.headers, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 413


def test_an_unexpected_error_is_a_plain_500_and_logs_no_message(
    make_world: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world(model=False)
    router = APIRouter()

    @router.get("/api/v1/explode")
    def explode() -> None:
        raise ValueError("PatientName=DOE^JANE zebra-marker-7731")

    world.client.app.include_router(router)  # type: ignore[attr-defined]
    with caplog.at_level(logging.DEBUG):
        response = world.client.get(f"{API}/explode")
    assert response.status_code == 500
    assert "DOE^JANE" not in response.text and "DOE^JANE" not in caplog.text
    assert "ValueError" in caplog.text
