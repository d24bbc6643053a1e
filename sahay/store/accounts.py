"""Users, passwords and sign-in: the logic behind `sahay users` and the web service's login.

Passwords are hashed with Argon2 (argon2-cffi's defaults, RFC 9106 low-memory profile) and never
stored or logged in the clear. New passwords follow NIST SP 800-63B: 12 to 128 characters, not
only spaces, not containing the user name, and not common or easy to guess (zxcvbn's estimate,
which knows the common-password lists, dictionary words, sequences and repeats).

Failed sign-ins are rate-limited (``LoginRateLimiter``): per user name and client address, per
client address, and for everyone together, with lockouts that double while the failures go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sahay.errors import BadInput, Conflict, NotAuthenticated, NotFound, TooManyAttempts
from sahay.store.records import UserRecord

if TYPE_CHECKING:
    from argon2 import PasswordHasher

Role = Literal["clinician", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
MAX_USERNAME_LENGTH = 64
MAX_SIGN_IN_PASSWORD_LENGTH = 1024
"""Sign-in refuses longer passwords unread (accounts made before the 128 limit may have up to this)."""
MIN_PASSWORD_GUESSES_LOG10 = 6.0
"""A new password must need at least 10^6 guesses by zxcvbn's estimate (its scores 2 to 4)."""
WRONG_CREDENTIALS = "wrong user name or password"
MAX_TRACKED_KEYS = 100_000
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$")
_GUESSABLE_CONTEXT = ("sahay",)
"""Words of this service that make a password easy to guess, besides the user name."""


def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()


# A hash of a random password: checking it when the user does not exist takes as long as a real check.
_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    return str(_hasher().hash(password))


def check_password_strength(password: str, username: str) -> None:
    """Refuse a new password that is too short, too long, only spaces, or easy to guess."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadInput(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise BadInput("the password must not be only spaces")
    if username.lower() in password.lower():
        raise BadInput("the password must not contain the user name")
    _refuse_guessable(password, username)


def _refuse_guessable(password: str, username: str) -> None:
    from zxcvbn import zxcvbn

    context = [username, *_GUESSABLE_CONTEXT]
    # zxcvbn's time grows fast with length: a strong first 64 characters settle it, since guessing the
    # whole means guessing them too.
    candidates = (password[:64], password) if len(password) > 64 else (password,)
    warning = ""
    for candidate in candidates:
        estimate = zxcvbn(candidate, user_inputs=context, max_length=MAX_PASSWORD_LENGTH)
        if float(estimate["guesses_log10"]) >= MIN_PASSWORD_GUESSES_LOG10:
            return
        warning = str(estimate["feedback"].get("warning") or "")
    reason = f" ({warning.rstrip('.')})" if warning else ""
    raise BadInput(
        f"the password is too easy to guess{reason}; choose a longer passphrase, e.g. several unrelated words"
    )


def create_user(session: Session, username: str, password: str, role: str = "clinician") -> UserRecord:
    if not _USERNAME.match(username):
        raise BadInput(
            f"invalid user name {username[:MAX_USERNAME_LENGTH]!r}: 3 to 64 letters, digits, '.', '_', "
            "'@' or '-', starting with a letter or digit"
        )
    if role not in ROLES:
        raise BadInput(f"unknown role {role[:32]!r}; use one of {', '.join(ROLES)}")
    check_password_strength(password, username)
    if find_user(session, username) is not None:
        raise Conflict(f"the user name {username!r} is taken")
    user = UserRecord(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> UserRecord | None:
    if len(username) > MAX_USERNAME_LENGTH:
        return None  # no account has such a name: the database need not see it
    return session.scalars(
        select(UserRecord).where(func.lower(UserRecord.username) == username.lower())
    ).one_or_none()


def get_user(session: Session, user_id: str, *, disabled: bool = False) -> UserRecord:
    """The user with this id; a disabled one only when ``disabled`` (an administrator's actions)."""
    user = session.get(UserRecord, user_id) if len(user_id) <= 32 else None
    if user is None or not (user.active or disabled):
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
        raise NotAuthenticated(WRONG_CREDENTIALS)
    if not verify_password(user, password):
        raise NotAuthenticated(WRONG_CREDENTIALS)
    with contextlib.suppress(InvalidHashError):
        if hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hasher.hash(password)
    return user


def verify_password(user: UserRecord, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def set_password(session: Session, user: UserRecord, password: str) -> None:
    """A new password (checked against the policy); every access token the user holds ends."""
    check_password_strength(password, user.username)
    user.password_hash = hash_password(password)
    end_access_tokens(session, user)


def end_access_tokens(session: Session, user: UserRecord) -> None:
    """Raise the user's token version: access tokens issued before stop working at once."""
    # Counted in the database, so that concurrent raises all count.
    session.execute(
        update(UserRecord)
        .where(UserRecord.id == user.id)
        .values(token_version=UserRecord.token_version + 1)
        .execution_options(synchronize_session=False)
    )
    session.refresh(user, ["token_version"])


def active_admins(session: Session) -> int:
    query = select(func.count()).select_from(UserRecord).where(UserRecord.role == "admin", UserRecord.active)
    return int(session.scalar(query) or 0)


# The failed sign-in limit ------------------------------------------------------------------------


class _Count:
    """What one key (a user name and client, or a client) did lately."""

    __slots__ = ("blocked_until", "forget_at", "strikes", "times")

    def __init__(self) -> None:
        self.times: list[float] = []  # failed and pending attempts, oldest first
        self.strikes = 0  # lockouts in a row; each one doubles the next
        self.blocked_until = 0.0
        self.forget_at = 0.0


@dataclass(frozen=True)
class Attempt:
    """A sign-in reserved by ``LoginRateLimiter.reserve``; settle it with failed, succeeded or release."""

    keys: tuple[bytes, bytes]  # (user name and client, client)
    at: float


KeyKind = Literal["name", "client"]


@dataclass
class LoginRateLimiter:
    """Failed sign-ins: at most ``attempts`` per (user name, client), ``per_client`` per client and
    ``overall`` for everyone in a sliding ``window_s``.

    Each attempt is reserved before the password is checked (``reserve``), under one lock, so that
    concurrent guesses cannot all pass the check before any is counted. Reaching the limit of a
    user name and client, or of a client, locks it out for ``window_s``; each further lockout in a
    row doubles, up to ``max_lockout_s``, until the key has been quiet for as long as its last
    lockout. Keys are keyed hashes of fixed size (a name is never kept), forgotten when they expire,
    and at most ``max_tracked`` are held.
    """

    attempts: int
    per_client: int | None = None
    overall: int | None = None
    window_s: float = 60.0
    max_lockout_s: float = 3600.0
    max_tracked: int = MAX_TRACKED_KEYS
    clock: Callable[[], float] = time.monotonic
    _counts: OrderedDict[bytes, _Count] = field(default_factory=OrderedDict, init=False, repr=False)
    _overall: list[float] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _salt: bytes = field(default_factory=lambda: secrets.token_bytes(16), init=False, repr=False)
    _next_purge: float = field(default=0.0, init=False, repr=False)

    def reserve(self, username: str, client: str) -> Attempt:
        """Count an attempt now, or raise ``TooManyAttempts`` with the seconds to wait."""
        with self._lock:
            now = self.clock()
            self._purge(now)
            keys = (self._key("name", username.lower(), client), self._key("client", client))
            wait = 0.0
            for key, limit in zip(keys, self._limits(), strict=True):
                count = self._counts.get(key)
                if count is not None:
                    wait = max(wait, self._wait(count, limit, now))
            if self.overall is not None:
                self._overall[:] = [t for t in self._overall if t > now - self.window_s]
                if len(self._overall) >= self.overall:
                    wait = max(wait, self._overall[0] + self.window_s - now)
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                raise TooManyAttempts(
                    f"too many failed sign-ins; try again in {retry_after} s", retry_after=retry_after
                )
            for key in keys:
                count = self._counts.get(key)
                if count is None or count.forget_at <= now:  # quiet long enough: its lockouts are forgiven
                    count = self._counts[key] = _Count()
                self._counts.move_to_end(key)
                count.times.append(now)
                count.forget_at = max(count.forget_at, now + self.window_s)
            if self.overall is not None:
                self._overall.append(now)
            while len(self._counts) > self.max_tracked:
                self._counts.popitem(last=False)  # the longest quiet
            return Attempt(keys, now)

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong: the attempt stays counted, and a key at its limit is locked out."""
        with self._lock:
            now = self.clock()
            for key, limit in zip(attempt.keys, self._limits(), strict=True):
                count = self._counts.get(key)
                if count is None or limit is None:
                    continue
                self._prune(count, now)
                if len(count.times) >= limit and count.blocked_until <= now:
                    count.strikes += 1
                    lockout = self._lockout(count.strikes)
                    count.blocked_until = now + lockout
                    count.forget_at = max(count.forget_at, count.blocked_until + lockout)

    def succeeded(self, attempt: Attempt) -> None:
        """Signed in: the user name's failures from this client are forgiven, and this attempt
        no longer counts against the client or everyone (the client's lockouts stay)."""
        with self._lock:
            self._counts.pop(attempt.keys[0], None)
            self._drop(attempt, attempt.keys[1:])

    def release(self, attempt: Attempt) -> None:
        """Neither right nor wrong (the check itself failed): the attempt no longer counts."""
        with self._lock:
            self._drop(attempt, attempt.keys)

    def __len__(self) -> int:
        """How many keys are held."""
        with self._lock:
            return len(self._counts)

    def _limits(self) -> tuple[int | None, int | None]:
        return self.attempts, self.per_client

    def _key(self, kind: KeyKind, *parts: str) -> bytes:
        text = "\0".join((kind, *parts)).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(text, digest_size=16, key=self._salt).digest()

    def _lockout(self, strikes: int) -> float:
        return float(min(self.window_s * 2 ** min(strikes - 1, 32), self.max_lockout_s))

    def _prune(self, count: _Count, now: float) -> None:
        cutoff = now - self.window_s
        if count.times and count.times[0] <= cutoff:
            count.times[:] = [t for t in count.times if t > cutoff]

    def _wait(self, count: _Count, limit: int | None, now: float) -> float:
        self._prune(count, now)
        if count.blocked_until > now:
            return count.blocked_until - now
        if limit is not None and len(count.times) >= limit:
            return count.times[0] + self.window_s - now  # pending attempts fill the window
        return 0.0

    def _drop(self, attempt: Attempt, keys: tuple[bytes, ...]) -> None:
        for key in keys:
            count = self._counts.get(key)
            if count is not None:
                with contextlib.suppress(ValueError):
                    count.times.remove(attempt.at)
        with contextlib.suppress(ValueError):
            self._overall.remove(attempt.at)

    def _purge(self, now: float) -> None:
        """Forget the keys that are quiet, at most once per quarter window."""
        if now < self._next_purge:
            return
        self._next_purge = now + self.window_s / 4
        for key in [k for k, count in self._counts.items() if count.forget_at <= now]:
            del self._counts[key]
