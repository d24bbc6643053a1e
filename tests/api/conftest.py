"""Fixtures for the web service tests: running apps, users, uploads and synthetic images.

Uploading is the slow part (a model load per app, about 1 s per analysis), so most tests share one
app for the whole session (``world``), with its own SAHAY_HOME beside the per-test one that
tests/conftest.py sets. Everything the shared app does goes through the ``Settings`` it was
created with, never through the environment. Module-scoped analyses (``png_analysis``,
``dicom_analysis``) live in it. Tests that need other settings or an empty home use
``make_world``, which starts an app on this test's own SAHAY_HOME.
"""

from __future__ import annotations

import io
import itertools
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from sahay.api.app import create_app
from sahay.config import Settings
from sahay.models.registry import import_path, installed
from sahay.store.accounts import create_user
from sahay.store.db import session_scope
from sahay.store.records import AnalysisRecord
from sahay.training.synthetic import make_image
from tests.factories import write_dicom

API = "/api/v1"
DEMO = "sahay-demo-synthetic"
UNREACHABLE = "http://127.0.0.1:9/unreachable"
NOTE = "Patient reports a dry cough for three weeks; zebra-marker-7731 former smoker."
"""An uploaded note; its marker must never show up in logs, errors or the audit log."""


# Settings, users and sign-in -----------------------------------------------------------------


def make_settings(home: Path, **overrides: Any) -> Settings:
    """Settings for ``home`` that reach no network and ignore the developer's SAHAY_* services."""
    values: dict[str, Any] = {
        "home": home,
        "model_mirror": UNREACHABLE,
        "database_url": None,
        "qdrant_url": None,
        "llm": "grounded",
        "web_search_url": None,
        "secret_key": None,
    }
    values.update(overrides)
    return Settings(**values)


def unique(prefix: str) -> str:
    """A user name no other test in the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_password() -> str:
    return f"pw-{uuid.uuid4().hex[:20]}"


def create_account(
    settings: Settings, username: str, password: str | None = None, role: str = "clinician"
) -> tuple[str, str]:
    """Create a user directly in the database; returns (user id, password)."""
    password = password or new_password()
    with session_scope(settings) as session:
        user_id = create_user(session, username, password, role).id
    return user_id, password


def token_pair(client: TestClient, username: str, password: str) -> dict[str, Any]:
    response = client.post(f"{API}/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    """Sign in through the API; returns the Authorization header."""
    return bearer(token_pair(client, username, password)["access_token"])


@dataclass
class Account:
    id: str
    username: str
    password: str
    role: str
    headers: dict[str, str]
    refresh_token: str


# Synthetic images the demo model accepts ------------------------------------------------------


def synthetic_pixels(
    *, disc: bool = True, stripes: bool = False, seed: int = 7, size: int = 320
) -> np.ndarray:
    """What `sahay demo` draws: float32 in [0, 1], in the demonstration model's domain."""
    return make_image(np.random.default_rng(seed), size, disc=disc, stripes=stripes).pixels


def png_bytes(pixels: np.ndarray | None = None, **drawn: Any) -> bytes:
    pixels = synthetic_pixels(**drawn) if pixels is None else pixels
    buffer = io.BytesIO()
    Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def dicom_bytes(*, study_id: str | None = "1", **drawn: Any) -> bytes:
    """The synthetic image as a 12-bit MONOCHROME2 DICOM file (modality OT).

    ``study_id``: written unless None (the factory leaves the Type 2 Study ID out).
    """
    stored = np.round(synthetic_pixels(**drawn) * 4095).astype(np.uint16)
    with tempfile.TemporaryDirectory() as folder:
        path = write_dicom(Path(folder) / "synthetic.dcm", stored, bits_stored=12, modality="OT")
        if study_id is not None:
            dataset = pydicom.dcmread(path)
            dataset.StudyID = study_id
            dataset.save_as(path, enforce_file_format=True)
        return path.read_bytes()


def study_uid(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)


def png_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


# Server-sent events ---------------------------------------------------------------------------


def parse_sse(text: str) -> list[tuple[str, Any]]:
    """``event:``/``data:`` blocks as (event name, decoded JSON data)."""
    events: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
        assert name is not None, f"an event block without a name: {block!r}"
        events.append((name, data))
    return events


# A running app ----------------------------------------------------------------------------------


@dataclass
class World:
    """One running app (lifespan entered) with its settings, and helpers to use it."""

    settings: Settings
    client: TestClient
    _serial: Iterator[int] = field(default_factory=itertools.count)

    @property
    def app(self) -> FastAPI:
        app: FastAPI = self.client.app  # type: ignore[assignment]
        return app

    def account(self, prefix: str = "clinician", role: str = "clinician") -> Account:
        """A new user, created directly in the database and signed in through the API."""
        username = unique(f"{prefix}-{next(self._serial)}")
        user_id, password = create_account(self.settings, username, role=role)
        tokens = token_pair(self.client, username, password)
        return Account(
            user_id, username, password, role, bearer(tokens["access_token"]), tokens["refresh_token"]
        )

    def upload(
        self,
        account: Account | None,
        data: bytes | None = None,
        *,
        filename: str = "synthetic.png",
        notes: str | None = None,
        model: str | None = DEMO,
        explain: str | None = None,
        faithfulness: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        fields = (("notes", notes), ("model", model), ("explain", explain), ("faithfulness", faithfulness))
        form = {key: value for key, value in fields if value}
        return self.client.post(
            f"{API}/analyses",
            files={"image": (filename, png_bytes() if data is None else data, "application/octet-stream")},
            data=form,
            params=params,
            headers=account.headers if account else {},
        )

    def analyse(self, account: Account, data: bytes | None = None, **options: Any) -> dict[str, Any]:
        response = self.upload(account, data, **options)
        assert response.status_code == 201, response.text
        analysis: dict[str, Any] = response.json()
        return analysis

    def wait_for_job(self, account: Account, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.client.get(f"{API}/jobs/{job_id}", headers=account.headers)
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            if job["status"] in ("done", "failed"):
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout_s} s"
            time.sleep(0.1)

    # What is stored ------------------------------------------------------------------------------

    @property
    def analyses_dir(self) -> Path:
        return self.settings.home_dir / "analyses"

    def folders(self) -> set[str]:
        """Every entry under $SAHAY_HOME/analyses, hidden staging folders included."""
        return {p.name for p in self.analyses_dir.iterdir()} if self.analyses_dir.exists() else set()

    def record_ids(self) -> set[str]:
        with session_scope(self.settings) as session:
            return set(session.scalars(select(AnalysisRecord.id)))

    def record_count(self) -> int:
        with session_scope(self.settings) as session:
            return int(session.scalar(select(func.count()).select_from(AnalysisRecord)) or 0)

    def assert_consistent(self) -> None:
        """No staging folder is left, and every analysis folder has its row and the reverse."""
        assert self.folders() == self.record_ids()


@contextmanager
def open_world(settings: Settings) -> Iterator[World]:
    # Server errors come back as the 500 response a client would see, not as exceptions here.
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield World(settings, client)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, demo_bundle_dir: Path) -> Iterator[World]:
    """The app most tests share, with the demonstration model installed."""
    settings = make_settings(tmp_path_factory.mktemp("api-world"))
    import_path(demo_bundle_dir, settings)
    with open_world(settings) as shared:
        yield shared


@pytest.fixture
def make_world(sahay_home: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., World]]:
    """Start an app on this test's own SAHAY_HOME: ``make_world(model=False, max_file_mb=0.01)``.

    Several calls share the home (database, files); each gets its own app and settings. The
    demonstration bundle is trained (once a session) only when a test asks for a model.
    """
    with ExitStack() as stack:

        def make(*, model: bool = True, **overrides: Any) -> World:
            settings = make_settings(sahay_home, **overrides)
            if model and not any(b.manifest.name == DEMO for b in installed(settings)):
                import_path(request.getfixturevalue("demo_bundle_dir"), settings)
            return stack.enter_context(open_world(settings))

        yield make


@pytest.fixture(scope="session")
def alice(world: World) -> Account:
    """A clinician who owns the shared analyses."""
    return world.account("alice")


@pytest.fixture(scope="session")
def bob(world: World) -> Account:
    """Another clinician, who must not see alice's analyses."""
    return world.account("bob")


@pytest.fixture(scope="session")
def admin(world: World) -> Account:
    return world.account("admin", role="admin")


@pytest.fixture(scope="module")
def png_analysis(world: World, alice: Account) -> dict[str, Any]:
    """alice's analysis of a synthetic PNG (a disc: one positive, explained finding) with a note."""
    return world.analyse(alice, png_bytes(), notes=NOTE)


@pytest.fixture(scope="module")
def dicom_upload() -> bytes:
    return dicom_bytes(seed=11)


@pytest.fixture(scope="module")
def dicom_analysis(world: World, alice: Account, dicom_upload: bytes) -> dict[str, Any]:
    """alice's analysis of the synthetic image written as DICOM."""
    return world.analyse(alice, dicom_upload, filename="synthetic.dcm")
