"""Tokens: short-lived JWT access tokens and revocable refresh tokens (HS256, PyJWT).

An access token carries its user's token version (``ver``); sign-out, disabling the account, a new
password or revoking the sessions raise the version, and every older access token stops at once.

The signing key is ``SAHAY_SECRET_KEY`` or, when unset, a random key created once in
``$SAHAY_HOME/secret.key`` with owner-only permissions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy.orm import Session

from sahay.config import Settings
from sahay.errors import NotAuthenticated
from sahay.store.records import RefreshTokenRecord, UserRecord, new_id

ALGORITHM = "HS256"


def signing_key(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.home_dir / "secret.key"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(48))
    return path.read_text(encoding="utf-8").strip()


def _write_private(path: Path, text: str) -> None:
    """Write the key whole under a temporary name, then link it into place: of several processes
    starting at once, the first to link wins and every one reads that key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class Tokens:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key = signing_key(settings)

    def issue(self, session: Session, user: UserRecord) -> dict[str, Any]:
        """A new access token and refresh token for ``user``; the refresh token is recorded."""
        now = datetime.now(UTC)
        access_expires = now + timedelta(minutes=self.settings.access_token_minutes)
        refresh = RefreshTokenRecord(
            id=new_id(), user_id=user.id, expires_at=now + timedelta(days=self.settings.refresh_token_days)
        )
        session.add(refresh)
        return {
            "access_token": self._encode(user, "access", new_id(), access_expires, now),
            "refresh_token": self._encode(user, "refresh", refresh.id, refresh.expires_at, now),
            "token_type": "bearer",
            "expires_in": int((access_expires - now).total_seconds()),
            "user": {"id": user.id, "username": user.username, "role": user.role},
        }

    def claims(self, token: str, kind: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(token, self.key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise NotAuthenticated("the token has expired; sign in again") from exc
        except jwt.PyJWTError as exc:
            raise NotAuthenticated("the token is not valid") from exc
        if claims.get("type") != kind:
            raise NotAuthenticated(f"an {kind} token is needed here")
        return claims

    def _encode(self, user: UserRecord, kind: str, jti: str, expires: datetime, now: datetime) -> str:
        payload: dict[str, Any] = {
            "sub": user.id,
            "role": user.role,
            "type": kind,
            "jti": jti,
            "iat": now,
            "exp": expires,
        }
        if kind == "access":
            # The user's token version when issued: raising it ends this token (see ``current``).
            payload["ver"] = user.token_version
        return jwt.encode(payload, self.key, algorithm=ALGORITHM)

    @staticmethod
    def current(claims: dict[str, Any], user: UserRecord) -> bool:
        """Whether an access token's claims are of the user's present token version."""
        version = claims.get("ver")
        return isinstance(version, int) and not isinstance(version, bool) and version == user.token_version
