"""What one request, one user and everyone together may take from the service (docs/security.md):
bodies bounded before they are read, slow bodies cut off, bounded queues and waits, and
requests that would once crash a route answered with a 4xx or a 503."""

from __future__ import annotations

import asyncio
import io
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from sqlalchemy.exc import TimeoutError as DatabasePoolTimeout

from sahay.errors import TooManyRequests
from sahay.services.jobs import JobBoard
from tests.api.conftest import API, DEMO, Account, World, make_settings


def _asgi(world: World, method: str, path: str, headers: dict[str, str], receive: Any) -> tuple[int, int]:
    """Send one request straight to the ASGI app with a hand-made ``receive``; returns the status
    and how many times the app pulled a body chunk (TestClient would send every body whole first)."""
    pulled = 0
    statuses: list[int] = []

    async def counted() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        message: dict[str, Any] = await receive(pulled)
        return message

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(asyncio.wait_for(world.client.app(scope, counted, send), timeout=60))
    return statuses[0], pulled


async def _endless_json(number: int) -> dict[str, Any]:
    return {
        "type": "http.request",
        "body": (b'{"refresh_token": "' if number == 1 else b"a") * 65_536,
        "more_body": True,
    }


def test_a_large_body_is_refused_on_its_declared_length(world: World) -> None:
    body = b'{"refresh_token": "' + b"a" * 1_000_000 + b'"}'
    response = world.client.post(
        f"{API}/auth/refresh", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "SAHAY_MAX_BODY_KB" in response.json()["detail"]


def test_a_body_that_never_ends_is_cut_at_the_limit(world: World) -> None:
    headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
    status, pulled = _asgi(world, "POST", f"{API}/auth/refresh", headers, _endless_json)
    assert status == 413
    assert pulled <= 2  # 64 KB chunks: the second one passes the 64 KB limit


def test_a_chat_question_of_200_mb_is_refused_before_it_is_read(
    world: World, alice: Account, png_analysis: dict[str, Any]
) -> None:
    headers = {**alice.headers, "content-type": "application/json", "content-length": str(200 * 1024 * 1024)}
    status, pulled = _asgi(world, "POST", f"{API}/analyses/{png_analysis['id']}/chat", headers, _endless_json)
    assert (status, pulled) == (413, 0)


def test_a_body_without_a_token_is_refused_before_it_is_read(
    world: World, png_analysis: dict[str, Any]
) -> None:
    headers = {"content-type": "application/json", "content-length": "30"}
    status, pulled = _asgi(world, "POST", f"{API}/analyses/{png_analysis['id']}/chat", headers, _endless_json)
    assert (status, pulled) == (401, 0)


def test_a_body_that_stalls_gets_408(make_world: Callable[..., World]) -> None:
    slow = make_world(body_timeout_s=0.5)
    account = slow.account()

    async def stalled(number: int) -> dict[str, Any]:
        if number == 1:
            return {"type": "http.request", "body": b'{"question": "is', "more_body": True}
        await asyncio.sleep(30)  # a client that stops sending: the guard must not wait this long
        raise AssertionError("the guard waited for a stalled body")

    headers = {**account.headers, "content-type": "application/json", "content-length": "40"}
    status, _ = _asgi(slow, "POST", f"{API}/auth/logout", headers, stalled)
    assert status == 408


@pytest.mark.parametrize(
    "query",
    ["offset=9223372036854775808", "offset=-1", "limit=0"],
)
def test_paging_out_of_range_is_422(world: World, alice: Account, query: str) -> None:
    assert world.client.get(f"{API}/analyses?{query}", headers=alice.headers).status_code == 422


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_window_that_is_not_a_finite_number_is_422(
    world: World, alice: Account, png_analysis: dict[str, Any], value: str
) -> None:
    url = f"{API}/analyses/{png_analysis['id']}/image?window_center={value}&window_width=400"
    response = world.client.get(url, headers=alice.headers)
    assert response.status_code == 422
    assert "blob" not in response.text and str(world.settings.home_dir) not in response.text


def test_json_answers_are_not_cached(world: World, alice: Account, png_analysis: dict[str, Any]) -> None:
    response = world.client.get(f"{API}/analyses/{png_analysis['id']}", headers=alice.headers)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    pair = world.client.post(
        f"{API}/auth/token", data={"username": alice.username, "password": alice.password}
    )
    assert pair.status_code == 200 and pair.headers["cache-control"] == "no-store"


def test_readiness_names_no_models(world: World) -> None:
    body = world.client.get("/readyz").json()
    assert body["ready"] is True and body["models"] == 1
    assert DEMO not in str(body)


def test_the_api_documentation_loads_nothing_from_outside(world: World) -> None:
    page = world.client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert world.client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_the_api_documentation_can_be_turned_off(make_world: Callable[..., World]) -> None:
    assert make_world(api_docs=False).client.get("/docs").status_code == 404


def test_an_exhausted_database_pool_is_a_503_with_retry_after(make_world: Callable[..., World]) -> None:
    busy = make_world()
    router = APIRouter()

    @router.get("/test-pool")
    def exhausted() -> None:
        raise DatabasePoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    busy.app.include_router(router)
    response = busy.client.get("/test-pool")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert "QueuePool" not in response.text


# Fair shares -----------------------------------------------------------------------------------


@contextmanager
def _inference_blocked(world: World) -> Iterator[threading.Event]:
    """Hold the service's only inference worker until the block ends, so requests queue behind it."""
    release = threading.Event()
    service = world.app.state.service
    held = service.inference.submit(release.wait, 30)
    try:
        yield release
    finally:
        release.set()
        held.result(timeout=30)


def test_a_users_background_queue_is_bounded(make_world: Callable[..., World]) -> None:
    world = make_world(max_jobs_per_user=1, workers=1)
    account = world.account()
    with _inference_blocked(world):
        first = world.upload(account, params={"background": "true"})
        assert first.status_code == 202
        second = world.upload(account, params={"background": "true"})
        assert second.status_code == 429 and int(second.headers["retry-after"]) > 0
        other_account = world.account("other")
        other = world.upload(other_account, params={"background": "true"})
        assert other.status_code == 202  # another user's share is untouched
    assert world.wait_for_job(account, first.json()["id"])["status"] == "done"
    assert world.wait_for_job(other_account, other.json()["id"])["status"] == "done"
    assert not [name for name in world.folders() if name.startswith(".upload-")]


def test_everyones_background_queue_is_bounded(make_world: Callable[..., World]) -> None:
    world = make_world(max_queued_jobs=1, workers=1)
    with _inference_blocked(world):
        assert world.upload(world.account("a"), params={"background": "true"}).status_code == 202
        refused = world.upload(world.account("b"), params={"background": "true"})
        assert refused.status_code == 503 and "retry-after" in refused.headers


def test_waiting_requests_are_bounded_per_user_and_others_go_on() -> None:
    board = JobBoard(make_settings(Path("/nonexistent"), max_waiting_per_user=2))

    class User:
        id = "u1"

    class Other:
        id = "u2"

    with board.waiting(User()), board.waiting(User()):  # type: ignore[arg-type]
        with pytest.raises(TooManyRequests, match="the limit is 2") as refused, board.waiting(User()):  # type: ignore[arg-type]
            pass
        assert refused.value.http_status == 429 and refused.value.retry_after > 0
        with board.waiting(Other()):  # type: ignore[arg-type]
            pass
    with board.waiting(User()), board.waiting(User()):  # released: the user may wait again
        pass


def test_a_burst_of_searches_leaves_other_users_served(make_world: Callable[..., World]) -> None:
    world = make_world(max_waiting_per_user=2, workers=1)
    busy, calm = world.account("busy"), world.account("calm")
    analysis = world.analyse(busy)
    statuses: list[int] = []

    def search() -> None:
        statuses.append(
            world.client.get(f"{API}/analyses/{analysis['id']}/similar", headers=busy.headers).status_code
        )

    with _inference_blocked(world):
        threads = [threading.Thread(target=search) for _ in range(6)]
        for thread in threads:
            thread.start()
        while len(statuses) < 4:  # two wait behind the blocked worker; the others are refused at once
            threading.Event().wait(0.05)
        assert world.client.get(f"{API}/users/me", headers=calm.headers).status_code == 200
        assert world.client.get("/healthz").status_code == 200
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 200, 429, 429, 429, 429]


# Files ----------------------------------------------------------------------------------------


def test_what_the_service_writes_is_private(world: World, png_analysis: dict[str, Any]) -> None:
    home = world.settings.home_dir
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    written = [p for p in home.rglob("*") if p.is_file() and "models" not in p.parts]
    assert any(p.name == "sahay.db" for p in written) and any(p.suffix == ".png" for p in written)
    readable_by_others = [p for p in written if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert not readable_by_others


def test_the_sweep_removes_abandoned_uploads_at_once_but_not_ones_in_progress(world: World) -> None:
    workspace = world.app.state.service.workspace
    abandoned = world.analyses_dir / ".upload-abandoned"
    abandoned.mkdir(parents=True)
    (abandoned / "chest.dcm").write_bytes(b"patient image")
    in_progress = workspace.spool("chest.png", io.BytesIO(b"uploading"))
    try:
        assert workspace.sweep() >= 1
        assert not abandoned.exists() and in_progress.path.is_file()
    finally:
        workspace.discard(in_progress.path)
    assert not in_progress.path.parent.exists()
