"""Sign in (OAuth2 password flow), refresh, sign out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel
from sqlalchemy import delete

from sahay.api.deps import ServiceDep, SessionDep, client_address
from sahay.errors import NotAuthenticated, NotFound
from sahay.store import audit
from sahay.store.accounts import authenticate, find_user, get_user
from sahay.store.records import RefreshTokenRecord, UserRecord

router = APIRouter(prefix="/auth", tags=["auth"])


class UserBrief(BaseModel):
    id: str
    username: str
    role: str


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    user: UserBrief


class RefreshRequest(BaseModel):
    refresh_token: str


@router.post("/token", response_model=TokenPair)
def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    service: ServiceDep,
    session: SessionDep,
) -> dict[str, Any]:
    client = client_address(request)
    service.limiter.check(form.username, client)
    try:
        user = authenticate(session, form.username, form.password)
    except NotAuthenticated:
        service.limiter.failed(form.username, client)
        # A name that is no account may be a password typed into the wrong field: not kept.
        known = find_user(session, form.username)
        audit.record(
            session, known, "login-failed", "session", None, {"client": client}, actor_name="unknown user"
        )
        session.commit()
        raise
    service.limiter.succeeded(form.username, client)
    tokens = service.tokens.issue(session, user)
    audit.record(session, user, "login", "session", None, {"client": client})
    session.commit()
    return tokens


@router.post("/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, service: ServiceDep, session: SessionDep) -> dict[str, Any]:
    """A new token pair; the refresh token used is revoked (rotation)."""
    claims = service.tokens.claims(body.refresh_token, "refresh")
    stored = session.get(RefreshTokenRecord, str(claims.get("jti")))
    if stored is None:
        # A genuine token that was already used or revoked: someone may hold a copy. End every session.
        session.execute(delete(RefreshTokenRecord).where(RefreshTokenRecord.user_id == str(claims["sub"])))
        session.commit()
        raise NotAuthenticated("the refresh token has been revoked; sign in again")
    if stored.expires_at <= datetime.now(UTC) or stored.user_id != claims["sub"]:
        raise NotAuthenticated("the refresh token has expired; sign in again")
    try:
        user = get_user(session, stored.user_id)
    except NotFound as exc:
        raise NotAuthenticated("the account behind this token no longer exists") from exc
    session.delete(stored)
    tokens = service.tokens.issue(session, user)
    session.commit()
    return tokens


@router.post("/logout", status_code=204, response_class=Response)
def sign_out(body: RefreshRequest, service: ServiceDep, session: SessionDep) -> Response:
    """Revoke a refresh token. The refresh token itself is the credential, so signing out works
    after the access token has expired."""
    claims = service.tokens.claims(body.refresh_token, "refresh")
    stored = session.get(RefreshTokenRecord, str(claims.get("jti")))
    if stored is not None and stored.user_id == claims["sub"]:
        user = session.get(UserRecord, stored.user_id)
        session.delete(stored)
        audit.record(session, user, "logout", "session")
        session.commit()
    return Response(status_code=204)
