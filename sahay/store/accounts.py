"""Users, passwords and sign-in: the logic behind `sahay users` and the web service's login.

Passwords are hashed with Argon2 (argon2-cffi's defaults, RFC 9106 low-memory profile) and never
stored or logged in the clear. Failed sign-ins are rate-limited per user name and client address.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sahay.errors import BadInput, Conflict, NotAuthenticated, NotFound, TooManyAttempts
from sahay.store.records import UserRecord

if TYPE_CHECKING:
    from argon2 import PasswordHasher

Role = Literal["clinician", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
MIN_PASSWORD_LENGTH = 12
MAX_TRACKED_NAMES = 10_000
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$")


def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()


# A hash of a random password: checking it when the user does not exist takes as long as a real check.
_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    return str(_hasher().hash(password))


def check_password_strength(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if username.lower() in password.lower():
        raise BadInput("the password must not contain the user name")


def create_user(session: Session, username: str, password: str, role: str = "clinician") -> UserRecord:
    if not _USERNAME.match(username):
        raise BadInput(
            f"invalid user name {username!r}: 3 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    check_password_strength(password, username)
    if find_user(session, username) is not None:
        raise Conflict(f"the user name {username!r} is taken")
    user = UserRecord(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> UserRecord | None:
    return session.scalars(
        select(UserRecord).where(func.lower(UserRecord.username) == username.lower())
    ).one_or_none()


def get_user(session: Session, user_id: str) -> UserRecord:
    user = session.get(UserRecord, user_id)
    if user is None or not user.active:
        raise NotFound("no such user")
    return user


def list_users(session: Session) -> list[UserRecord]:
    return list(session.scalars(select(UserRecord).order_by(UserRecord.created_at)))


def authenticate(session: Session, username: str, password: str) -> UserRecord:
    """The user with this name and password; ``NotAuthenticated`` with one message for every failure."""
    from argon2.exceptions import InvalidHashError, VerificationError

    global _DUMMY_HASH
    user = find_user(session, username)
    hasher = _hasher()
    if user is None or not user.active:
        _DUMMY_HASH = _DUMMY_HASH or hasher.hash("not a password of anyone")
        with contextlib.suppress(VerificationError):
            hasher.verify(_DUMMY_HASH, password)
        raise NotAuthenticated("wrong user name or password")
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise NotAuthenticated("wrong user name or password") from exc
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


@dataclass
class LoginRateLimiter:
    """At most ``attempts`` failed sign-ins per (user name, client) in a sliding ``window_s``."""

    attempts: int
    window_s: float = 60.0

    def __post_init__(self) -> None:
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, username: str, client: str) -> None:
        with self._lock:
            recent = self._recent((username.lower(), client))
            if len(recent) >= self.attempts:
                retry_after = int(recent[0] + self.window_s - time.monotonic()) + 1
                raise TooManyAttempts(
                    f"too many failed sign-ins; try again in {retry_after} s", retry_after=retry_after
                )

    def failed(self, username: str, client: str) -> None:
        with self._lock:
            self._recent((username.lower(), client)).append(time.monotonic())

    def succeeded(self, username: str, client: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), client), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        if len(self._failures) > MAX_TRACKED_NAMES:
            self._forget_expired()  # made-up user names must not grow this without end
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= time.monotonic() - self.window_s:
            times.popleft()
        return times

    def _forget_expired(self) -> None:
        cutoff = time.monotonic() - self.window_s
        for key in [k for k, times in self._failures.items() if not times or times[-1] <= cutoff]:
            del self._failures[key]
