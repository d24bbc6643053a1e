"""Analyses: upload (synchronous and as a job), refusals that leave nothing behind, the list,
one analysis, its image and heatmaps, and deletion."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from sahay.about import DISCLAIMER
from sahay.models.registry import import_path
from sahay.store.blobs import BlobStore
from sahay.store.db import session_scope
from sahay.store.records import AnalysisRecord
from sahay.training.synthetic import LABELS
from tests.api.conftest import (
    API,
    DEMO,
    NOTE,
    Account,
    World,
    dicom_bytes,
    make_settings,
    open_world,
    png_bytes,
    png_image,
    synthetic_pixels,
)

CT_SMALL = Path(str(get_testdata_file("CT_small.dcm", download=False)))
NOTE_MARKER = "zebra-marker-7731"


def _blobs(world: World) -> list[Path]:
    root = world.settings.blobs_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _record(world: World, analysis_id: str) -> AnalysisRecord | None:
    with session_scope(world.settings) as session:
        return session.get(AnalysisRecord, analysis_id)


# Uploading --------------------------------------------------------------------------------------


def test_a_png_upload_is_analysed_and_stored(
    world: World, alice: Account, png_analysis: dict[str, Any]
) -> None:
    analysis = png_analysis
    assert analysis["owner"] == alice.username
    assert analysis["notes_text"] == NOTE
    assert analysis["source_format"] == "png"
    assert analysis["model"]["name"] == DEMO and analysis["model"]["demonstration"] is True
    assert analysis["disclaimer"] == DISCLAIMER
    assert analysis["image"]["rows"] == analysis["image"]["columns"] == 320
    findings = {f["label"]: f for f in analysis["findings"]}
    assert set(findings) == set(LABELS)
    assert findings["synthetic_disc"]["positive"] and findings["synthetic_disc"]["explanation"]
    assert not findings["synthetic_stripes"]["positive"]
    assert analysis["notes"] is not None, "the note was read"

    record = _record(world, analysis["id"])
    assert record is not None and record.owner_id == alice.id and record.notes_text == NOTE
    assert record.positives == ["synthetic_disc"]
    assert (world.analyses_dir / analysis["id"] / "analysis.json").is_file()
    assert BlobStore(world.settings.blobs_dir).path(record.image_blob).read_bytes() == png_bytes()
    world.assert_consistent()


def test_a_dicom_upload_is_analysed(world: World, alice: Account, dicom_analysis: dict[str, Any]) -> None:
    assert dicom_analysis["source_format"] == "dicom"
    assert dicom_analysis["image"]["format"] == "dicom"
    assert dicom_analysis["image"]["modality"] == "OT"
    assert dicom_analysis["image"]["identifiers"] is None, "identifiers are dropped"
    assert dicom_analysis["notes_text"] is None
    assert dicom_analysis["owner"] == alice.username
    positives = [f["label"] for f in dicom_analysis["findings"] if f["positive"]]
    assert positives == ["synthetic_disc"]


def test_faithfulness_is_scored_only_when_asked(world: World, alice: Account) -> None:
    plain = world.analyse(alice, png_bytes(seed=23))
    scored = world.analyse(alice, png_bytes(seed=23), faithfulness="true")
    for analysis, wanted in ((plain, False), (scored, True)):
        explained = [f["explanation"] for f in analysis["findings"] if f["explanation"]]
        assert explained and all((e["faithfulness"] is not None) == wanted for e in explained)
        assert all(e["side_by_side_png"] is None for e in explained)
    assert world.upload(alice, png_bytes(seed=23), faithfulness="maybe").status_code == 422


def test_the_upload_name_cannot_reach_outside_the_home(world: World, alice: Account) -> None:
    analysis = world.analyse(alice, png_bytes(seed=21), filename="../../outside/evil name.png")
    assert "/" not in analysis["image"]["filename"] and ".." not in analysis["image"]["filename"]
    assert not (world.settings.home_dir.parent / "outside").exists()
    world.assert_consistent()


def test_a_blank_note_is_no_note(world: World, alice: Account) -> None:
    analysis = world.analyse(alice, png_bytes(seed=22), notes="   \n ")
    assert analysis["notes_text"] is None


def test_background_upload_is_a_job_that_ends_with_the_analysis(
    world: World, alice: Account, bob: Account, admin: Account
) -> None:
    response = world.upload(alice, png_bytes(seed=23), notes=NOTE, params={"background": "true"})
    assert response.status_code == 202
    job = response.json()
    assert job["status"] in ("queued", "running") and job["analysis_id"] is None
    # A job is as private as the analysis it makes.
    assert world.client.get(f"{API}/jobs/{job['id']}", headers=bob.headers).status_code == 404
    done = world.wait_for_job(alice, job["id"])
    assert done["status"] == "done", done
    assert done["error"] is None
    analysis = world.client.get(f"{API}/analyses/{done['analysis_id']}", headers=alice.headers)
    assert analysis.status_code == 200
    assert analysis.json()["notes_text"] == NOTE
    assert world.client.get(f"{API}/jobs/{job['id']}", headers=admin.headers).json()["status"] == "done"
    assert world.client.get(f"{API}/jobs/{'0' * 32}", headers=alice.headers).status_code == 404


def test_background_must_be_a_boolean(world: World, alice: Account) -> None:
    response = world.upload(alice, params={"background": "sometimes"})
    assert response.status_code == 422
    assert "background" in response.json()["detail"]


# Refusals ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def empty_world(tmp_path_factory: pytest.TempPathFactory, demo_bundle_dir: Path) -> Iterator[World]:
    """An app of its own in which no upload ever succeeds, so anything left behind shows."""
    settings = make_settings(tmp_path_factory.mktemp("api-refusals"))
    import_path(demo_bundle_dir, settings)
    with open_world(settings) as refusing:
        yield refusing


@pytest.fixture(scope="module")
def uploader(empty_world: World) -> Account:
    return empty_world.account("uploader")


def _assert_nothing_left(world: World) -> None:
    assert world.folders() == set(), "no analysis or staging folder is left"
    assert world.record_count() == 0
    assert _blobs(world) == []


REFUSED: dict[str, tuple[dict[str, Any], set[int], str]] = {
    "text-file": (
        {"data": b"Just some text, not an image.\n", "filename": "letter.txt"},
        {415},
        "letter.txt",
    ),
    "empty-file": ({"data": b"", "filename": "empty.png"}, {400}, "empty"),
    "corrupt-dicom": (
        {"data": dicom_bytes()[:-5000], "filename": "broken.dcm"},
        {400},
        "broken.dcm: element (7FE0,0010) declares a value of 204,800 bytes",
    ),
    "dicom-without-pixels": (
        {"data": b"\0" * 128 + b"DICM" + bytes(range(256)) * 4, "filename": "odd.dcm"},
        {400},
        "the file is truncated or corrupt",
    ),
    "truncated-png": ({"data": png_bytes()[:2000], "filename": "cut.png"}, {400}, "truncated or corrupt"),
    "unknown-model": ({"model": "no-such-model"}, {404}, "no-such-model"),
    "default-model-missing": ({"model": None}, {404}, "could not download xrv-densenet121-res224-all"),
    "out-of-domain": (
        {"data": CT_SMALL.read_bytes(), "filename": "CT_small.dcm"},
        {422},
        "does not look like an image this model was made for",
    ),
    "unknown-explanation": ({"explain": "astrology"}, {400}, "unknown explanation method 'astrology'"),
    "note-too-long": ({"notes": NOTE * 400}, {400}, "the limit is 20000"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_upload_leaves_nothing_and_no_note_in_the_logs(
    empty_world: World, uploader: Account, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    options, statuses, says = REFUSED[case]
    options = {"notes": NOTE, **options}
    with caplog.at_level(logging.DEBUG):
        response = empty_world.upload(uploader, **options)
    assert response.status_code in statuses, response.text
    assert says in response.json()["detail"]
    assert NOTE_MARKER not in response.text
    assert NOTE_MARKER not in caplog.text
    _assert_nothing_left(empty_world)


def test_a_text_file_is_415(empty_world: World, uploader: Account) -> None:
    response = empty_world.upload(uploader, b"Just some text, not an image.\n", filename="letter.txt")
    assert response.status_code == 415


def test_the_model_is_an_installed_name_not_a_server_path(
    world: World, alice: Account, demo_bundle_dir: Path
) -> None:
    assert not demo_bundle_dir.is_relative_to(world.settings.home_dir)
    before = world.record_count()
    response = world.upload(alice, png_bytes(seed=24), model=str(demo_bundle_dir))
    assert response.status_code == 404, "a bundle outside the models folder is not installed"
    assert world.record_count() == before


def test_the_model_field_reveals_nothing_about_the_servers_files(world: World, alice: Account) -> None:
    details = {}
    for name in ("/etc", "/no/such/folder", "~"):
        response = world.upload(alice, png_bytes(seed=25), model=name)
        assert response.status_code == 404
        details[name] = response.json()["detail"].replace(name, "NAME")
    assert len(set(details.values())) == 1, details
    assert str(Path.home()) not in details["~"]


def test_a_refused_background_upload_ends_as_a_failed_job(
    empty_world: World, uploader: Account, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = empty_world.upload(uploader, b"not an image", notes=NOTE, params={"background": "true"})
        assert response.status_code == 202
        job = empty_world.wait_for_job(uploader, response.json()["id"])
    assert job["status"] == "failed" and job["analysis_id"] is None
    assert "is not a DICOM, PNG, JPEG or TIFF file" in job["error"]
    assert NOTE_MARKER not in job["error"] and NOTE_MARKER not in caplog.text
    _assert_nothing_left(empty_world)


@pytest.mark.parametrize(
    ("request_kwargs", "names"),
    [
        ({"data": {"model": DEMO}}, "image"),
        ({"files": {"picture": ("x.png", b"x")}}, "image"),
        ({"json": {"image": "x"}}, "image"),
    ],
    ids=["no-file", "wrong-field", "json-body"],
)
def test_an_upload_without_an_image_is_422(
    empty_world: World, uploader: Account, request_kwargs: dict[str, Any], names: str
) -> None:
    response = empty_world.client.post(f"{API}/analyses", headers=uploader.headers, **request_kwargs)
    assert response.status_code == 422
    assert names in response.json()["detail"]
    _assert_nothing_left(empty_world)


def test_a_file_over_the_size_limit_is_413(make_world: Callable[..., World]) -> None:
    small = make_world(max_file_mb=0.01)
    account = small.account()
    data = png_bytes()
    assert len(data) > small.settings.max_file_bytes
    response = small.upload(account, data, filename="large.png", notes=NOTE)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "large.png" in detail and "0.01 MB" in detail and "SAHAY_MAX_FILE_MB" in detail
    assert NOTE_MARKER not in response.text
    # One far over the limit is refused from its declared length, before it is read.
    huge = small.upload(account, b"\0" * (small.settings.max_file_bytes + 1_100_000), filename="huge.png")
    assert huge.status_code == 413
    assert "0.01 MB" in huge.json()["detail"]
    _assert_nothing_left(small)


def test_an_image_over_the_pixel_limit_is_refused(make_world: Callable[..., World]) -> None:
    limited = make_world(max_pixels=10_000)
    account = limited.account()
    response = limited.upload(account, png_bytes(), filename="wide.png", notes=NOTE)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "wide.png" in detail and "10,000 pixels" in detail and "SAHAY_MAX_PIXELS" in detail
    _assert_nothing_left(limited)


# Listing and reading ----------------------------------------------------------------------------


def test_the_list_is_paginated_and_shows_only_the_callers_analyses(world: World, admin: Account) -> None:
    lister, other = world.account("lister"), world.account("other")
    mine = [world.analyse(lister, png_bytes(seed=30 + i))["id"] for i in range(3)]
    theirs = world.analyse(other, png_bytes(seed=40))["id"]

    first = world.client.get(f"{API}/analyses", params={"limit": 2}, headers=lister.headers)
    assert first.status_code == 200
    page = first.json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    assert [item["id"] for item in page["items"]] == mine[::-1][:2], "newest first"
    rest = world.client.get(
        f"{API}/analyses", params={"limit": 2, "offset": 2}, headers=lister.headers
    ).json()
    assert [item["id"] for item in rest["items"]] == mine[:1]
    item = page["items"][0]
    assert set(item) == {"id", "created_at", "filename", "model", "modality", "positives", "owner"}
    assert (
        item["owner"] == lister.username
        and item["model"] == DEMO
        and item["positives"] == ["synthetic_disc"]
        and item["filename"] == "synthetic.png"
    )

    assert world.client.get(f"{API}/analyses", headers=other.headers).json()["total"] == 1
    seen: list[str] = []
    owners: dict[str, str] = {}
    everything = world.client.get(f"{API}/analyses", params={"limit": 100}, headers=admin.headers).json()
    while True:
        seen += [item["id"] for item in everything["items"]]
        owners |= {item["id"]: item["owner"] for item in everything["items"]}
        if len(seen) >= everything["total"]:
            break
        everything = world.client.get(
            f"{API}/analyses", params={"limit": 100, "offset": len(seen)}, headers=admin.headers
        ).json()
    assert everything["total"] == world.record_count()
    assert {*mine, theirs} <= set(seen)
    # An administrator's history says whose analysis each row is.
    assert owners[theirs] == other.username and owners[mine[0]] == lister.username


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}],
    ids=["limit-0", "limit-101", "limit-text", "offset-negative"],
)
def test_bad_list_parameters_are_422(world: World, alice: Account, params: dict[str, Any]) -> None:
    response = world.client.get(f"{API}/analyses", params=params, headers=alice.headers)
    assert response.status_code == 422
    assert next(iter(params)) in response.json()["detail"]


def test_the_owner_and_an_admin_read_an_analysis(
    world: World, alice: Account, admin: Account, png_analysis: dict[str, Any]
) -> None:
    own = world.client.get(f"{API}/analyses/{png_analysis['id']}", headers=alice.headers)
    assert own.status_code == 200
    assert own.json() == png_analysis
    as_admin = world.client.get(f"{API}/analyses/{png_analysis['id']}", headers=admin.headers)
    assert as_admin.status_code == 200
    assert as_admin.json()["owner"] == alice.username


@pytest.mark.parametrize("analysis_id", ["0" * 32, "not-an-id", "..%2F..%2Fsecret.key", "A" * 32])
def test_an_unknown_analysis_is_404(world: World, alice: Account, analysis_id: str) -> None:
    response = world.client.get(f"{API}/analyses/{analysis_id}", headers=alice.headers)
    assert response.status_code == 404
    # An encoded path reaches no route at all; every other id gets the API's own answer.
    assert response.json()["detail"] in (f"no analysis {analysis_id!r}", "Not Found")


# The image and heatmaps -------------------------------------------------------------------------


def test_the_image_is_the_analysed_png(world: World, alice: Account, png_analysis: dict[str, Any]) -> None:
    response = world.client.get(f"{API}/analyses/{png_analysis['id']}/image", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "private, no-store"
    image = png_image(response.content)
    assert image.size == (png_analysis["image"]["columns"], png_analysis["image"]["rows"])
    expected = np.round(synthetic_pixels() * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(image), expected)


def test_window_and_level_change_a_dicom_image(
    world: World, alice: Account, dicom_analysis: dict[str, Any]
) -> None:
    url = f"{API}/analyses/{dicom_analysis['id']}/image"

    def pixels(**params: float) -> np.ndarray:
        response = world.client.get(url, params=params, headers=alice.headers)
        assert response.status_code == 200, response.text
        image = png_image(response.content)
        assert image.size == (dicom_analysis["image"]["columns"], dicom_analysis["image"]["rows"])
        return np.asarray(image).astype(int)

    default = pixels()
    narrow = pixels(window_center=1600, window_width=400)
    assert not np.array_equal(default, narrow)
    assert (narrow == 0).mean() > (default == 0).mean(), "a narrow window clips more to black"
    assert np.array_equal(pixels(window_center=1600), default), "a centre alone changes nothing"


@pytest.mark.parametrize(
    "params",
    [
        {"window_center": 40, "window_width": 0},
        {"window_center": 40, "window_width": -10},
        {"window_center": "x"},
    ],
    ids=["width-0", "width-negative", "centre-text"],
)
def test_bad_window_parameters_are_422(
    world: World, alice: Account, dicom_analysis: dict[str, Any], params: dict[str, Any]
) -> None:
    response = world.client.get(
        f"{API}/analyses/{dicom_analysis['id']}/image", params=params, headers=alice.headers
    )
    assert response.status_code == 422
    assert "window_" in response.json()["detail"]


def test_the_heatmap_overlay_is_the_written_png(
    world: World, alice: Account, png_analysis: dict[str, Any]
) -> None:
    response = world.client.get(
        f"{API}/analyses/{png_analysis['id']}/heatmaps/synthetic_disc", headers=alice.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "private, no-store"
    finding = next(f for f in png_analysis["findings"] if f["label"] == "synthetic_disc")
    written = world.analyses_dir / png_analysis["id"] / finding["explanation"]["overlay_png"]
    assert response.content == written.read_bytes()
    png_image(response.content)


def test_the_heatmap_layer_is_rgba_at_the_image_size(
    world: World, alice: Account, png_analysis: dict[str, Any]
) -> None:
    response = world.client.get(
        f"{API}/analyses/{png_analysis['id']}/heatmaps/synthetic_disc/layer", headers=alice.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    layer = png_image(response.content)
    assert layer.mode == "RGBA"
    assert layer.size == (png_analysis["image"]["columns"], png_analysis["image"]["rows"])
    alpha = np.asarray(layer)[..., 3]
    assert alpha.max() > 200 and alpha.min() < 50, "alpha follows the attribution"


@pytest.mark.parametrize(
    ("label", "says"),
    [("synthetic_stripes", "has no heatmap"), ("no_such_label", "no finding 'no_such_label'")],
)
@pytest.mark.parametrize("suffix", ["", "/layer"])
def test_a_heatmap_of_an_unexplained_or_unknown_label_is_404(
    world: World, alice: Account, png_analysis: dict[str, Any], label: str, says: str, suffix: str
) -> None:
    response = world.client.get(
        f"{API}/analyses/{png_analysis['id']}/heatmaps/{label}{suffix}", headers=alice.headers
    )
    assert response.status_code == 404
    assert says in response.json()["detail"]


# Deleting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("deleter", ["owner", "admin"])
def test_the_owner_or_an_admin_deletes_an_analysis_and_its_files(
    world: World, alice: Account, admin: Account, deleter: str
) -> None:
    analysis = world.analyse(alice, png_bytes(seed=50 if deleter == "owner" else 51), notes=NOTE)
    record = _record(world, analysis["id"])
    assert record is not None
    blob = BlobStore(world.settings.blobs_dir)
    assert blob.exists(record.image_blob)
    headers = (alice if deleter == "owner" else admin).headers

    response = world.client.delete(f"{API}/analyses/{analysis['id']}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert world.client.get(f"{API}/analyses/{analysis['id']}", headers=alice.headers).status_code == 404
    assert not (world.analyses_dir / analysis["id"]).exists()
    assert _record(world, analysis["id"]) is None
    assert not blob.exists(record.image_blob), "the upload, used by no other analysis, is removed"
    assert world.client.delete(f"{API}/analyses/{analysis['id']}", headers=headers).status_code == 404
    world.assert_consistent()


def test_another_clinician_cannot_delete(world: World, alice: Account, bob: Account) -> None:
    analysis = world.analyse(alice, png_bytes(seed=52))
    response = world.client.delete(f"{API}/analyses/{analysis['id']}", headers=bob.headers)
    assert response.status_code == 404
    assert response.json()["detail"] == f"no analysis {analysis['id']!r}"
    assert world.client.get(f"{API}/analyses/{analysis['id']}", headers=alice.headers).status_code == 200
    assert (world.analyses_dir / analysis["id"] / "analysis.json").is_file()


def test_deleting_keeps_an_upload_another_analysis_uses(world: World, alice: Account) -> None:
    data = png_bytes(seed=53)
    first, second = world.analyse(alice, data), world.analyse(alice, data)
    assert world.client.delete(f"{API}/analyses/{first['id']}", headers=alice.headers).status_code == 204
    image = world.client.get(f"{API}/analyses/{second['id']}/image", headers=alice.headers)
    assert image.status_code == 200
    assert world.client.delete(f"{API}/analyses/{second['id']}", headers=alice.headers).status_code == 204


def test_force_analyses_an_out_of_domain_image_with_a_warning(world: World, alice: Account) -> None:
    refused = world.client.post(
        f"{API}/analyses",
        files={"image": ("CT_small.dcm", CT_SMALL.read_bytes(), "application/dicom")},
        data={"model": DEMO},
        headers=alice.headers,
    )
    body = refused.json()
    assert refused.status_code == 422 and body["kind"] == "out_of_domain"
    assert body["message"].startswith("CT_small.dcm does not look like an image this model was made for")
    assert (
        body["detail"]
        == f"{body['message']} Choose another model (the model field), or analyse it anyway (force=true)."
    )
    assert "--force" not in body["detail"]

    response = world.client.post(
        f"{API}/analyses",
        files={"image": ("CT_small.dcm", CT_SMALL.read_bytes(), "application/dicom")},
        data={"model": DEMO, "force": "true"},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    analysis = response.json()
    assert analysis["quality"]["forced"] is True
    assert any(w.startswith("Analysed at the user's request") for w in analysis["warnings"])


def test_start_up_removes_what_interrupted_uploads_left(
    sahay_home: Path, make_world: Callable[..., World]
) -> None:
    import os
    import time

    root = sahay_home / "analyses"
    stale_staging, orphan, young_staging = root / ".upload-abc", root / ("f" * 32), root / ".upload-new"
    young_orphan = root / ("e" * 32)
    for folder in (stale_staging, orphan, young_staging, young_orphan):
        (folder / "x").mkdir(parents=True)
    old = time.time() - 7200
    for folder in (stale_staging, orphan):
        os.utime(folder, (old, old))
    make_world(model=False)
    assert not stale_staging.exists() and not orphan.exists()
    assert not young_staging.exists(), "at start-up no upload is in progress, however young its folder"
    assert young_orphan.exists(), "a young analysis folder may be between its move and its row"
