"""Liveness and readiness, which load balancers call without a token."""

from __future__ import annotations

from collections.abc import Callable

from sahay.about import __version__
from sahay.api.app import WEB_DIR
from tests.api.conftest import World


def test_healthz_answers_without_a_token(world: World) -> None:
    response = world.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_readyz_is_ready_with_a_model_installed(world: World) -> None:
    response = world.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "database": "ok", "models": 1}  # a count: names are not public


def test_readyz_is_503_without_any_model(make_world: Callable[..., World]) -> None:
    bare = make_world(model=False)
    response = bare.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "database": "ok", "models": 0}
    # Liveness does not depend on models.
    assert bare.client.get("/healthz").status_code == 200


def test_openapi_describes_every_api_route(world: World) -> None:
    paths = world.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/analyses", "/api/v1/auth/token", "/api/v1/audit", "/healthz", "/readyz"} <= set(paths)
    assert "not a diagnosis" in world.client.get("/openapi.json").json()["info"]["description"]


def test_browser_ui_is_served_at_the_root_when_installed(world: World) -> None:
    response = world.client.get("/")
    if not (WEB_DIR / "index.html").is_file():
        assert response.status_code == 404
        return
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
