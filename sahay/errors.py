"""One family of errors, mapped in one place to CLI exit codes and HTTP statuses.

Every message names the file or value that is wrong and says what to do about it.
"""

from __future__ import annotations

import re


class SahayError(Exception):
    """Base class. ``exit_code`` is the CLI's, ``http_status`` the API's.

    The message says what is wrong, in words every door can show. What to do about it often
    depends on the door ("--force" on the command line, a "force" field in the API, a button in
    the browser): ``hints`` holds that, per door ("cli", "api"), and each door adds its own.
    ``kind`` names the error for programs (the API returns it; the browser words its own advice).
    """

    exit_code = 1
    http_status = 500

    def __init__(self, *args: object, hints: dict[str, str] | None = None) -> None:
        super().__init__(*args)
        self.hints = dict(hints or {})

    @property
    def kind(self) -> str:
        """The class name in snake case: ``OutOfDomain`` is ``out_of_domain``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def for_door(self, door: str) -> str:
        """The message with the door's hint, if it has one."""
        hint = self.hints.get(door)
        return f"{self} {hint}" if hint else str(self)


class BadInput(SahayError):
    """The user gave something Sahay cannot use: a corrupt file, a wrong value."""

    exit_code = 2
    http_status = 400


class InputTooLarge(BadInput):
    """A file or image beyond the configured limits."""

    http_status = 413


class UnsupportedFormat(BadInput):
    """A file type, transfer syntax or photometric interpretation Sahay cannot decode."""

    http_status = 415


class ModelUnavailable(SahayError):
    """The model is unknown, not installed, or cannot be fetched."""

    exit_code = 2
    http_status = 404


class OutOfDomain(SahayError):
    """The image is not one the model was made for."""

    exit_code = 2
    http_status = 422


class IntegrityError(SahayError):
    """A file does not match its recorded sha256 or expected structure."""

    exit_code = 2
    http_status = 422


class ArchiveUnavailable(SahayError):
    """The configured archive (PACS) cannot be reached, refuses Sahay's login, or fails."""

    exit_code = 2
    http_status = 502


class NotFound(SahayError):
    """No such object, or one the caller may not see (the same answer, so ids cannot be probed)."""

    exit_code = 2
    http_status = 404


class NotAuthenticated(SahayError):
    """Missing, expired or wrong credentials."""

    exit_code = 2
    http_status = 401


class Forbidden(SahayError):
    """Signed in, but the role does not allow it."""

    exit_code = 2
    http_status = 403


class Conflict(SahayError):
    """The request clashes with what is stored, e.g. a user name already taken."""

    exit_code = 2
    http_status = 409


class TooManyRequests(SahayError):
    """This client has too much in flight; ``retry_after`` (seconds) says when to try again."""

    exit_code = 2
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyAttempts(TooManyRequests):
    """Sign-in is rate-limited for this name or address."""


class ServiceUnavailable(SahayError):
    """An optional part the request needs is not installed or not reachable."""

    exit_code = 2
    http_status = 503


class ServiceBusy(ServiceUnavailable):
    """The service is at a limit it keeps for everyone (queue, database); ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def describe_error(exc: BaseException) -> str:
    """A library exception in one line for a user, without in-memory stream reprs."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the file", text)
