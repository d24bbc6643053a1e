"""Accounts: who am I, and (administrators) create and list users."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from sahay.api.deps import AdminUser, CurrentUser, SessionDep
from sahay.store import audit
from sahay.store.accounts import create_user, list_users
from sahay.store.records import UserRecord

router = APIRouter(prefix="/users", tags=["users"])


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    role: str
    created_at: datetime


class NewUser(BaseModel):
    username: str
    password: str
    role: str = "clinician"


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserRecord:
    return user


@router.post("", response_model=UserOut, status_code=201)
def create(body: NewUser, admin: AdminUser, session: SessionDep) -> UserRecord:
    user = create_user(session, body.username, body.password, body.role)
    audit.record(session, admin, "create", "user", user.id, {"username": user.username, "role": user.role})
    session.commit()
    return user


@router.get("", response_model=list[UserOut])
def index(admin: AdminUser, session: SessionDep) -> list[UserRecord]:
    return list_users(session)
