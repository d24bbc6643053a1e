"""The failed sign-in limit and the password policy, without a database.

The limiter runs on a clock the tests move (``Clock``), so windows and lockouts are exact.
"""

from __future__ import annotations

import random
import string
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from sahay.errors import BadInput, TooManyAttempts
from sahay.store.accounts import LoginRateLimiter, check_password_strength

MAX_PASSWORD_LENGTH = 128  # NIST SP 800-63B: at least 64 allowed; more than enough for a passphrase


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(limiter: LoginRateLimiter, name: str, client: str = "192.0.2.1") -> None:
    limiter.failed(limiter.reserve(name, client))


def blocked_for(limiter: LoginRateLimiter, name: str, client: str = "192.0.2.1") -> int:
    with pytest.raises(TooManyAttempts) as refused:
        limiter.reserve(name, client)
    assert "too many failed sign-ins" in str(refused.value)
    return refused.value.retry_after


# Memory: keys are fixed-size hashes, forgotten when they expire, and bounded ---------------------


def test_long_names_leave_nothing_behind_once_their_window_is_over() -> None:
    """300 failures with 1 MB names once kept 261 MB after their window: now a few kB, then nothing."""
    clock = Clock()
    limiter = LoginRateLimiter(5, clock=clock)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            fail(limiter, f"{i:04d}" + "n" * 1_000_000)
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert held < 1_000_000, f"{held} bytes held for 300 names"
    assert len(limiter) == 301  # one key per name and client, and the client's

    clock.now += 61
    limiter.reserve("someone-else", "192.0.2.2")  # any later attempt forgets what expired
    assert len(limiter) == 2


def test_the_keys_held_are_bounded() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(5, clock=clock, max_tracked=100)
    for i in range(1000):
        fail(limiter, f"name-{i}", f"198.51.100.{i % 250}")
        assert len(limiter) <= 100


def test_a_name_is_counted_without_regard_to_case_but_never_kept() -> None:
    limiter = LoginRateLimiter(2, clock=Clock())
    fail(limiter, "Asha")
    fail(limiter, "ASHA")
    blocked_for(limiter, "asha")
    assert not any(b"asha" in key.lower() for key in limiter._counts)


# Reserving an attempt is atomic ------------------------------------------------------------------


def test_concurrent_guesses_cannot_pass_the_limit() -> None:
    """Checking and then recording let 34 of 32-thread guesses through in a minute; each attempt
    is now counted before its password is checked."""
    limiter = LoginRateLimiter(5)
    start = threading.Barrier(32)

    def guess(_: int) -> str:
        start.wait()
        try:
            attempt = limiter.reserve("target", "192.0.2.1")
        except TooManyAttempts:
            return "refused"
        time.sleep(0.05)  # the password check
        limiter.failed(attempt)
        return "checked"

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(guess, range(32)))
    assert results.count("checked") == 5
    assert results.count("refused") == 27


def test_pending_attempts_count_until_settled() -> None:
    limiter = LoginRateLimiter(2, clock=Clock())
    first = limiter.reserve("asha", "192.0.2.1")
    second = limiter.reserve("asha", "192.0.2.1")
    blocked_for(limiter, "asha")
    limiter.release(first)  # neither right nor wrong: no longer counted
    limiter.failed(second)
    limiter.failed(limiter.reserve("asha", "192.0.2.1"))
    blocked_for(limiter, "asha")


def test_success_forgives_the_names_failures_from_that_client_only() -> None:
    limiter = LoginRateLimiter(3, per_client=5, clock=Clock())
    fail(limiter, "asha")
    fail(limiter, "asha")
    limiter.succeeded(limiter.reserve("asha", "192.0.2.1"))
    for _ in range(2):
        fail(limiter, "asha")
    # The client's two earlier failures still count: 4 of 5, and one more locks the client out.
    fail(limiter, "ravi")
    blocked_for(limiter, "meera")


# Per client and for everyone ---------------------------------------------------------------------


def test_one_client_cannot_spray_many_names() -> None:
    limiter = LoginRateLimiter(5, per_client=10, clock=Clock())
    for i in range(10):
        fail(limiter, f"sprayed-{i}")
    assert blocked_for(limiter, "sprayed-10") == 60
    limiter.failed(limiter.reserve("sprayed-10", "198.51.100.7"))  # another client is not affected


def test_the_overall_limit_stops_guesses_from_everywhere() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(5, per_client=10, overall=20, clock=clock)
    for i in range(20):
        clock.now += 1
        fail(limiter, f"name-{i}", f"198.51.100.{i}")
    assert blocked_for(limiter, "fresh-name", "203.0.113.9") == 41  # when the oldest leaves the window
    clock.now += 41
    limiter.reserve("fresh-name", "203.0.113.9")


# Backoff -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["name", "client"])
def test_lockouts_double_while_the_failures_go_on(kind: str) -> None:
    clock = Clock()
    limiter = LoginRateLimiter(5, per_client=5, max_lockout_s=300, clock=clock)

    def name(i: int) -> str:
        return "asha" if kind == "name" else f"name-{i}"

    for lockout in (60, 120, 240, 300, 300):
        for i in range(5):
            fail(limiter, name(i))
        assert blocked_for(limiter, name(9)) == lockout
        clock.now += lockout - 1
        assert blocked_for(limiter, name(9)) == 1
        clock.now += 1

    # Quiet for as long as the last lockout: forgiven, back to a minute.
    clock.now += 300
    for i in range(5):
        fail(limiter, name(i))
    assert blocked_for(limiter, name(9)) == 60


def test_the_window_still_slides_below_the_limit() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(3, clock=clock)
    fail(limiter, "asha")
    clock.now += 30
    fail(limiter, "asha")
    clock.now += 30
    fail(limiter, "asha")  # the first failure has left the window: two in it
    fail(limiter, "asha")
    assert blocked_for(limiter, "asha") == 60


# The password policy (NIST SP 800-63B) ------------------------------------------------------------


def _random(length: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits + "-_.") for _ in range(length))


@pytest.mark.parametrize(
    ("password", "says"),
    [
        pytest.param(" " * 12, "only spaces", id="twelve-spaces"),
        pytest.param("\t \u3000" * 4, "only spaces", id="other-whitespace"),
        pytest.param("password1234", "too easy to guess", id="common"),
        pytest.param("Password1234!", "too easy to guess", id="common-capitalised"),
        pytest.param("qwertyuiop12", "too easy to guess", id="keyboard"),
        pytest.param("123456789012", "too easy to guess", id="sequence"),
        pytest.param("abcabcabcabc", "too easy to guess", id="repeat"),
        pytest.param("iloveyou1234", "too easy to guess", id="phrase-and-digits"),
        pytest.param("short-one", "at least 12 characters", id="short"),
        pytest.param("asha-is-my-name-1", "must not contain the user name", id="user-name"),
        pytest.param(_random(MAX_PASSWORD_LENGTH + 1), "at most 128 characters", id="129-characters"),
        pytest.param("p" * 1_000_000, "at most 128 characters", id="one-megabyte"),
    ],
)
def test_weak_passwords_are_refused(password: str, says: str) -> None:
    started = time.monotonic()
    with pytest.raises(BadInput) as refused:
        check_password_strength(password, "asha")
    assert says in str(refused.value)
    assert password.strip() == "" or password[:12] not in str(refused.value)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "ledger-keeper-2024-pass",
        "pw-3f0c9a1e5b7d2468ace0",
        "  spaces around are kept  ",
        _random(MAX_PASSWORD_LENGTH),
        "x" * 64 + _random(64),  # a weak start, a strong whole
    ],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    check_password_strength(password, "asha")
