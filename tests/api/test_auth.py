"""Sign in, refresh (rotation), sign out, token checks, the failed sign-in limits and the client address."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from sahay.config import Settings, reload_settings
from sahay.errors import NotAuthenticated, TooManyAttempts
from sahay.services import accounts as account_service
from sahay.store.db import session_scope
from sahay.store.records import AuditEvent, UserRecord
from sahay.store.tokens import ALGORITHM, signing_key
from tests.api.conftest import API, Account, World, bearer, create_account, token_pair, unique
from tests.e2e.test_cli_analyze import run_cli

WRONG = "wrong-guess-pelican-42"


def _token(world: World, account: Account, **claims: Any) -> str:
    now = datetime.now(UTC)
    with session_scope(world.settings) as session:
        version = session.get_one(UserRecord, account.id).token_version
    payload = {
        "sub": account.id,
        "role": account.role,
        "type": "access",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "ver": version,
    }
    payload.update(claims)
    # A claim given as None is left out.
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, signing_key(world.settings), algorithm=ALGORITHM)


def _me(world: World, token: str | None) -> Any:
    return world.client.get(f"{API}/users/me", headers=bearer(token) if token is not None else {})


# Signing in ---------------------------------------------------------------------------------------


def test_sign_in_gives_a_token_pair(world: World) -> None:
    name = unique("signin-ok")
    user_id, password = create_account(world.settings, name)
    response = world.client.post(f"{API}/auth/token", data={"username": name, "password": password})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == world.settings.access_token_minutes * 60
    assert body["user"] == {"id": user_id, "username": name, "role": "clinician"}
    claims = jwt.decode(body["access_token"], signing_key(world.settings), algorithms=[ALGORITHM])
    assert claims["sub"] == user_id and claims["type"] == "access"
    me = _me(world, body["access_token"])
    assert me.status_code == 200 and me.json()["username"] == name
    # The user name is matched without regard to case.
    assert token_pair(world.client, name.upper(), password)["user"]["id"] == user_id


@pytest.mark.parametrize("exists", [True, False], ids=["wrong-password", "unknown-user"])
def test_wrong_password_or_unknown_user_is_401_with_one_message(world: World, exists: bool) -> None:
    username = unique("signin-wrong")
    if exists:
        create_account(world.settings, username)
    response = world.client.post(
        f"{API}/auth/token", data={"username": username, "password": "not-the-password-1"}
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "wrong user name or password"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("form", "missing"),
    [({"username": "someone"}, "password"), ({"password": "x" * 12}, "username"), ({}, "")],
)
def test_sign_in_without_the_form_fields_is_422(world: World, form: dict[str, str], missing: str) -> None:
    response = world.client.post(f"{API}/auth/token", data=form)
    assert response.status_code == 422
    assert missing in response.json()["detail"]


def test_sign_in_with_json_instead_of_a_form_is_422(world: World, alice: Account) -> None:
    response = world.client.post(
        f"{API}/auth/token", json={"username": alice.username, "password": alice.password}
    )
    assert response.status_code == 422


def test_the_password_is_never_echoed_or_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    username = unique("signin-quiet")
    create_account(world.settings, username)
    secret = "hunter2-pelican-9917"
    with caplog.at_level(logging.DEBUG):
        response = world.client.post(f"{API}/auth/token", data={"username": username, "password": secret})
    assert response.status_code == 401
    assert secret not in response.text
    assert secret not in caplog.text


# Access tokens ------------------------------------------------------------------------------------


def test_without_a_token_is_401(world: World) -> None:
    response = _me(world, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "sign in" in response.json()["detail"]


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda world, account: "not-a-jwt", id="garbage"),
        pytest.param(
            lambda world, account: jwt.encode(
                {"sub": account.id, "type": "access", "exp": datetime.now(UTC) + timedelta(minutes=5)},
                "some-other-key-that-is-long-enough-for-hs256",
                algorithm=ALGORITHM,
            ),
            id="other-key",
        ),
        pytest.param(
            lambda world, account: jwt.encode(
                {"sub": account.id, "type": "access", "exp": datetime.now(UTC) + timedelta(minutes=5)},
                "",
                algorithm="none",
            ),
            id="unsigned",
        ),
        pytest.param(lambda world, account: _token(world, account, exp=None), id="no-expiry"),
        pytest.param(lambda world, account: _token(world, account, sub=None), id="no-subject"),
        pytest.param(lambda world, account: _token(world, account, type="refresh"), id="refresh-as-access"),
        pytest.param(lambda world, account: _token(world, account, sub=uuid.uuid4().hex), id="unknown-user"),
        pytest.param(lambda world, account: _token(world, account, ver=None), id="no-version"),
        pytest.param(lambda world, account: _token(world, account, ver=7), id="other-version"),
        pytest.param(lambda world, account: _token(world, account, ver="0"), id="version-as-text"),
    ],
)
def test_a_bad_token_is_401(
    world: World, alice: Account, make_token: Callable[[World, Account], str]
) -> None:
    response = _me(world, make_token(world, alice))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_expired_token_is_401_and_says_so(world: World, alice: Account) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    response = _me(world, _token(world, alice, iat=past - timedelta(minutes=15), exp=past))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_valid_hand_made_token_works(world: World, alice: Account) -> None:
    """The check above fails for the expiry, not for how the token was made."""
    response = _me(world, _token(world, alice))
    assert response.status_code == 200
    assert response.json()["id"] == alice.id


def test_a_deactivated_account_cannot_use_its_tokens(world: World) -> None:
    account = world.account("deactivated")
    assert world.client.get(f"{API}/users/me", headers=account.headers).status_code == 200
    with session_scope(world.settings) as session:
        user = session.get(UserRecord, account.id)
        assert user is not None
        user.active = False
    assert world.client.get(f"{API}/users/me", headers=account.headers).status_code == 401
    refresh = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401
    sign_in = world.client.post(
        f"{API}/auth/token", data={"username": account.username, "password": account.password}
    )
    assert sign_in.status_code == 401


# Refresh and sign out ---------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(world: World) -> None:
    account = world.account("rotate")
    first = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != account.refresh_token
    assert pair["user"]["id"] == account.id
    assert _me(world, pair["access_token"]).status_code == 200

    second = world.client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert second.status_code == 200


def test_reusing_a_spent_refresh_token_ends_every_session(world: World) -> None:
    """A spent token coming back means someone may hold a copy: all the user's refresh tokens go."""
    account = world.account("reuse")
    pair = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token}).json()
    reused = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reused.status_code == 401
    assert "revoked" in reused.json()["detail"]
    after = world.client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert after.status_code == 401


def test_an_access_token_is_not_a_refresh_token(world: World, alice: Account) -> None:
    access = alice.headers["Authorization"].removeprefix("Bearer ")
    response = world.client.post(f"{API}/auth/refresh", json={"refresh_token": access})
    assert response.status_code == 401
    assert "refresh token is needed" in response.json()["detail"]


def test_an_expired_refresh_token_is_401(world: World, alice: Account) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    claims = jwt.decode(alice.refresh_token, signing_key(world.settings), algorithms=[ALGORITHM])
    expired = jwt.encode({**claims, "exp": past}, signing_key(world.settings), algorithm=ALGORITHM)
    response = world.client.post(f"{API}/auth/refresh", json={"refresh_token": expired})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "kwargs"),
    [
        ("missing", {"json": {}}),
        ("bad-json", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ],
)
def test_refresh_with_a_bad_body_is_422(world: World, content: str, kwargs: dict[str, Any]) -> None:
    response = world.client.post(f"{API}/auth/refresh", **kwargs)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_logout_revokes_the_refresh_token(world: World) -> None:
    account = world.account("logout")
    response = world.client.post(f"{API}/auth/logout", json={"refresh_token": account.refresh_token})
    assert response.status_code == 204
    assert response.content == b""
    refresh = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401
    # Signing out again changes nothing.
    again = world.client.post(f"{API}/auth/logout", json={"refresh_token": account.refresh_token})
    assert again.status_code == 204


def test_logout_works_after_the_access_token_expired(world: World) -> None:
    """The refresh token is the credential for signing out; no access token is needed."""
    account = world.account("logout-late")
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = bearer(_token(world, account, exp=past))
    response = world.client.post(
        f"{API}/auth/logout", json={"refresh_token": account.refresh_token}, headers=expired
    )
    assert response.status_code == 204
    refresh = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401


@pytest.mark.parametrize("kind", ["garbage", "access-token"])
def test_logout_with_something_other_than_a_refresh_token_is_401(
    world: World, alice: Account, kind: str
) -> None:
    token = "not-a-jwt" if kind == "garbage" else alice.headers["Authorization"].removeprefix("Bearer ")
    response = world.client.post(f"{API}/auth/logout", json={"refresh_token": token})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_logout_without_a_body_is_422(world: World, alice: Account) -> None:
    response = world.client.post(f"{API}/auth/logout", headers=alice.headers)
    assert response.status_code == 422


# The failed sign-in limit -----------------------------------------------------------------------


def test_too_many_failed_sign_ins_is_429_with_retry_after(world: World) -> None:
    username = unique("limited")
    _, password = create_account(world.settings, username)
    allowed = world.settings.login_attempts_per_minute
    for _ in range(allowed):
        response = world.client.post(
            f"{API}/auth/token", data={"username": username, "password": "wrong-guess-123"}
        )
        assert response.status_code == 401
    # The limit counts the user name without regard to case.
    blocked = world.client.post(
        f"{API}/auth/token", data={"username": username.upper(), "password": "wrong-guess-123"}
    )
    assert blocked.status_code == 429
    retry_after = int(blocked.headers["retry-after"])
    assert 1 <= retry_after <= 61
    assert "too many failed sign-ins" in blocked.json()["detail"]
    # Even the right password waits: the limit stops guessing, not only wrong answers.
    right = world.client.post(f"{API}/auth/token", data={"username": username, "password": password})
    assert right.status_code == 429
    # Another user name from the same client is not affected.
    other = unique("not-limited")
    _, other_password = create_account(world.settings, other)
    assert token_pair(world.client, other, other_password)["user"]["username"] == other


def test_a_successful_sign_in_clears_the_failures(world: World) -> None:
    username = unique("forgetful")
    _, password = create_account(world.settings, username)
    allowed = world.settings.login_attempts_per_minute
    for _ in range(2):
        for _ in range(allowed - 1):
            response = world.client.post(
                f"{API}/auth/token", data={"username": username, "password": "wrong-guess-123"}
            )
            assert response.status_code == 401
        token_pair(world.client, username, password)


def test_the_limit_follows_the_setting(make_world: Callable[..., World]) -> None:
    strict = make_world(model=False, login_attempts_per_minute=1)
    create_account(strict.settings, "strict-user")
    first = strict.client.post(
        f"{API}/auth/token", data={"username": "strict-user", "password": "wrong-guess-123"}
    )
    assert first.status_code == 401
    second = strict.client.post(
        f"{API}/auth/token", data={"username": "strict-user", "password": "wrong-guess-123"}
    )
    assert second.status_code == 429
    assert "retry-after" in second.headers


# Token responses are credentials ----------------------------------------------------------------


def test_token_responses_are_never_cached(world: World) -> None:
    name = unique("no-store")
    _, password = create_account(world.settings, name)
    signed_in = world.client.post(f"{API}/auth/token", data={"username": name, "password": password})
    refreshed = world.client.post(
        f"{API}/auth/refresh", json={"refresh_token": signed_in.json()["refresh_token"]}
    )
    for response in (signed_in, refreshed):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


# Sign-out ends access tokens at once --------------------------------------------------------------


def test_logout_ends_the_access_token_at_once(world: World) -> None:
    """A signed-out access token worked for its remaining 15 minutes; now it stops at once. The
    user's other sessions get new access tokens with their own refresh tokens."""
    account = world.account("logout-now")
    other = token_pair(world.client, account.username, account.password)
    assert world.client.get(f"{API}/users/me", headers=account.headers).status_code == 200

    response = world.client.post(f"{API}/auth/logout", json={"refresh_token": account.refresh_token})
    assert response.status_code == 204
    after = world.client.get(f"{API}/users/me", headers=account.headers)
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]

    assert _me(world, other["access_token"]).status_code == 401
    renewed = world.client.post(f"{API}/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert renewed.status_code == 200
    assert _me(world, renewed.json()["access_token"]).status_code == 200


def test_reusing_a_spent_refresh_token_also_ends_the_access_tokens(world: World) -> None:
    account = world.account("reuse-access")
    pair = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token}).json()
    assert _me(world, pair["access_token"]).status_code == 200
    reused = world.client.post(f"{API}/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reused.status_code == 401
    assert _me(world, pair["access_token"]).status_code == 401


# Names too long for any account -------------------------------------------------------------------


def _audit_count(settings: Settings) -> int:
    with session_scope(settings) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_a_name_over_64_characters_is_refused_before_anything(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names as long as a request body allows once went to the limiter (kept), the database and
    Argon2. No account has a name over 64 characters: refused at once, nothing kept or logged."""
    served = make_world(model=False)
    limiter = served.app.state.service.sessions.limiter

    def never(*args: Any) -> None:
        raise AssertionError("a name over 64 characters reached the password check")

    monkeypatch.setattr(account_service, "authenticate", never)
    before = _audit_count(served.settings)
    for name in ("n" * 65, "m" * 30_000):
        response = served.client.post(f"{API}/auth/token", data={"username": name, "password": WRONG})
        assert response.status_code == 401
        assert response.json()["detail"] == "wrong user name or password"
    assert len(limiter) == 0
    assert _audit_count(served.settings) == before


# The limits: atomic, per address, for everyone, with backoff ------------------------------------


def test_concurrent_guesses_cannot_pass_the_limit(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check-then-record race let 32 threads make 34 guesses in a minute instead of 5."""
    served = make_world(model=False)
    sessions = served.app.state.service.sessions
    create_account(served.settings, "raced-user")

    def slow_wrong(session: Any, username: str, password: str) -> None:
        time.sleep(0.2)  # Argon2, drawn out
        raise NotAuthenticated("wrong user name or password")

    monkeypatch.setattr(account_service, "authenticate", slow_wrong)
    start = threading.Barrier(32)

    def guess(i: int) -> int:
        start.wait()
        try:
            sessions.sign_in("raced-user", f"guess-{i}", "192.0.2.10")
        except NotAuthenticated:
            return 401
        except TooManyAttempts:
            return 429
        return 200

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(guess, range(32)))
    allowed = served.settings.login_attempts_per_minute
    assert results.count(401) == allowed
    assert results.count(429) == 32 - allowed


def _client_at(world: World, address: str) -> TestClient:
    """Another client of the same running app, connecting from ``address``."""
    return TestClient(world.app, client=(address, 40000), raise_server_exceptions=False)


def test_one_address_cannot_spray_many_names(make_world: Callable[..., World]) -> None:
    """60 user names sprayed from one address were all tried; now the address has a limit too."""
    served = make_world(model=False, login_attempts_per_address=3)
    for i in range(3):
        response = served.client.post(f"{API}/auth/token", data={"username": f"spray-{i}", "password": WRONG})
        assert response.status_code == 401
    blocked = served.client.post(f"{API}/auth/token", data={"username": "spray-3", "password": WRONG})
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    elsewhere = _client_at(served, "198.51.100.20").post(
        f"{API}/auth/token", data={"username": "spray-4", "password": WRONG}
    )
    assert elsewhere.status_code == 401


def test_the_overall_limit_stops_guesses_from_everywhere(make_world: Callable[..., World]) -> None:
    served = make_world(model=False, login_attempts_overall=4)
    _, password = create_account(served.settings, "everyone-waits")
    for i in range(4):
        response = _client_at(served, f"198.51.100.{i + 1}").post(
            f"{API}/auth/token", data={"username": f"distributed-{i}", "password": WRONG}
        )
        assert response.status_code == 401
    blocked = _client_at(served, "203.0.113.50").post(
        f"{API}/auth/token", data={"username": "everyone-waits", "password": password}
    )
    assert blocked.status_code == 429
    assert "retry-after" in blocked.headers


def test_lockouts_double_while_the_failures_go_on(make_world: Callable[..., World]) -> None:
    served = make_world(model=False)
    limiter = served.app.state.service.sessions.limiter
    now = [1_000_000.0]
    limiter.clock = lambda: now[0]
    _, password = create_account(served.settings, "backed-off")
    allowed = served.settings.login_attempts_per_minute

    def sign_in(secret: str) -> Any:
        return served.client.post(f"{API}/auth/token", data={"username": "backed-off", "password": secret})

    for lockout in (60, 120, 240):
        for _ in range(allowed):
            assert sign_in(WRONG).status_code == 401
        blocked = sign_in(password)
        assert blocked.status_code == 429
        assert blocked.headers["retry-after"] == str(lockout)
        now[0] += lockout
    assert sign_in(password).status_code == 200


# The client address --------------------------------------------------------------------------------


def _last_failed_client(settings: Settings) -> str:
    with session_scope(settings) as session:
        entry = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "login-failed").order_by(AuditEvent.id.desc())
        ).first()
        assert entry is not None and entry.detail is not None
        return str(entry.detail["client"])


def test_x_forwarded_for_is_not_believed_by_default(make_world: Callable[..., World]) -> None:
    """From 127.0.0.1, 248 of 248 forged addresses were taken; with no trusted proxy (the default),
    the connecting address is the client, whatever the header says."""
    served = make_world(model=False)
    create_account(served.settings, "forged-for")
    local = _client_at(served, "127.0.0.1")
    allowed = served.settings.login_attempts_per_minute
    for i in range(allowed):
        response = local.post(
            f"{API}/auth/token",
            data={"username": "forged-for", "password": WRONG},
            headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
        )
        assert response.status_code == 401
        assert _last_failed_client(served.settings) == "127.0.0.1"
    blocked = local.post(
        f"{API}/auth/token",
        data={"username": "forged-for", "password": WRONG},
        headers={"X-Forwarded-For": "203.0.113.200"},
    )
    assert blocked.status_code == 429


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the nearest address a trusted proxy saw
        ("203.0.113.7, 10.1.2.3", "203.0.113.7"),  # 10.1.2.3 is a trusted proxy too
        ("203.0.113.7:5123", "203.0.113.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("<script>", "127.0.0.1"),  # not an address: the proxy itself
        ("", "127.0.0.1"),
    ],
)
def test_a_trusted_proxy_names_the_client(
    make_world: Callable[..., World], forwarded: str, client: str
) -> None:
    served = make_world(model=False, trusted_proxies="127.0.0.1, 10.0.0.0/8")
    response = _client_at(served, "127.0.0.1").post(
        f"{API}/auth/token",
        data={"username": unique("proxied"), "password": WRONG},
        headers={"X-Forwarded-For": forwarded},
    )
    assert response.status_code == 401
    assert _last_failed_client(served.settings) == client


def test_an_untrusted_peer_is_the_client_even_with_trusted_proxies(make_world: Callable[..., World]) -> None:
    served = make_world(model=False, trusted_proxies="10.0.0.0/8")
    response = _client_at(served, "198.51.100.9").post(
        f"{API}/auth/token",
        data={"username": unique("direct"), "password": WRONG},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    assert response.status_code == 401
    assert _last_failed_client(served.settings) == "198.51.100.9"


def test_trusted_proxies_must_be_addresses(settings: Settings) -> None:
    assert Settings(trusted_proxies=" 10.0.0.1 ,10.2.0.0/16,").trusted_proxies == "10.0.0.1/32,10.2.0.0/16"
    with pytest.raises(ValueError, match="not an IP address or network"):
        Settings(trusted_proxies="proxy.example.org")


@pytest.mark.parametrize(("trusted", "client"), [("", "127.0.0.1"), ("127.0.0.1", "203.0.113.7")])
def test_sahay_serve_believes_forwarded_addresses_only_from_trusted_proxies(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    trusted: str,
    client: str,
) -> None:
    """`sahay serve` ran uvicorn with proxy headers trusted from 127.0.0.1 whatever was set; now
    uvicorn believes X-Forwarded-For only from SAHAY_TRUSTED_PROXIES (none by default)."""
    monkeypatch.setenv("SAHAY_TRUSTED_PROXIES", trusted)
    reload_settings()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    assert run_cli(capsys, "serve")[0] == 0
    [(args, kwargs)] = calls
    assert kwargs["proxy_headers"] is bool(trusted)

    # The app as uvicorn would run it with those options, reached through 127.0.0.1.
    config = uvicorn.Config(*args, **{**kwargs, "log_config": None})
    config.load()
    with TestClient(config.loaded_app, client=("127.0.0.1", 40000)) as local:
        response = local.post(
            f"{API}/auth/token",
            data={"username": "nobody-here", "password": WRONG},
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
    assert response.status_code == 401
    assert _last_failed_client(reload_settings()) == client
