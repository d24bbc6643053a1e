"""Accounts and the audit log as use cases: users, sign-in with tokens, and who did what.

Each action that changes or reveals something is audited here, once. The CLI (``sahay users``,
``sahay audit``) and the API's auth, users and audit routes call these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete

from sahay.config import Settings, get_settings
from sahay.errors import NotAuthenticated, NotFound
from sahay.store import audit
from sahay.store.accounts import LoginRateLimiter, authenticate, find_user, get_user
from sahay.store.accounts import create_user as create_user_record
from sahay.store.accounts import list_users as list_user_records
from sahay.store.db import session_scope
from sahay.store.records import AuditEvent, RefreshTokenRecord, UserRecord
from sahay.store.tokens import Tokens

CLI_ACTOR = "cli"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    role: str
    created_at: datetime


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None


def create_user(
    username: str, password: str, role: str, *, by: UserRecord | None = None, settings: Settings | None = None
) -> UserOut:
    """A new account; ``by`` is the administrator who made it (None: the command line)."""
    with session_scope(settings or get_settings()) as session:
        user = create_user_record(session, username, password, role)
        detail = {"username": user.username, "role": user.role}
        audit.record(session, by, "create", "user", user.id, detail, actor_name=CLI_ACTOR)
        session.flush()
        return UserOut.model_validate(user)


def list_users(settings: Settings | None = None) -> list[UserOut]:
    with session_scope(settings or get_settings()) as session:
        return [UserOut.model_validate(user) for user in list_user_records(session)]


def audit_log(
    *,
    limit: int = 100,
    actor: str | None = None,
    object_id: str | None = None,
    settings: Settings | None = None,
) -> list[AuditEntry]:
    """Newest first."""
    with session_scope(settings or get_settings()) as session:
        entries: list[AuditEvent] = audit.events(session, limit=limit, actor=actor, object_id=object_id)
        return [AuditEntry.model_validate(entry) for entry in entries]


class Sessions:
    """Sign-in, token refresh and sign-out for the web service (one per service)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = Tokens(settings)
        self.limiter = LoginRateLimiter(settings.login_attempts_per_minute)

    def user_for(self, access_token: str | None) -> UserRecord:
        """The account behind an access token."""
        if not access_token:
            raise NotAuthenticated("sign in first: this needs an access token")
        claims = self.tokens.claims(access_token, "access")
        with session_scope(self.settings) as session:
            try:
                user = get_user(session, str(claims["sub"]))
            except NotFound as exc:
                raise NotAuthenticated("the account behind this token no longer exists") from exc
            session.expunge(user)
            return user

    def sign_in(self, username: str, password: str, client: str) -> dict[str, Any]:
        """A token pair; failures are rate-limited per (user name, client) and audited."""
        self.limiter.check(username, client)
        with session_scope(self.settings) as session:
            try:
                user = authenticate(session, username, password)
            except NotAuthenticated:
                self.limiter.failed(username, client)
                # A name that is no account may be a password typed into the wrong field: not kept.
                known = find_user(session, username)
                audit.record(
                    session,
                    known,
                    "login-failed",
                    "session",
                    None,
                    {"client": client},
                    actor_name="unknown user",
                )
                session.commit()
                raise
            self.limiter.succeeded(username, client)
            tokens = self.tokens.issue(session, user)
            audit.record(session, user, "login", "session", None, {"client": client})
            return tokens

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new token pair; the refresh token used is revoked (rotation)."""
        claims = self.tokens.claims(refresh_token, "refresh")
        with session_scope(self.settings) as session:
            stored = session.get(RefreshTokenRecord, str(claims.get("jti")))
            if stored is None:
                # A genuine token already used or revoked: someone may hold a copy. End every session.
                session.execute(
                    delete(RefreshTokenRecord).where(RefreshTokenRecord.user_id == str(claims["sub"]))
                )
                session.commit()
                raise NotAuthenticated("the refresh token has been revoked; sign in again")
            if stored.expires_at <= datetime.now(UTC) or stored.user_id != claims["sub"]:
                raise NotAuthenticated("the refresh token has expired; sign in again")
            try:
                user = get_user(session, stored.user_id)
            except NotFound as exc:
                raise NotAuthenticated("the account behind this token no longer exists") from exc
            session.delete(stored)
            return self.tokens.issue(session, user)

    def sign_out(self, refresh_token: str) -> None:
        """Revoke a refresh token; it is the credential itself, so this works after access expired."""
        claims = self.tokens.claims(refresh_token, "refresh")
        with session_scope(self.settings) as session:
            stored = session.get(RefreshTokenRecord, str(claims.get("jti")))
            if stored is not None and stored.user_id == claims["sub"]:
                user = session.get(UserRecord, stored.user_id)
                session.delete(stored)
                audit.record(session, user, "logout", "session")
