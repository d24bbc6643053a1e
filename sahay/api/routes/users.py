"""Accounts: who am I, and (administrators) create and list users."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from sahay.api.deps import AdminUser, CurrentUser, ServiceDep
from sahay.services import accounts
from sahay.services.accounts import UserOut

router = APIRouter(prefix="/users", tags=["users"])


class NewUser(BaseModel):
    username: str
    password: str
    role: str = "clinician"


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post("", response_model=UserOut, status_code=201)
def create(body: NewUser, admin: AdminUser, service: ServiceDep) -> UserOut:
    return accounts.create_user(body.username, body.password, body.role, by=admin, settings=service.settings)


@router.get("", response_model=list[UserOut])
def index(admin: AdminUser, service: ServiceDep) -> list[UserOut]:
    return accounts.list_users(service.settings)
