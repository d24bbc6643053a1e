"""Accounts: /users/me, creating and listing users (administrators only), and `sahay users`."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

import pytest

from sahay.config import Settings
from tests.api.conftest import API, Account, World, login, new_password, unique
from tests.e2e.test_cli_analyze import run_cli


def test_me_describes_the_caller(world: World, alice: Account, admin: Account) -> None:
    for account in (alice, admin):
        response = world.client.get(f"{API}/users/me", headers=account.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == account.id
        assert body["username"] == account.username
        assert body["role"] == account.role
        assert set(body) == {"id", "username", "role", "active", "created_at"}


def test_an_admin_creates_a_user_who_can_sign_in(world: World, admin: Account) -> None:
    username, password = unique("new-clinician"), new_password()
    response = world.client.post(
        f"{API}/users", json={"username": username, "password": password}, headers=admin.headers
    )
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == username and body["role"] == "clinician"
    assert set(body) == {"id", "username", "role", "active", "created_at"}
    assert password not in response.text
    headers = login(world.client, username, password)
    assert world.client.get(f"{API}/users/me", headers=headers).json()["id"] == body["id"]


def test_an_admin_can_create_another_admin(world: World, admin: Account) -> None:
    username, password = unique("second-admin"), new_password()
    response = world.client.post(
        f"{API}/users",
        json={"username": username, "password": password, "role": "admin"},
        headers=admin.headers,
    )
    assert response.status_code == 201 and response.json()["role"] == "admin"
    headers = login(world.client, username, password)
    assert world.client.get(f"{API}/users", headers=headers).status_code == 200


def test_an_admin_lists_users_without_their_passwords(world: World, admin: Account, alice: Account) -> None:
    response = world.client.get(f"{API}/users", headers=admin.headers)
    assert response.status_code == 200
    users = {u["username"]: u for u in response.json()}
    assert users[alice.username]["role"] == "clinician"
    assert users[admin.username]["role"] == "admin"
    assert all(set(u) == {"id", "username", "role", "active", "created_at"} for u in users.values())
    assert alice.password not in response.text and "argon2" not in response.text


@pytest.mark.parametrize(
    ("method", "path"), [("GET", f"{API}/users"), ("POST", f"{API}/users"), ("GET", f"{API}/audit")]
)
def test_clinicians_may_not_use_admin_routes(
    world: World, alice: Account, admin: Account, method: str, path: str
) -> None:
    body = {"username": unique("sneaky"), "password": new_password()} if method == "POST" else None
    response = world.client.request(method, path, json=body, headers=alice.headers)
    assert response.status_code == 403
    assert response.json()["detail"] == "only an administrator may do this"
    if method == "POST":
        users = world.client.get(f"{API}/users", headers=admin.headers).json()
        assert body is not None and body["username"] not in {u["username"] for u in users}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"username": "short-pw", "password": "too-short"}, 400, "at least 12 characters"),
        ({"username": "named-pw", "password": "my-named-pw-is-long"}, 400, "must not contain the user name"),
        ({"username": "-bad name!", "password": "long-enough-password"}, 400, "invalid user name"),
        (
            {"username": "role-user", "password": "long-enough-password", "role": "superuser"},
            400,
            "unknown role",
        ),
        ({"username": "no-password"}, 422, "password"),
        ({"password": "long-enough-password"}, 422, "username"),
        ({"username": ["a", "list"], "password": "long-enough-password"}, 422, "username"),
    ],
)
def test_invalid_new_users_are_refused(
    world: World, admin: Account, body: dict[str, Any], status: int, says: str
) -> None:
    response = world.client.post(f"{API}/users", json=body, headers=admin.headers)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_bad_json_is_422(world: World, admin: Account) -> None:
    response = world.client.post(
        f"{API}/users",
        content=b'{"username": ',
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"]


def test_a_taken_user_name_is_409_whatever_its_case(world: World, admin: Account, alice: Account) -> None:
    response = world.client.post(
        f"{API}/users",
        json={"username": alice.username.upper(), "password": new_password()},
        headers=admin.headers,
    )
    assert response.status_code == 409
    assert "taken" in response.json()["detail"]


def test_user_routes_need_a_token(world: World) -> None:
    for method, path in (("GET", f"{API}/users/me"), ("GET", f"{API}/users"), ("POST", f"{API}/users")):
        assert world.client.request(method, path, json={}).status_code == 401


# The password policy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "says"),
    [
        pytest.param(" " * 12, "only spaces", id="twelve-spaces"),
        pytest.param("password1234", "too easy to guess", id="common"),
        pytest.param("123456789012", "too easy to guess", id="sequence"),
        pytest.param("abcdabcdabcd", "too easy to guess", id="repeat"),
        pytest.param("p" * 129, "at most 128 characters", id="129-characters"),
        pytest.param("p" * 50_000, "at most 128 characters", id="fifty-thousand"),
    ],
)
def test_weak_passwords_are_refused(world: World, admin: Account, password: str, says: str) -> None:
    """7 of 8 weak passwords were once accepted (12 spaces, 'password1234', 1 MB, ...)."""
    username = unique("weak")
    response = world.client.post(
        f"{API}/users", json={"username": username, "password": password}, headers=admin.headers
    )
    assert response.status_code == 400, response.text
    assert says in response.json()["detail"]
    users = world.client.get(f"{API}/users", headers=admin.headers).json()
    assert username not in {u["username"] for u in users}


# Disabling, enabling, ending sessions, new passwords ----------------------------------------------


def _refresh(world: World, refresh_token: str) -> int:
    return int(world.client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token}).status_code)


def _sign_in(world: World, username: str, password: str) -> int:
    response = world.client.post(f"{API}/auth/token", data={"username": username, "password": password})
    return int(response.status_code)


def _me(world: World, headers: dict[str, str]) -> int:
    return int(world.client.get(f"{API}/users/me", headers=headers).status_code)


def _audited(world: World, admin: Account, user_id: str) -> list[dict[str, Any]]:
    response = world.client.get(f"{API}/audit", params={"object_id": user_id}, headers=admin.headers)
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()
    return entries


def test_disabling_a_user_ends_their_access_at_once(world: World, admin: Account) -> None:
    account = world.account("to-disable")
    assert _me(world, account.headers) == 200

    response = world.client.post(f"{API}/users/{account.id}/disable", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert _me(world, account.headers) == 401
    assert _refresh(world, account.refresh_token) == 401
    assert _sign_in(world, account.username, account.password) == 401
    users = {u["id"]: u for u in world.client.get(f"{API}/users", headers=admin.headers).json()}
    assert users[account.id]["active"] is False
    [entry] = _audited(world, admin, account.id)[:1]
    assert (entry["actor"], entry["action"], entry["object_type"]) == (admin.username, "disable", "user")
    assert entry["detail"] == {"username": account.username, "refresh_tokens": 1}

    enabled = world.client.post(f"{API}/users/{account.id}/enable", headers=admin.headers)
    assert enabled.status_code == 200 and enabled.json()["active"] is True
    assert _me(world, account.headers) == 401  # the old tokens stay ended
    assert _sign_in(world, account.username, account.password) == 200
    assert _audited(world, admin, account.id)[0]["action"] == "enable"


def test_the_last_active_administrator_cannot_be_disabled(make_world: Callable[..., World]) -> None:
    served = make_world(model=False)
    chief = served.account("chief", role="admin")
    response = served.client.post(f"{API}/users/{chief.id}/disable", headers=chief.headers)
    assert response.status_code == 409
    assert "last active administrator" in response.json()["detail"]
    deputy = served.account("deputy", role="admin")
    assert served.client.post(f"{API}/users/{chief.id}/disable", headers=deputy.headers).status_code == 200
    assert _me(served, chief.headers) == 401


def test_revoking_sessions_ends_every_session(world: World, admin: Account) -> None:
    account = world.account("revoked")
    second = world.client.post(
        f"{API}/auth/token", data={"username": account.username, "password": account.password}
    ).json()
    response = world.client.post(f"{API}/users/{account.id}/revoke-sessions", headers=admin.headers)
    assert response.status_code == 204
    assert _me(world, account.headers) == 401
    assert _me(world, {"Authorization": f"Bearer {second['access_token']}"}) == 401
    assert _refresh(world, account.refresh_token) == 401
    assert _refresh(world, second["refresh_token"]) == 401
    entry = _audited(world, admin, account.id)[0]
    assert (entry["action"], entry["detail"]) == (
        "revoke-sessions",
        {"username": account.username, "refresh_tokens": 2},
    )
    assert _sign_in(world, account.username, account.password) == 200  # the account itself still works


def test_an_administrator_sets_a_users_password(world: World, admin: Account) -> None:
    account = world.account("forgot")
    password = new_password()
    response = world.client.put(
        f"{API}/users/{account.id}/password", json={"password": password}, headers=admin.headers
    )
    assert response.status_code == 204
    assert _me(world, account.headers) == 401
    assert _refresh(world, account.refresh_token) == 401
    assert _sign_in(world, account.username, account.password) == 401
    assert _sign_in(world, account.username, password) == 200
    entry = _audited(world, admin, account.id)[0]
    assert (entry["actor"], entry["action"]) == (admin.username, "set-password")
    assert password not in str(entry) and "argon2" not in str(entry)

    weak = world.client.put(
        f"{API}/users/{account.id}/password", json={"password": "password1234"}, headers=admin.headers
    )
    assert weak.status_code == 400 and "too easy to guess" in weak.json()["detail"]


def test_a_user_changes_their_own_password_with_the_old_one(world: World) -> None:
    account = world.account("self-service")
    url, password = f"{API}/users/{account.id}/password", new_password()
    missing = world.client.put(url, json={"password": password}, headers=account.headers)
    assert missing.status_code == 400 and "old password" in missing.json()["detail"]
    wrong = world.client.put(
        url, json={"password": password, "old_password": "not-my-password-9"}, headers=account.headers
    )
    assert wrong.status_code == 403 and wrong.json()["detail"] == "the old password is wrong"
    assert _me(world, account.headers) == 200

    right = world.client.put(
        url, json={"password": password, "old_password": account.password}, headers=account.headers
    )
    assert right.status_code == 204
    assert _me(world, account.headers) == 401
    assert _sign_in(world, account.username, password) == 200


def test_wrong_old_passwords_are_limited_like_sign_ins(make_world: Callable[..., World]) -> None:
    served = make_world(model=False, login_attempts_per_minute=2)
    account = served.account("guessing")
    url = f"{API}/users/{account.id}/password"
    body = {"password": new_password(), "old_password": "a-wrong-old-one-7"}
    for _ in range(2):
        assert served.client.put(url, json=body, headers=account.headers).status_code == 403
    blocked = served.client.put(url, json=body, headers=account.headers)
    assert blocked.status_code == 429 and "retry-after" in blocked.headers


def test_a_clinician_cannot_set_another_users_password(world: World, alice: Account, bob: Account) -> None:
    response = world.client.put(
        f"{API}/users/{bob.id}/password",
        json={"password": new_password(), "old_password": bob.password},
        headers=alice.headers,
    )
    assert response.status_code == 403
    assert response.json()["detail"] == "only an administrator may do this"
    assert _me(world, bob.headers) == 200


@pytest.mark.parametrize(
    ("method", "action"),
    [("POST", "disable"), ("POST", "enable"), ("POST", "revoke-sessions"), ("PUT", "password")],
)
def test_an_unknown_user_is_404(world: World, admin: Account, method: str, action: str) -> None:
    body = {"password": new_password()} if action == "password" else None
    response = world.client.request(
        method, f"{API}/users/{'0' * 32}/{action}", json=body, headers=admin.headers
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "no such user"


# The command line ---------------------------------------------------------------------------------


def test_cli_creates_an_admin_who_signs_in_through_the_api(
    settings: Settings,
    make_world: Callable[..., World],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "first-admin-password-42"
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    code, stdout, stderr = run_cli(
        capsys, "users", "create", "--admin", "--username", "chief", "--password-stdin"
    )
    assert code == 0, stderr
    assert "Created admin chief" in stdout
    assert password not in stdout + stderr

    served = make_world(model=False)
    assert served.settings.home_dir == settings.home_dir
    headers = login(served.client, "chief", password)
    me = served.client.get(f"{API}/users/me", headers=headers).json()
    assert me["username"] == "chief" and me["role"] == "admin"
    assert served.client.get(f"{API}/users", headers=headers).status_code == 200

    code, stdout, _ = run_cli(capsys, "users", "list")
    assert code == 0
    assert "chief" in stdout and "admin" in stdout and me["id"] in stdout
    assert password not in stdout


def test_cli_refuses_a_short_password(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    code, stdout, stderr = run_cli(capsys, "users", "create", "--username", "shorty", "--password-stdin")
    assert code == 2
    assert "at least 12 characters" in stderr
    code, stdout, _ = run_cli(capsys, "users", "list")
    assert code == 0 and "shorty" not in stdout


def test_cli_refuses_a_duplicate_user(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("users", "create", "--username", "twin", "--password-stdin")
    monkeypatch.setattr(sys, "stdin", io.StringIO("double-password-1234\n"))
    assert run_cli(capsys, *args)[0] == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("double-password-1234\n"))
    code, _, stderr = run_cli(capsys, *args)
    assert code == 2
    assert "taken" in stderr
