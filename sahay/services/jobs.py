"""The web service's fair share of work: background jobs with bounded queues, and a bound on how
many requests one user may have waiting for a model at once.

Limits (``SAHAY_MAX_JOBS_PER_USER``, ``SAHAY_MAX_QUEUED_JOBS``, ``SAHAY_MAX_WAITING_PER_USER``) keep one
user's burst from starving the others: past them a request is refused at once with 429 (this
user) or 503 (everyone), with ``Retry-After``, instead of queuing without end.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sahay.config import Settings
from sahay.errors import NotFound, ServiceBusy, TooManyRequests
from sahay.progress import Step
from sahay.store.records import UserRecord

JOB_RETENTION = timedelta(hours=24)
"""Finished jobs are forgotten after this; their analyses stay."""
RETRY_AFTER_S = 30


@dataclass
class Job:
    """Long work (a perturbation explanation) that the client polls; ``step`` is its last progress."""

    id: str
    owner_id: str
    status: str = "queued"  # queued, running, done, failed
    analysis_id: str | None = None
    error: str | None = None
    error_status: int | None = None
    error_kind: str | None = None
    error_message: str | None = None  # without the API's hint, for a door that words its own
    step: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def progress(self, step: Step) -> None:
        self.step = step.message if step.total is None else f"{step.message} ({step.done}/{step.total})"


class JobBoard:
    """Background jobs and per-user waits, with their limits. Thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs: dict[str, Job] = {}
        self._waiting: dict[str, int] = {}
        self._lock = threading.Lock()

    def new_job(self, owner: UserRecord) -> Job:
        """A queued job for ``owner``, or 429/503 when the user's or everyone's queue is full."""
        with self._lock:
            self._forget_finished()
            active = [j for j in self.jobs.values() if j.active]
            mine = sum(1 for j in active if j.owner_id == owner.id)
            if mine >= self.settings.max_jobs_per_user:
                raise TooManyRequests(
                    f"you already have {mine} analyses running in the background (the limit is "
                    f"{self.settings.max_jobs_per_user}); wait for one to finish",
                    retry_after=RETRY_AFTER_S,
                )
            if len(active) >= self.settings.max_queued_jobs:
                raise ServiceBusy(
                    f"the service has {len(active)} background analyses queued; try again shortly",
                    retry_after=RETRY_AFTER_S,
                )
            job = Job(id=uuid.uuid4().hex, owner_id=owner.id)
            self.jobs[job.id] = job
            return job

    def job(self, user: UserRecord, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or (job.owner_id != user.id and user.role != "admin"):
            raise NotFound(f"no job {job_id!r}")
        return job

    @contextmanager
    def waiting(self, user: UserRecord) -> Iterator[None]:
        """Count one request of ``user`` waiting for a model; refuse one too many with 429."""
        with self._lock:
            count = self._waiting.get(user.id, 0)
            if count >= self.settings.max_waiting_per_user:
                raise TooManyRequests(
                    f"you have {count} requests waiting for the model already "
                    f"(the limit is {self.settings.max_waiting_per_user}); wait for them to finish",
                    retry_after=5,
                )
            self._waiting[user.id] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._waiting[user.id] - 1
                if left:
                    self._waiting[user.id] = left
                else:
                    del self._waiting[user.id]

    def _forget_finished(self) -> None:
        cutoff = datetime.now(UTC) - JOB_RETENTION
        for old in [j for j in self.jobs.values() if not j.active and j.created_at < cutoff]:
            del self.jobs[old.id]
