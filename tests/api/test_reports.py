"""GET /analyses/{id}/reports/{format}: every format as a download."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pydicom
import pytest
from pydicom.uid import SecondaryCaptureImageStorage

from sahay.about import DISCLAIMER
from tests.api.conftest import API, Account, World, dicom_bytes, study_uid


def _report(world: World, account: Account, analysis: dict[str, Any], report_format: str) -> Any:
    return world.client.get(
        f"{API}/analyses/{analysis['id']}/reports/{report_format}", headers=account.headers
    )


def _assert_download(response: Any, media_type: str, suffix: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.endswith(f'{suffix}"')
    assert response.headers["cache-control"] == "private, no-store"


def test_html(world: World, alice: Account, png_analysis: dict[str, Any]) -> None:
    response = _report(world, alice, png_analysis, "html")
    _assert_download(response, "text/html", ".html")
    assert response.text.lstrip().lower().startswith("<!doctype html")
    assert DISCLAIMER in response.text
    assert "DEMONSTRATION MODEL" in response.text


def test_pdf(world: World, alice: Account, png_analysis: dict[str, Any]) -> None:
    response = _report(world, alice, png_analysis, "pdf")
    _assert_download(response, "application/pdf", ".pdf")
    assert response.content.startswith(b"%PDF")


def test_fhir(world: World, alice: Account, png_analysis: dict[str, Any]) -> None:
    response = _report(world, alice, png_analysis, "fhir")
    _assert_download(response, "application/fhir+json", ".fhir.json")
    bundle = json.loads(response.content)
    assert bundle["resourceType"] == "Bundle"
    kinds = {entry["resource"]["resourceType"] for entry in bundle["entry"]}
    assert "DiagnosticReport" in kinds


def test_dicom_sr_refers_to_the_uploaded_study(
    world: World, alice: Account, dicom_analysis: dict[str, Any], dicom_upload: bytes
) -> None:
    response = _report(world, alice, dicom_analysis, "dicom-sr")
    _assert_download(response, "application/dicom", ".dcm")
    sr = pydicom.dcmread(io.BytesIO(response.content))
    assert sr.Modality == "SR"
    assert sr.StudyInstanceUID == study_uid(dicom_upload)
    assert "PatientAddress" not in sr


def test_dicom_sc_is_one_capture_per_explained_finding(
    world: World, alice: Account, dicom_analysis: dict[str, Any], dicom_upload: bytes
) -> None:
    response = _report(world, alice, dicom_analysis, "dicom-sc")
    _assert_download(response, "application/dicom", ".dcm")
    capture = pydicom.dcmread(io.BytesIO(response.content))
    assert capture.SOPClassUID == SecondaryCaptureImageStorage
    assert capture.StudyInstanceUID == study_uid(dicom_upload)


def test_several_captures_come_as_a_zip(world: World, alice: Account) -> None:
    upload = dicom_bytes(disc=True, stripes=True, seed=12)
    analysis = world.analyse(alice, upload, filename="both.dcm")
    explained = [f for f in analysis["findings"] if f["explanation"]]
    assert len(explained) == 2, "both findings drawn, both explained"
    response = _report(world, alice, analysis, "dicom-sc")
    _assert_download(response, "application/zip", ".zip")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        assert len(names) == 2 and all(name.endswith(".dcm") for name in names)
        for name in names:
            capture = pydicom.dcmread(io.BytesIO(archive.read(name)))
            assert capture.StudyInstanceUID == study_uid(upload)


@pytest.mark.parametrize("report_format", ["dicom-sr", "dicom-sc"])
def test_dicom_formats_of_a_png_upload_are_refused_clearly(
    world: World, alice: Account, png_analysis: dict[str, Any], report_format: str
) -> None:
    response = _report(world, alice, png_analysis, report_format)
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"{report_format} needs a DICOM upload; this analysis is of a png file",
        "kind": "bad_input",
        "message": f"{report_format} needs a DICOM upload; this analysis is of a png file",
    }


@pytest.mark.parametrize("report_format", ["dicom-sr", "dicom-sc"])
def test_dicom_reports_of_an_upload_without_a_study_id(
    world: World, alice: Account, report_format: str
) -> None:
    """The factory's DICOM leaves out the Type 2 Study ID, as many real files do."""
    upload = dicom_bytes(study_id=None, seed=13)
    assert "StudyID" not in pydicom.dcmread(io.BytesIO(upload))
    analysis = world.analyse(alice, upload, filename="no-study-id.dcm")
    response = _report(world, alice, analysis, report_format)
    _assert_download(response, "application/dicom", ".dcm")
    assert pydicom.dcmread(io.BytesIO(response.content)).StudyInstanceUID == study_uid(upload)


@pytest.mark.parametrize("report_format", ["docx", "HTML", "dicom"])
def test_an_unknown_format_is_refused(
    world: World, alice: Account, png_analysis: dict[str, Any], report_format: str
) -> None:
    response = _report(world, alice, png_analysis, report_format)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert f"unknown report format {report_format!r}" in detail
    assert "html, pdf, fhir, dicom-sr, dicom-sc" in detail
