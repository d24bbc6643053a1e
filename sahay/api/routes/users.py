"""Accounts: who am I, (administrators) create, list, disable and enable users and end their
sessions, and a new password (an administrator's for anyone, or a user's own with the old one)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from sahay.api.deps import AdminUser, CurrentUser, ServiceDep, client_address
from sahay.services import accounts
from sahay.services.accounts import UserOut

router = APIRouter(prefix="/users", tags=["users"])


class NewUser(BaseModel):
    username: str
    password: str
    role: str = "clinician"


class NewPassword(BaseModel):
    password: str
    old_password: str | None = None
    """Needed when changing one's own password."""


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post("", response_model=UserOut, status_code=201)
def create(body: NewUser, admin: AdminUser, service: ServiceDep) -> UserOut:
    return accounts.create_user(body.username, body.password, body.role, by=admin, settings=service.settings)


@router.get("", response_model=list[UserOut])
def index(admin: AdminUser, service: ServiceDep) -> list[UserOut]:
    return accounts.list_users(service.settings)


@router.post("/{user_id}/disable", response_model=UserOut)
def disable(user_id: str, admin: AdminUser, service: ServiceDep) -> UserOut:
    """The user can no longer sign in or refresh, and their tokens stop working at once."""
    return accounts.disable_user(user_id, by=admin, settings=service.settings)


@router.post("/{user_id}/enable", response_model=UserOut)
def enable(user_id: str, admin: AdminUser, service: ServiceDep) -> UserOut:
    """A disabled user may sign in again."""
    return accounts.enable_user(user_id, by=admin, settings=service.settings)


@router.post("/{user_id}/revoke-sessions", status_code=204, response_class=Response)
def revoke_sessions(user_id: str, admin: AdminUser, service: ServiceDep) -> Response:
    """End every session of the user: refresh tokens revoked, access tokens ended at once."""
    accounts.revoke_sessions(user_id, by=admin, settings=service.settings)
    return Response(status_code=204)


@router.put("/{user_id}/password", status_code=204, response_class=Response)
def set_password(
    user_id: str, body: NewPassword, user: CurrentUser, request: Request, service: ServiceDep
) -> Response:
    """An administrator sets anyone's password; a user sets their own with ``old_password``.
    Every session of the account ends: sign in again with the new password."""
    service.sessions.set_password(
        user_id, body.password, by=user, old_password=body.old_password, client=client_address(request)
    )
    return Response(status_code=204)
