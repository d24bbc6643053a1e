"""Every route of the app, with every kind of caller.

``TABLE`` names each route (method and path) with how to call it successfully. The routes are
read from the app itself, so a new route without an entry here fails the sweep. Then, for each:

- the right caller (the owner, an administrator, or anyone for public routes) succeeds;
- under /api/v1, no token, a bad token and an expired one are 401 (except sign-in, refresh and sign-out, whose
  credential is in the body);
- a clinician who does not own the analysis (or job) named in the path gets 404, the same answer
  as for an id that does not exist, and nothing changes;
- a clinician gets 403 from the administrators' routes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from sahay.api.app import WEB_DIR, create_app
from sahay.store.tokens import ALGORITHM, signing_key
from tests.api.conftest import (
    API,
    DEMO,
    Account,
    World,
    make_settings,
    new_password,
    png_bytes,
    unique,
)

RouteKey = tuple[str, str]  # (method, path template); a mounted folder is ("MOUNT", path)


def app_routes(app: FastAPI) -> set[RouteKey]:
    """Every (method, path) the app answers, HEAD aside, whether FastAPI lists included routers
    flat (older versions) or as lazily resolved groups (newer ones)."""
    found: set[RouteKey] = set()

    def add(route: Any, path: str) -> None:
        if isinstance(route, Mount):
            found.add(("MOUNT", path))
            return
        methods = set(getattr(route, "methods", None) or ()) - {"HEAD"}
        assert methods, f"a route without methods: {route!r}"
        found.update((method, path) for method in methods)

    def walk(routes: Iterable[Any]) -> None:
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if contexts is not None:  # an included router (FastAPI >= 0.16x)
                for context in contexts():
                    add(context.original_route, context.path)
            else:
                add(route, route.path)

    walk(app.routes)
    return found


@dataclass
class Sweep:
    """The callers and objects the probes use."""

    world: World
    owner: Account
    other: Account
    admin: Account
    analysis_id: str
    job_id: str
    target: Account
    """A clinician whom the administrators' user routes act on (disabled, given passwords)."""

    def fresh_analysis(self) -> str:
        return self.world.analyse(self.owner, png_bytes(seed=90))["id"]


Body = Callable[[Sweep], dict[str, Any]]


def _nothing(sweep: Sweep) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Probe:
    access: Literal["public", "user", "admin"]
    """Who may call it: anyone, any signed-in user, administrators."""
    ok: int = 200
    body: Body = _nothing
    """Keyword arguments for the request (json, data, files, params) of a successful call."""
    owned: Literal["analysis", "job"] | None = None
    """The object named in the path, which only its owner (or an administrator) may see."""
    consumes: bool = False
    """A successful call uses the object up (DELETE): each one gets a fresh analysis."""
    credential_in_body: bool = False
    """Under /api/v1 but signed in with what the body carries, not with an access token."""


def _sign_in(sweep: Sweep) -> dict[str, Any]:
    return {"data": {"username": sweep.owner.username, "password": sweep.owner.password}}


def _refresh_token(sweep: Sweep) -> dict[str, Any]:
    return {"json": {"refresh_token": sweep.world.account("sweep-session").refresh_token}}


def _new_user(sweep: Sweep) -> dict[str, Any]:
    return {"json": {"username": unique("sweep-new"), "password": new_password()}}


def _password(sweep: Sweep) -> dict[str, Any]:
    return {"json": {"password": new_password()}}


def _upload(sweep: Sweep) -> dict[str, Any]:
    return {"files": {"image": ("sweep.png", png_bytes(seed=91), "image/png")}, "data": {"model": DEMO}}


def _question(sweep: Sweep) -> dict[str, Any]:
    return {"json": {"question": "What does the disc finding mean?"}}


ANALYSIS = f"{API}/analyses/{{analysis_id}}"
USER = f"{API}/users/{{user_id}}"
TABLE: dict[RouteKey, Probe] = {
    ("POST", f"{API}/auth/token"): Probe("public", body=_sign_in),
    ("POST", f"{API}/auth/refresh"): Probe("public", body=_refresh_token),
    ("POST", f"{API}/auth/logout"): Probe("public", ok=204, body=_refresh_token, credential_in_body=True),
    ("GET", f"{API}/users/me"): Probe("user"),
    ("POST", f"{API}/users"): Probe("admin", ok=201, body=_new_user),
    ("GET", f"{API}/users"): Probe("admin"),
    ("POST", f"{USER}/disable"): Probe("admin"),
    ("POST", f"{USER}/enable"): Probe("admin"),
    ("POST", f"{USER}/revoke-sessions"): Probe("admin", ok=204),
    # A user may also set their own password (with the old one: tests/api/test_users.py); another
    # user's, only an administrator.
    ("PUT", f"{USER}/password"): Probe("admin", ok=204, body=_password),
    ("GET", f"{API}/models"): Probe("user"),
    ("GET", f"{API}/models/{{name}}/card"): Probe("user"),
    ("GET", f"{API}/capabilities"): Probe("user"),
    ("POST", f"{API}/analyses"): Probe("user", ok=201, body=_upload),
    ("GET", f"{API}/analyses"): Probe("user", body=lambda sweep: {"params": {"limit": 5}}),
    ("GET", f"{API}/jobs/{{job_id}}"): Probe("user", owned="job"),
    ("GET", ANALYSIS): Probe("user", owned="analysis"),
    ("DELETE", ANALYSIS): Probe("user", ok=204, owned="analysis", consumes=True),
    ("GET", f"{ANALYSIS}/image"): Probe("user", owned="analysis"),
    ("GET", f"{ANALYSIS}/heatmaps/{{label:path}}"): Probe("user", owned="analysis"),
    ("GET", f"{ANALYSIS}/heatmaps/{{label:path}}/layer"): Probe("user", owned="analysis"),
    ("GET", f"{ANALYSIS}/chat"): Probe("user", owned="analysis"),
    ("POST", f"{ANALYSIS}/chat"): Probe("user", owned="analysis", body=_question),
    ("GET", f"{ANALYSIS}/reports/{{report_format}}"): Probe("user", owned="analysis"),
    ("GET", f"{ANALYSIS}/similar"): Probe("user", owned="analysis"),
    # The sweep's case library is empty, so a signed-in caller gets 404 for the unknown case;
    # tests/api/test_cases.py opens real ones.
    ("GET", f"{API}/cases/{{case_id}}"): Probe("user", ok=404),
    ("GET", f"{API}/cases/{{case_id}}/thumbnail"): Probe("user", ok=404),
    ("GET", f"{API}/audit"): Probe("admin"),
    ("GET", "/healthz"): Probe("public"),
    ("GET", "/readyz"): Probe("public"),
    ("GET", "/openapi.json"): Probe("public"),
    ("GET", "/docs"): Probe("public"),
    ("GET", "/docs/oauth2-redirect"): Probe("public"),
    ("MOUNT", "/docs-assets"): Probe("public"),
}
# The browser UI, present when sahay/web/ holds it.
WEB_TABLE: dict[RouteKey, Probe] = {
    ("GET", "/"): Probe("public"),
    ("MOUNT", "/static"): Probe("public"),
}
if (WEB_DIR / "index.html").is_file():
    TABLE.update(WEB_TABLE)

# Read from an app that is built but not started: building touches no disk.
ROUTES = sorted(app_routes(create_app(make_settings(Path("/nonexistent-sahay-home")))))
PATH_VALUES = {"label": "synthetic_disc", "report_format": "html", "name": DEMO}


def _probe(route: RouteKey) -> Probe:
    assert route in TABLE, f"{route} has no entry in TABLE: add one, so the sweep tests it"
    return TABLE[route]


def _url(route: RouteKey, sweep: Sweep, analysis_id: str | None = None) -> str:
    method, template = route
    if method == "MOUNT":
        return f"{template}/index.html"
    values = {
        **PATH_VALUES,
        "analysis_id": analysis_id or sweep.analysis_id,
        "job_id": sweep.job_id,
        "user_id": sweep.target.id,
        "case_id": "0" * 32,
    }
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", template).format(**values)  # {label:path} -> {label}


def _call(sweep: Sweep, route: RouteKey, headers: dict[str, str], url: str | None = None) -> Any:
    method = "GET" if route[0] == "MOUNT" else route[0]
    kwargs = _probe(route).body(sweep)
    return sweep.world.client.request(method, url or _url(route, sweep), headers=headers, **kwargs)


@pytest.fixture(scope="module")
def sweep(world: World, admin: Account) -> Sweep:
    owner, other = world.account("sweep-owner"), world.account("sweep-other")
    analysis_id = world.analyse(owner, png_bytes(seed=92))["id"]
    started = world.upload(owner, png_bytes(seed=93), params={"background": "true"})
    assert started.status_code == 202, started.text
    job = world.wait_for_job(owner, started.json()["id"])
    assert job["status"] == "done", job
    return Sweep(world, owner, other, admin, analysis_id, job["id"], world.account("sweep-target"))


def _ids(routes: Iterable[RouteKey]) -> list[str]:
    return [f"{method} {path}" for method, path in routes]


# The table ----------------------------------------------------------------------------------------


def test_the_table_names_exactly_the_apps_routes(world: World) -> None:
    routes = app_routes(world.app)
    assert routes == set(ROUTES), "the started app has the routes of the built one"
    assert sorted(routes - set(TABLE)) == [], "routes without a probe"
    assert sorted(set(TABLE) - routes) == [], "probes of routes that are gone"


def test_the_openapi_description_lists_no_other_routes(world: World) -> None:
    described = {
        (method.upper(), path) for path, item in world.app.openapi()["paths"].items() for method in item
    }
    listed = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path)) for method, path in TABLE
    }  # OpenAPI drops ":path"
    assert described <= listed


# Every route, called right ----------------------------------------------------------------------


def _caller(sweep: Sweep, probe: Probe) -> dict[str, str]:
    if probe.access == "admin":
        return sweep.admin.headers
    return sweep.owner.headers if probe.access == "user" else {}


@pytest.mark.parametrize("route", ROUTES, ids=_ids(ROUTES))
def test_the_right_caller_succeeds(sweep: Sweep, route: RouteKey) -> None:
    probe = _probe(route)
    url = _url(route, sweep, sweep.fresh_analysis() if probe.consumes else None)
    response = _call(sweep, route, _caller(sweep, probe), url)
    assert response.status_code == probe.ok, response.text


OWNED = [r for r in ROUTES if r in TABLE and TABLE[r].owned]


@pytest.mark.parametrize("route", OWNED, ids=_ids(OWNED))
def test_an_administrator_reaches_every_users_objects(sweep: Sweep, route: RouteKey) -> None:
    probe = _probe(route)
    url = _url(route, sweep, sweep.fresh_analysis() if probe.consumes else None)
    response = _call(sweep, route, sweep.admin.headers, url)
    assert response.status_code == probe.ok, response.text


# Without a token ----------------------------------------------------------------------------------

API_ROUTES = [r for r in ROUTES if r[1].startswith(f"{API}/")]
# A route missing from TABLE counts as needing a token, and fails in _probe.
GUARDED = [r for r in API_ROUTES if TABLE.get(r, Probe("user")).access != "public"]


@pytest.mark.parametrize("route", GUARDED, ids=_ids(GUARDED))
@pytest.mark.parametrize("token", ["none", "bad", "expired"])
def test_without_a_valid_token_is_401(sweep: Sweep, route: RouteKey, token: str) -> None:
    _probe(route)
    headers = {
        "none": {},
        "bad": {"Authorization": "Bearer not-a-token"},
        "expired": {"Authorization": f"Bearer {_expired_token(sweep)}"},
    }[token]
    response = _call(sweep, route, headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert (
        sweep.world.client.get(_url(("GET", ANALYSIS), sweep), headers=sweep.owner.headers).status_code == 200
    )


def _expired_token(sweep: Sweep) -> str:
    """The owner's access token, as the service would have made it, a minute past its expiry."""
    now = datetime.now(UTC)
    claims = {
        "sub": sweep.owner.id,
        "role": sweep.owner.role,
        "type": "access",
        "jti": uuid.uuid4().hex,
        "iat": now - timedelta(minutes=16),
        "exp": now - timedelta(minutes=1),
    }
    return jwt.encode(claims, signing_key(sweep.world.settings), algorithm=ALGORITHM)


def test_only_sign_in_refresh_and_sign_out_are_open() -> None:
    open_routes = {route for route in API_ROUTES if _probe(route).access == "public"}
    assert open_routes == {
        ("POST", f"{API}/auth/token"),
        ("POST", f"{API}/auth/refresh"),
        ("POST", f"{API}/auth/logout"),
    }
    # Sign-out needs no access token (it works after one expired): the refresh token is its credential.
    assert [route for route in open_routes if _probe(route).credential_in_body] == [
        ("POST", f"{API}/auth/logout")
    ]


def test_sign_out_without_a_valid_refresh_token_is_401(sweep: Sweep) -> None:
    response = sweep.world.client.post(f"{API}/auth/logout", json={"refresh_token": "not-a-token"})
    assert response.status_code == 401


# Someone else's objects ---------------------------------------------------------------------------


@pytest.mark.parametrize("route", OWNED, ids=_ids(OWNED))
def test_another_clinician_gets_404_as_if_it_did_not_exist(sweep: Sweep, route: RouteKey) -> None:
    probe = _probe(route)
    response = _call(sweep, route, sweep.other.headers)
    assert response.status_code == 404, response.text

    missing_id = "0" * 32
    missing = _call(
        sweep,
        route,
        sweep.other.headers,
        _url(route, sweep).replace(sweep.analysis_id, missing_id).replace(sweep.job_id, missing_id),
    )
    assert missing.status_code == 404
    real_id = sweep.analysis_id if probe.owned == "analysis" else sweep.job_id
    assert response.json()["detail"] == missing.json()["detail"].replace(missing_id, real_id)

    # Nothing changed for the owner.
    kept = sweep.world.client.get(_url(("GET", ANALYSIS), sweep), headers=sweep.owner.headers)
    assert kept.status_code == 200
    job = sweep.world.client.get(_url(("GET", f"{API}/jobs/{{job_id}}"), sweep), headers=sweep.owner.headers)
    assert job.json()["status"] == "done"


def test_the_sweep_covers_every_route_that_names_an_analysis() -> None:
    named = {route for route in ROUTES if "{analysis_id}" in route[1]}
    assert named and named <= set(OWNED)


# Administrators' routes ---------------------------------------------------------------------------

ADMIN = [r for r in ROUTES if r in TABLE and TABLE[r].access == "admin"]


@pytest.mark.parametrize("route", ADMIN, ids=_ids(ADMIN))
def test_a_clinician_gets_403_from_admin_routes(sweep: Sweep, route: RouteKey) -> None:
    response = _call(sweep, route, sweep.owner.headers)
    assert response.status_code == 403
    assert response.json()["detail"] == "only an administrator may do this"


def test_the_admin_routes_are_the_expected_ones() -> None:
    assert set(ADMIN) == {
        ("POST", f"{API}/users"),
        ("GET", f"{API}/users"),
        ("POST", f"{USER}/disable"),
        ("POST", f"{USER}/enable"),
        ("POST", f"{USER}/revoke-sessions"),
        ("PUT", f"{USER}/password"),
        ("GET", f"{API}/audit"),
    }
