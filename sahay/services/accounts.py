"""Accounts and the audit log as use cases: users, sign-in with tokens, and who did what.

Each action that changes or reveals something is audited here, once. The CLI (``sahay users``,
``sahay audit``) and the API's auth, users and audit routes call these.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete
from sqlalchemy.orm import Session

from sahay.config import Settings, get_settings
from sahay.errors import BadInput, Conflict, Forbidden, NotAuthenticated, NotFound
from sahay.store import audit
from sahay.store.accounts import (
    MAX_SIGN_IN_PASSWORD_LENGTH,
    MAX_USERNAME_LENGTH,
    WRONG_CREDENTIALS,
    Attempt,
    LoginRateLimiter,
    active_admins,
    authenticate,
    end_access_tokens,
    find_user,
    get_user,
    verify_password,
)
from sahay.store.accounts import create_user as create_user_record
from sahay.store.accounts import list_users as list_user_records
from sahay.store.accounts import set_password as set_password_record
from sahay.store.db import session_scope
from sahay.store.records import AuditEvent, RefreshTokenRecord, UserRecord
from sahay.store.tokens import Tokens

CLI_ACTOR = "cli"
UNKNOWN_CLIENT = "unknown"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    role: str
    active: bool
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


# An account's life: disable, enable, a new password, ending its sessions -------------------------
#
# ``user_id`` names the account for the API, ``username`` for the command line; ``by`` is the
# administrator who acts (None: the command line, audited as "cli").


def disable_user(
    user_id: str | None = None,
    *,
    username: str | None = None,
    by: UserRecord | None = None,
    settings: Settings | None = None,
) -> UserOut:
    """The account can no longer sign in or refresh, and its tokens stop working at once."""
    with session_scope(settings or get_settings()) as session:
        user = _target(session, user_id, username)
        if user.active and user.role == "admin" and active_admins(session) <= 1:
            raise Conflict(f"{user.username!r} is the last active administrator; it cannot be disabled")
        user.active = False
        revoked = _end_sessions(session, user)
        detail = {"username": user.username, "refresh_tokens": revoked}
        audit.record(session, by, "disable", "user", user.id, detail, actor_name=CLI_ACTOR)
        session.flush()
        return UserOut.model_validate(user)


def enable_user(
    user_id: str | None = None,
    *,
    username: str | None = None,
    by: UserRecord | None = None,
    settings: Settings | None = None,
) -> UserOut:
    """A disabled account may sign in again (with its password; its old tokens stay ended)."""
    with session_scope(settings or get_settings()) as session:
        user = _target(session, user_id, username)
        user.active = True
        audit.record(
            session, by, "enable", "user", user.id, {"username": user.username}, actor_name=CLI_ACTOR
        )
        session.flush()
        return UserOut.model_validate(user)


def revoke_sessions(
    user_id: str | None = None,
    *,
    username: str | None = None,
    by: UserRecord | None = None,
    settings: Settings | None = None,
) -> int:
    """End every session of the account: its refresh tokens are revoked and its access tokens end
    at once. Returns how many refresh tokens were revoked."""
    with session_scope(settings or get_settings()) as session:
        user = _target(session, user_id, username)
        revoked = _end_sessions(session, user)
        detail = {"username": user.username, "refresh_tokens": revoked}
        audit.record(session, by, "revoke-sessions", "user", user.id, detail, actor_name=CLI_ACTOR)
        return revoked


def set_password(
    password: str,
    user_id: str | None = None,
    *,
    username: str | None = None,
    settings: Settings | None = None,
) -> UserOut:
    """A new password from the command line (the machine's administrator): no old password asked.
    Every session of the account ends."""
    with session_scope(settings or get_settings()) as session:
        user = _target(session, user_id, username)
        _set_password(session, user, password, None)
        return UserOut.model_validate(user)


def _target(session: Session, user_id: str | None, username: str | None) -> UserRecord:
    if user_id is not None:
        return get_user(session, user_id, disabled=True)
    user = find_user(session, username or "")
    if user is None:
        raise NotFound(f"no user named {(username or '')[:MAX_USERNAME_LENGTH]!r}")
    return user


def _end_sessions(session: Session, user: UserRecord) -> int:
    """Revoke the user's refresh tokens and end its access tokens; how many refresh tokens went."""
    result = session.execute(delete(RefreshTokenRecord).where(RefreshTokenRecord.user_id == user.id))
    end_access_tokens(session, user)
    return int(getattr(result, "rowcount", 0) or 0)


def _set_password(session: Session, user: UserRecord, password: str, by: UserRecord | None) -> None:
    set_password_record(session, user, password)
    revoked = _end_sessions(session, user)
    detail = {"username": user.username, "refresh_tokens": revoked}
    audit.record(session, by, "set-password", "user", user.id, detail, actor_name=CLI_ACTOR)


# The client behind a request -----------------------------------------------------------------------


def client_address(peer: str | None, forwarded_for: Iterable[str], settings: Settings) -> str:
    """The address to limit sign-ins by and to audit: the connecting peer, unless it is one of
    ``SAHAY_TRUSTED_PROXIES``; then, reading ``X-Forwarded-For`` from the right, the first address
    that is not a trusted proxy. Only well-formed IP addresses are taken from the header."""
    address = _ip(peer or "")
    if address is None:
        # Not an IP address: a test client's or a socket's name is kept when it is a plain word.
        return peer if peer and _PLAIN_NAME.fullmatch(peer) else UNKNOWN_CLIENT
    networks = _networks(settings.trusted_proxies)
    if not _trusted(address, networks):
        return str(address)
    client = str(address)
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break  # the chain is not to be believed beyond a malformed entry
        client = str(address)
        if not _trusted(address, networks):
            break
    return client


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(trusted_proxies: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies.split(",") if entry)


def _trusted(address: Address | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def _ip(text: str) -> Address | None:
    """An address as X-Forwarded-For writes it: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1`` or ``[::1]:5678``."""
    if len(text) > 64:
        return None
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# Sessions -----------------------------------------------------------------------------------------


class Sessions:
    """Sign-in, token refresh and sign-out for the web service (one per service)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokens = Tokens(settings)
        self.limiter = LoginRateLimiter(
            settings.login_attempts_per_minute,
            per_client=settings.login_attempts_per_address,
            overall=settings.login_attempts_overall,
            max_lockout_s=settings.login_lockout_max_minutes * 60,
        )

    def client_address(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """See ``client_address``: the connecting peer, unless it is a trusted proxy."""
        return client_address(peer, forwarded_for, self.settings)

    def user_for(self, access_token: str | None) -> UserRecord:
        """The account behind an access token, while the token's version is the account's."""
        if not access_token:
            raise NotAuthenticated("sign in first: this needs an access token")
        claims = self.tokens.claims(access_token, "access")
        with session_scope(self.settings) as session:
            try:
                user = get_user(session, str(claims["sub"]))
            except NotFound as exc:
                raise NotAuthenticated("the account behind this token is gone or disabled") from exc
            if not self.tokens.current(claims, user):
                raise NotAuthenticated("the token has been revoked; sign in again")
            session.expunge(user)
            return user

    def sign_in(self, username: str, password: str, client: str) -> dict[str, Any]:
        """A token pair. Each attempt is reserved with the rate limiter before the password is
        checked; failures are audited. A name or password longer than any account's is refused
        before the limiter, the database or Argon2 sees it."""
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_SIGN_IN_PASSWORD_LENGTH:
            raise NotAuthenticated(WRONG_CREDENTIALS)
        attempt = self.limiter.reserve(username, client)
        settled = False
        try:
            with session_scope(self.settings) as session:
                try:
                    user = authenticate(session, username, password)
                except NotAuthenticated:
                    self.limiter.failed(attempt)
                    settled = True
                    # A name that is no account may be a password typed into the wrong field: not kept.
                    known = find_user(session, username)
                    detail = {"client": client}
                    audit.record(
                        session, known, "login-failed", "session", None, detail, actor_name="unknown user"
                    )
                    session.commit()
                    raise
                tokens = self.tokens.issue(session, user)
                audit.record(session, user, "login", "session", None, {"client": client})
            self.limiter.succeeded(attempt)
            settled = True
            return tokens
        finally:
            if not settled:
                self.limiter.release(attempt)

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new token pair; the refresh token used is revoked (rotation)."""
        claims = self.tokens.claims(refresh_token, "refresh")
        with session_scope(self.settings) as session:
            stored = session.get(RefreshTokenRecord, str(claims.get("jti")))
            if stored is None:
                # A genuine token already used or revoked: someone may hold a copy. End every session.
                with contextlib.suppress(NotFound):
                    _end_sessions(session, get_user(session, str(claims["sub"]), disabled=True))
                session.commit()
                raise NotAuthenticated("the refresh token has been revoked; sign in again")
            if stored.expires_at <= datetime.now(UTC) or stored.user_id != claims["sub"]:
                raise NotAuthenticated("the refresh token has expired; sign in again")
            try:
                user = get_user(session, stored.user_id)
            except NotFound as exc:
                raise NotAuthenticated("the account behind this token is gone or disabled") from exc
            session.delete(stored)
            return self.tokens.issue(session, user)

    def sign_out(self, refresh_token: str) -> None:
        """Revoke a refresh token, and end the user's access tokens at once (other sessions get new
        ones with their refresh tokens). The refresh token is the credential itself, so this works
        after the access token expired."""
        claims = self.tokens.claims(refresh_token, "refresh")
        with session_scope(self.settings) as session:
            stored = session.get(RefreshTokenRecord, str(claims.get("jti")))
            if stored is not None and stored.user_id == claims["sub"]:
                user = session.get(UserRecord, stored.user_id)
                session.delete(stored)
                if user is not None:
                    end_access_tokens(session, user)
                audit.record(session, user, "logout", "session")

    def set_password(
        self, user_id: str, password: str, *, by: UserRecord, old_password: str | None, client: str
    ) -> None:
        """A new password: an administrator sets anyone's; a user sets their own with the old one
        (checked, and limited like a sign-in). Every session of the account ends."""
        if by.id != user_id and by.role != "admin":
            raise Forbidden("only an administrator may do this")
        with session_scope(self.settings) as session:
            user = get_user(session, user_id, disabled=by.role == "admin")
            if by.id == user.id:
                self._check_old_password(user, old_password, client)
            _set_password(session, user, password, by)

    def _check_old_password(self, user: UserRecord, old_password: str | None, client: str) -> None:
        if not old_password:
            raise BadInput("give the old password (old_password) to change your own")
        if len(old_password) > MAX_SIGN_IN_PASSWORD_LENGTH:
            raise Forbidden("the old password is wrong")
        attempt: Attempt = self.limiter.reserve(user.username, client)
        if verify_password(user, old_password):
            self.limiter.release(attempt)  # not a sign-in: the failures stay as they were
            return
        self.limiter.failed(attempt)
        raise Forbidden("the old password is wrong")
