"""The one progress type of every long job: downloads, analyses, training, imports, de-identification.

A job calls ``progress(Step(...))`` as it goes; the CLI draws a bar from it and the web service
keeps the last step on the job. Domain code that counts ``(done, total)`` is bridged by ``counter``.

Example:
    >>> seen = []
    >>> report(seen.append, "reading image")
    >>> counter(seen.append, "downloading", unit="bytes")(512, 1024)
    >>> [(s.message, s.done, s.total, s.unit) for s in seen]
    [('reading image', None, None, ''), ('downloading', 512, 1024, 'bytes')]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    message: str
    """What is happening now, e.g. "reading image" or "epoch 2/10"."""
    done: int | None = None
    total: int | None = None
    """None while the amount of work is unknown."""
    unit: str = ""
    """What ``done`` counts: "bytes", "evaluations", "images", "files", or "" for plain steps."""
    detail: str = ""
    """A short figure to show beside the bar, e.g. "loss 0.1234"."""
    log: bool = False
    """A result worth keeping on screen (an epoch's metrics), not just the bar's current state."""


Progress = Callable[[Step], None]


def report(
    progress: Progress | None,
    message: str,
    done: int | None = None,
    total: int | None = None,
    *,
    unit: str = "",
    detail: str = "",
    log: bool = False,
) -> None:
    """Send one step, if anyone listens."""
    if progress is not None:
        progress(Step(message, done, total, unit, detail, log))


def counter(progress: Progress | None, message: str, *, unit: str = "") -> Callable[[int, int | None], None]:
    """A ``(done, total)`` callback for domain code, reporting each count as a step of ``message``."""

    def count(done: int, total: int | None) -> None:
        report(progress, message, done, total, unit=unit)

    return count
