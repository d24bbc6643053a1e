"""Sign in (OAuth2 password flow), refresh, sign out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from sahay.api.deps import ServiceDep, client_address

router = APIRouter(prefix="/auth", tags=["auth"])

# Token responses are credentials: no cache, shared or private, may keep them (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


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
    response: Response,
    service: ServiceDep,
) -> dict[str, Any]:
    """A token pair. Failed sign-ins are limited per user name and address, per address and for
    everyone: 429 with Retry-After."""
    tokens = service.sessions.sign_in(form.username, form.password, client_address(request))
    response.headers.update(NO_STORE)
    return tokens


@router.post("/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, response: Response, service: ServiceDep) -> dict[str, Any]:
    """A new token pair; the refresh token used is revoked (rotation)."""
    tokens = service.sessions.refresh(body.refresh_token)
    response.headers.update(NO_STORE)
    return tokens


@router.post("/logout", status_code=204, response_class=Response)
def sign_out(body: RefreshRequest, service: ServiceDep) -> Response:
    """Revoke a refresh token and end the user's access tokens at once. The refresh token itself is
    the credential, so signing out works after the access token has expired."""
    service.sessions.sign_out(body.refresh_token)
    return Response(status_code=204)
