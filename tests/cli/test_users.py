"""`sahay users`: passwords never on the command line, and disable, enable, set-password and
revoke-sessions, each audited as the command line's."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest

from sahay.config import Settings
from sahay.services import accounts
from sahay.services.accounts import Sessions
from tests.e2e.test_cli_analyze import run_cli

PASSWORD = "plum-orchard-ladder-61"
NEW_PASSWORD = "quiet-harbour-lantern-83"


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


@pytest.fixture
def asha(settings: Settings) -> str:
    """A clinician made through the service; returns the user id."""
    return accounts.create_user("asha", PASSWORD, "clinician", settings=settings).id


def _signs_in(settings: Settings, password: str) -> bool:
    try:
        Sessions(settings).sign_in("asha", password, "192.0.2.1")
    except Exception:
        return False
    return True


def _last_entry(settings: Settings) -> accounts.AuditEntry:
    return accounts.audit_log(limit=1, settings=settings)[0]


# No password on the command line ------------------------------------------------------------------


def test_password_is_no_longer_an_option(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run_cli(
        capsys, "users", "create", "--username", "leaky", "--password", "leaky-password-1234"
    )
    assert code == 2
    assert "--password-stdin" in stderr
    assert "leaky-password-1234" not in stdout + stderr
    assert "leaky" not in run_cli(capsys, "users", "list")[1]
    help_text = run_cli(capsys, "users", "create", "--help")[1]
    assert "--password-stdin" in help_text
    assert "--password " not in help_text.replace("--password-stdin", "")


def test_create_reads_the_password_from_stdin(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, PASSWORD + "\r\n")
    code, stdout, stderr = run_cli(capsys, "users", "create", "--username", "asha", "--password-stdin")
    assert code == 0, stderr
    assert PASSWORD not in stdout + stderr
    assert _signs_in(settings, PASSWORD)


def test_empty_stdin_is_refused(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _stdin(monkeypatch, "")
    code, _, stderr = run_cli(capsys, "users", "create", "--username", "asha", "--password-stdin")
    assert code == 2
    assert "no password" in stderr


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What the hidden prompts are answered, in order; every one must be used."""
    given: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": given.pop(0))
    yield given
    assert given == []


def test_create_asks_twice_hidden(
    settings: Settings, capsys: pytest.CaptureFixture[str], answers: list[str]
) -> None:
    answers.extend([PASSWORD, PASSWORD])
    code, stdout, stderr = run_cli(capsys, "users", "create", "--username", "asha")
    assert code == 0, stderr
    assert PASSWORD not in stdout + stderr
    assert _signs_in(settings, PASSWORD)


# Disable, enable, set-password, revoke-sessions ---------------------------------------------------


def test_disable_and_enable(settings: Settings, capsys: pytest.CaptureFixture[str], asha: str) -> None:
    sessions = Sessions(settings)
    tokens = sessions.sign_in("asha", PASSWORD, "192.0.2.1")

    code, stdout, stderr = run_cli(capsys, "users", "disable", "asha")
    assert code == 0, stderr
    assert "Disabled asha" in stdout
    assert not _signs_in(settings, PASSWORD)
    with pytest.raises(Exception, match="disabled"):
        sessions.user_for(tokens["access_token"])
    with pytest.raises(Exception, match="revoked"):
        sessions.refresh(tokens["refresh_token"])
    entry = accounts.audit_log(limit=1, object_id=asha, settings=settings)[0]
    assert (entry.actor, entry.action, entry.detail) == (
        "cli",
        "disable",
        {"username": "asha", "refresh_tokens": 1},
    )
    assert "disabled" in run_cli(capsys, "users", "list")[1]

    code, stdout, _ = run_cli(capsys, "users", "enable", "asha")
    assert code == 0 and "Enabled asha" in stdout
    assert _signs_in(settings, PASSWORD)
    assert _last_entry(settings).action == "login"
    assert [e.action for e in accounts.audit_log(limit=2, object_id=asha, settings=settings)] == [
        "enable",
        "disable",
    ]


def test_set_password_from_stdin(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, asha: str
) -> None:
    sessions = Sessions(settings)
    tokens = sessions.sign_in("asha", PASSWORD, "192.0.2.1")
    _stdin(monkeypatch, NEW_PASSWORD + "\n")
    code, stdout, stderr = run_cli(capsys, "users", "set-password", "asha", "--password-stdin")
    assert code == 0, stderr
    assert NEW_PASSWORD not in stdout + stderr
    with pytest.raises(Exception, match="revoked"):
        sessions.user_for(tokens["access_token"])
    assert not _signs_in(settings, PASSWORD)
    assert _signs_in(settings, NEW_PASSWORD)
    entry = accounts.audit_log(limit=1, object_id=asha, settings=settings)[0]
    assert (entry.actor, entry.action) == ("cli", "set-password")
    assert NEW_PASSWORD not in str(entry.detail)


def test_set_password_asks_twice_and_keeps_the_policy(
    settings: Settings, capsys: pytest.CaptureFixture[str], answers: list[str], asha: str
) -> None:
    answers.extend(["password1234", "password1234"])
    code, _, stderr = run_cli(capsys, "users", "set-password", "asha")
    assert code == 2
    assert "too easy to guess" in stderr
    assert _signs_in(settings, PASSWORD)


def test_revoke_sessions(settings: Settings, capsys: pytest.CaptureFixture[str], asha: str) -> None:
    sessions = Sessions(settings)
    first = sessions.sign_in("asha", PASSWORD, "192.0.2.1")
    second = sessions.sign_in("asha", PASSWORD, "192.0.2.2")
    code, stdout, stderr = run_cli(capsys, "users", "revoke-sessions", "asha")
    assert code == 0, stderr
    assert "2 refresh tokens revoked" in stdout
    for tokens in (first, second):
        with pytest.raises(Exception, match="revoked"):
            sessions.user_for(tokens["access_token"])
        with pytest.raises(Exception, match="revoked"):
            sessions.refresh(tokens["refresh_token"])
    entry = accounts.audit_log(limit=1, object_id=asha, settings=settings)[0]
    assert (entry.actor, entry.action, entry.detail) == (
        "cli",
        "revoke-sessions",
        {"username": "asha", "refresh_tokens": 2},
    )
    assert _signs_in(settings, PASSWORD)


@pytest.mark.parametrize("command", ["disable", "enable", "revoke-sessions", "set-password"])
def test_an_unknown_user_is_named(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    _stdin(monkeypatch, NEW_PASSWORD + "\n")
    extra = ["--password-stdin"] if command == "set-password" else []
    code, _, stderr = run_cli(capsys, "users", command, "nobody", *extra)
    assert code == 2
    assert "no user named 'nobody'" in stderr


def test_the_last_administrator_stays(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts.create_user("chief", PASSWORD, "admin", settings=settings)
    code, _, stderr = run_cli(capsys, "users", "disable", "chief")
    assert code == 2
    assert "last active administrator" in stderr
