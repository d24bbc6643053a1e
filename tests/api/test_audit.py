"""The audit log: what is recorded, what never is, who may read it, and that it is append-only."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from sahay.config import Settings
from sahay.store.db import session_scope
from sahay.store.records import AuditEvent
from tests.api.conftest import (
    API,
    DEMO,
    NOTE,
    Account,
    World,
    login,
    new_password,
    parse_sse,
    png_bytes,
    token_pair,
    unique,
)
from tests.e2e.test_cli_analyze import run_cli

NOTE_MARKER = "zebra-marker-7731"
WRONG_PASSWORD = "wrong-password-osprey-5521"


@pytest.fixture(scope="module")
def story(world: World, admin: Account) -> dict[str, Any]:
    """A user's whole visit: created by an admin, one failed and one good sign-in, then an
    analysis created, viewed, exported, discussed, searched and deleted, then sign-out."""
    username, password = unique("audited"), new_password()
    created = world.client.post(
        f"{API}/users", json={"username": username, "password": password}, headers=admin.headers
    )
    assert created.status_code == 201
    failed = world.client.post(f"{API}/auth/token", data={"username": username, "password": WRONG_PASSWORD})
    assert failed.status_code == 401
    tokens = token_pair(world.client, username, password)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    upload = world.client.post(
        f"{API}/analyses",
        files={"image": ("audited.png", png_bytes(seed=80), "image/png")},
        data={"model": DEMO, "notes": NOTE},
        headers=headers,
    )
    assert upload.status_code == 201, upload.text
    analysis_id = upload.json()["id"]
    base = f"{API}/analyses/{analysis_id}"
    assert world.client.get(base, headers=headers).status_code == 200
    assert world.client.get(f"{base}/reports/html", headers=headers).status_code == 200
    chat = world.client.post(f"{base}/chat", json={"question": "What does the disc mean?"}, headers=headers)
    assert parse_sse(chat.text)[-1][0] == "done"
    assert world.client.get(f"{base}/similar", headers=headers).status_code == 200
    assert world.client.delete(base, headers=headers).status_code == 204
    logout = world.client.post(f"{API}/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert logout.status_code == 204
    return {
        "username": username,
        "password": password,
        "user_id": created.json()["id"],
        "analysis_id": analysis_id,
    }


def _audit(world: World, account: Account, **params: Any) -> Any:
    return world.client.get(f"{API}/audit", params=params, headers=account.headers)


def test_every_step_is_recorded_newest_first(world: World, admin: Account, story: dict[str, Any]) -> None:
    response = _audit(world, admin, actor=story["username"])
    assert response.status_code == 200
    entries = response.json()
    analysis_id = story["analysis_id"]
    assert [(e["action"], e["object_type"], e["object_id"]) for e in entries] == [
        ("logout", "session", None),
        ("delete", "analysis", analysis_id),
        ("search", "analysis", analysis_id),
        ("chat", "analysis", analysis_id),
        ("export", "analysis", analysis_id),
        ("view", "analysis", analysis_id),
        ("create", "analysis", analysis_id),
        ("login", "session", None),
        ("login-failed", "session", None),
    ]
    assert all(e["actor"] == story["username"] for e in entries)
    by_action = {e["action"]: e for e in entries}
    assert by_action["export"]["detail"] == {"format": "html"}
    assert by_action["create"]["detail"] == {"model": DEMO}
    assert by_action["search"]["detail"] == {"k": 5, "results": 0}
    assert set(by_action["chat"]["detail"]) == {"intent"}
    assert by_action["login-failed"]["detail"] == {"client": "testclient"}
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    times = [e["at"] for e in entries]
    assert times == sorted(times, reverse=True)


def test_the_admin_who_created_the_user_is_recorded(
    world: World, admin: Account, story: dict[str, Any]
) -> None:
    entries = _audit(world, admin, object_id=story["user_id"]).json()
    assert [(e["actor"], e["action"], e["object_type"]) for e in entries] == [
        (admin.username, "create", "user")
    ]
    assert entries[0]["detail"] == {"username": story["username"], "role": "clinician"}


def test_filters_and_limit(world: World, admin: Account, story: dict[str, Any]) -> None:
    about = _audit(world, admin, object_id=story["analysis_id"]).json()
    assert [e["action"] for e in about] == ["delete", "search", "chat", "export", "view", "create"]
    assert len(_audit(world, admin, limit=1).json()) == 1
    assert _audit(world, admin, actor="nobody-did-anything").json() == []


def test_no_note_text_or_password_is_ever_recorded(
    world: World, admin: Account, story: dict[str, Any]
) -> None:
    text = _audit(world, admin, limit=1000).text
    with session_scope(world.settings) as session:
        rows = [
            json.dumps([e.actor, e.action, e.object_type, e.object_id, e.detail])
            for e in session.scalars(select(AuditEvent))
        ]
    for secret in (NOTE_MARKER, story["password"], WRONG_PASSWORD):
        assert secret not in text
        assert not any(secret in row for row in rows)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "all"}])
def test_bad_parameters_are_422(world: World, admin: Account, params: dict[str, Any]) -> None:
    response = _audit(world, admin, **params)
    assert response.status_code == 422
    assert "limit" in response.json()["detail"]


def test_only_admins_read_the_log(world: World, alice: Account) -> None:
    assert _audit(world, alice).status_code == 403
    assert world.client.get(f"{API}/audit").status_code == 401


# Append-only ------------------------------------------------------------------------------------


def test_an_entry_cannot_be_changed_through_the_orm(world: World, story: dict[str, Any]) -> None:
    with pytest.raises(PermissionError, match="append-only"), session_scope(world.settings) as session:
        entry = session.scalars(
            select(AuditEvent).where(AuditEvent.object_id == story["analysis_id"])
        ).first()
        assert entry is not None
        entry.action = "view"
        session.flush()


def test_an_entry_cannot_be_deleted_through_the_orm(world: World, story: dict[str, Any]) -> None:
    with pytest.raises(PermissionError, match="append-only"), session_scope(world.settings) as session:
        entry = session.scalars(
            select(AuditEvent).where(AuditEvent.object_id == story["analysis_id"])
        ).first()
        session.delete(entry)
        session.flush()
    with session_scope(world.settings) as session:
        count = len(
            list(session.scalars(select(AuditEvent).where(AuditEvent.object_id == story["analysis_id"])))
        )
    assert count == 6


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_bulk_orm_statements_cannot_rewrite_the_log(
    settings: Settings, make_world: Callable[..., World], statement: str
) -> None:
    served = make_world(model=False)
    served.account("bulk")  # a login entry to rewrite; this test's own home, so nothing shared is harmed
    with pytest.raises(PermissionError), session_scope(settings) as session:
        if statement == "update":
            session.execute(update(AuditEvent).values(actor="someone-else"))
        else:
            session.execute(delete(AuditEvent))


# The command line -------------------------------------------------------------------------------


def test_sahay_audit_prints_the_entries(
    settings: Settings,
    make_world: Callable[..., World],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "ledger-keeper-2024-pass"
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    assert run_cli(capsys, "users", "create", "--admin", "--username", "auditor", "--password-stdin")[0] == 0
    served = make_world(model=False)
    failed = served.client.post(f"{API}/auth/token", data={"username": "auditor", "password": WRONG_PASSWORD})
    assert failed.status_code == 401
    login(served.client, "auditor", password)

    code, stdout, stderr = run_cli(capsys, "audit", "--json")
    assert code == 0, stderr
    decoder, rows, position = json.JSONDecoder(), [], 0
    while position < len(stdout.rstrip()):
        row, end = decoder.raw_decode(stdout, position)
        rows.append(row)
        position = end + len(stdout[end:]) - len(stdout[end:].lstrip())
    assert [(r["actor"], r["action"], r["object_type"]) for r in rows] == [
        ("auditor", "login", "session"),
        ("auditor", "login-failed", "session"),
        ("cli", "create", "user"),
    ]
    assert rows[2]["detail"] == {"username": "auditor", "role": "admin"}

    code, stdout, _ = run_cli(capsys, "audit", "--actor", "auditor")
    assert code == 0
    assert "auditor" in stdout and "login-failed" in stdout and "session" in stdout
    assert "create" not in stdout, "the CLI's entry is another actor's"
    assert password not in stdout and WRONG_PASSWORD not in stdout
