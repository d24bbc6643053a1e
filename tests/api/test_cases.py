"""GET /analyses/{id}/similar: similar prior cases from the case library.

The library is filled the way an administrator would, with ``CaseLibrary`` (as `sahay cases add`
does) while the service is stopped: embedded Qdrant allows one client per folder, and a running
service holds it once it has searched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sahay.cases.library import CaseLibrary
from sahay.config import Settings
from sahay.models.registry import import_path
from sahay.store.blobs import BlobStore
from sahay.store.db import session_scope
from sahay.store.records import AnalysisRecord
from tests.api.conftest import API, Account, World, login, make_settings, open_world, png_bytes

# (diagnosis, drawn) of each case added to the library.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("round", {"disc": True, "stripes": False, "seed": 71}),
    ("round", {"disc": True, "stripes": False, "seed": 72}),
    ("striped", {"disc": False, "stripes": True, "seed": 73}),
    ("striped", {"disc": False, "stripes": True, "seed": 74}),
]


@dataclass
class Library:
    world: World
    account: Account
    query: dict[str, Any]
    before: Any
    """The answer to the same search before any case was added."""
    shared: dict[str, Any]
    """An analysis whose upload is byte for byte the case thumbnail made from it."""
    shared_case_id: str


def _upload_path(settings: Settings, analysis_id: str) -> Path:
    with session_scope(settings) as session:
        record = session.get(AnalysisRecord, analysis_id)
        assert record is not None
        return BlobStore(settings.blobs_dir).path(record.image_blob)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, demo_bundle_dir: Path) -> Iterator[Library]:
    settings = make_settings(tmp_path_factory.mktemp("api-cases"))
    import_path(demo_bundle_dir, settings)
    with open_world(settings) as first:
        account = first.account("searcher")
        query = first.analyse(account, png_bytes(disc=True, seed=70))
        before = first.client.get(f"{API}/analyses/{query['id']}/similar", headers=account.headers)
        analyses = [(diagnosis, first.analyse(account, png_bytes(**drawn))) for diagnosis, drawn in CASES]
        # A 224-pixel 8-bit grey PNG: its case thumbnail (at most 256 pixels, 8-bit) is the same PNG.
        shared = first.analyse(account, png_bytes(disc=True, seed=75, size=224))
    with CaseLibrary(settings) as cases:
        for diagnosis, analysis in analyses:
            cases.add_analysis(
                settings.home_dir / "analyses" / analysis["id"] / "analysis.json",
                image_path=_upload_path(settings, analysis["id"]),
                diagnosis=diagnosis,
            )
        shared_case = cases.add_analysis(
            settings.home_dir / "analyses" / shared["id"] / "analysis.json",
            image_path=_upload_path(settings, shared["id"]),
            diagnosis="round",
        )
    with open_world(settings) as second:
        account.headers = login(second.client, account.username, account.password)
        yield Library(second, account, query, before, shared, shared_case.id)


def _similar(library: Library, analysis_id: str, **params: Any) -> Any:
    return library.world.client.get(
        f"{API}/analyses/{analysis_id}/similar", params=params, headers=library.account.headers
    )


def test_an_empty_library_gives_no_items(library: Library) -> None:
    assert library.before.status_code == 200
    assert library.before.json() == {"items": []}


def test_cases_are_ranked_most_similar_first(library: Library) -> None:
    response = _similar(library, library.query["id"], k=3)
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 3
    scores = [item["similarity"] for item in items]
    assert scores == sorted(scores, reverse=True)
    top = items[0]
    assert top["diagnosis"] == "round" and top["positive_findings"] == ["synthetic_disc"]
    # The same fields as `sahay cases search --json`, less the local thumbnail path.
    shared = {"id", "created_at", "modality", "model", "diagnosis", "positive_findings", "tags"}
    assert set(top) == shared | {"similarity", "signals"}
    assert set(top["signals"]) >= {"image", "findings"}


def test_k_limits_the_results(library: Library) -> None:
    assert len(_similar(library, library.query["id"], k=1).json()["items"]) == 1
    everything = _similar(library, library.query["id"], k=50).json()["items"]
    assert len(everything) == len(CASES) + 1


@pytest.mark.parametrize("k", [0, 51, "five"])
def test_a_bad_k_is_422(library: Library, k: Any) -> None:
    response = _similar(library, library.query["id"], k=k)
    assert response.status_code == 422
    assert "k" in response.json()["detail"]


def test_the_shared_upload_and_thumbnail_are_one_blob(library: Library) -> None:
    """The precondition of the test below: the two stores really share a file."""
    settings = library.world.settings
    with CaseLibrary(settings) as cases:
        thumbnail = cases.get(library.shared_case_id).thumbnail
    assert thumbnail == _upload_path(settings, library.shared["id"])


def test_deleting_an_analysis_keeps_a_case_file_with_the_same_content(library: Library) -> None:
    settings = library.world.settings
    with CaseLibrary(settings) as cases:
        thumbnail = cases.get(library.shared_case_id).thumbnail
    response = library.world.client.delete(
        f"{API}/analyses/{library.shared['id']}", headers=library.account.headers
    )
    assert response.status_code == 204
    try:
        assert thumbnail.is_file(), "the case's thumbnail was deleted with the analysis"
        search = _similar(library, library.query["id"], k=50)
        assert search.status_code == 200, search.text
    finally:
        # Leave the other tests a library whose files are all there.
        if not thumbnail.exists():
            BlobStore(settings.blobs_dir).put_bytes(png_bytes(disc=True, seed=75, size=224), ".png")


def test_a_similar_case_opens_with_its_findings_and_thumbnail(library: Library) -> None:
    top = _similar(library, library.query["id"], k=1).json()["items"][0]
    headers = library.account.headers
    case = library.world.client.get(f"{API}/cases/{top['id']}", headers=headers)
    assert case.status_code == 200, case.text
    body = case.json()
    assert body["id"] == top["id"] and body["diagnosis"] == top["diagnosis"]
    positives = [f["label"] for f in body["findings"] if f["positive"]]
    assert positives == top["positive_findings"]
    assert body["findings"][0]["positive"]  # positives first
    thumbnail = library.world.client.get(f"{API}/cases/{top['id']}/thumbnail", headers=headers)
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/png"
    assert thumbnail.content.startswith(b"\x89PNG")
    missing = library.world.client.get(f"{API}/cases/{'f' * 32}", headers=headers)
    assert missing.status_code == 404 and missing.json()["kind"] == "not_found"
