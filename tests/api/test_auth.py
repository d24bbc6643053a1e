"""Sign in, refresh (rotation), sign out, token checks and the failed sign-in limit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from sahay.store.db import session_scope
from sahay.store.records import UserRecord
from sahay.store.tokens import ALGORITHM, signing_key
from tests.api.conftest import API, Account, World, bearer, create_account, token_pair, unique


def _token(world: World, account: Account, **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": account.id,
        "role": account.role,
        "type": "access",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + timedelta(minutes=5),
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
    assert response.json() == {"detail": "wrong user name or password"}
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
