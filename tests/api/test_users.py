"""Accounts: /users/me, creating and listing users (administrators only), and `sahay users`."""

from __future__ import annotations

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
        assert set(body) == {"id", "username", "role", "created_at"}


def test_an_admin_creates_a_user_who_can_sign_in(world: World, admin: Account) -> None:
    username, password = unique("new-clinician"), new_password()
    response = world.client.post(
        f"{API}/users", json={"username": username, "password": password}, headers=admin.headers
    )
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == username and body["role"] == "clinician"
    assert set(body) == {"id", "username", "role", "created_at"}
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
    assert all(set(u) == {"id", "username", "role", "created_at"} for u in users.values())
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
    assert response.json() == {"detail": "only an administrator may do this"}
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


# The command line ---------------------------------------------------------------------------------


def test_cli_creates_an_admin_who_signs_in_through_the_api(
    settings: Settings, make_world: Callable[..., World], capsys: pytest.CaptureFixture[str]
) -> None:
    password = "first-admin-password-42"
    code, stdout, stderr = run_cli(
        capsys, "users", "create", "--admin", "--username", "chief", "--password", password
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


def test_cli_refuses_a_short_password(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run_cli(capsys, "users", "create", "--username", "shorty", "--password", "short")
    assert code == 2
    assert "at least 12 characters" in stderr
    code, stdout, _ = run_cli(capsys, "users", "list")
    assert code == 0 and "shorty" not in stdout


def test_cli_refuses_a_duplicate_user(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("users", "create", "--username", "twin", "--password", "double-password-1234")
    assert run_cli(capsys, *args)[0] == 0
    code, _, stderr = run_cli(capsys, *args)
    assert code == 2
    assert "taken" in stderr
