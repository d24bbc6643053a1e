"""`sahay.pacs` and `sahay pacs ...` against a real Orthanc with its DICOMweb plugin (see conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from sahay.config import Settings, reload_settings
from sahay.errors import ArchiveUnavailable, BadInput
from sahay.pacs.client import Archive
from sahay.services.pacs import analyze_study
from tests.e2e.test_cli_analyze import DEMO, run_cli
from tests.factories import chest_phantom, write_dicom, write_dicom_without_pixels
from tests.pacs.conftest import Orthanc, SeededCT, SeededStudy


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(pydicom.dcmread(path).pixel_array)


def _study_files(folder: Path, *, patient_id: str, count: int, study_uid: str | None = None) -> list[Path]:
    """``count`` chest images in one new study and series, as files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    paths = []
    for number in range(1, count + 1):
        pixels = np.round(chest_phantom(128, 112, seed=number).pixels * 4000).astype(np.uint16)
        path = write_dicom(folder / f"image-{number}.dcm", pixels, bits_stored=12, patient_id=patient_id)
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study_uid, series_uid, number
        ds.StudyID, ds.StudyTime = "1", "101500"  # type 2 study attributes, which modalities always write
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# Search (QIDO-RS)


@pytest.mark.slow
@pytest.mark.parametrize(
    "filters",
    [
        {"patient": "PACS-001"},
        {"patient": "Pacs*"},  # a name, with a wildcard
        {"patient": "Pacs?Test"},
        {"study_date": "20240102"},
        {"study_date": "20240101-20241231"},
        {"study_date": "20240101-"},
        {"modality": "cr"},
        {"patient": "PACS-001", "study_date": "-20241231", "modality": "CR"},
    ],
)
def test_search_finds_the_study_by_patient_date_or_modality(
    filters: dict[str, str], seeded_study: SeededStudy, seeded_ct: SeededCT, pacs_settings: Settings
) -> None:
    studies = Archive.from_settings(pacs_settings).search_studies(**filters)
    found = {s.study_uid: s for s in studies}
    assert seeded_study.study_uid in found
    assert seeded_ct.study_uid not in found  # 2004, CT, another patient
    study = found[seeded_study.study_uid]
    assert study.patient_id == "PACS-001" and study.patient_name == "Pacs^Test"
    assert study.date == "20240102" and study.modalities == ["CR"]
    assert study.description == "Chest phantom" and study.instances == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "filters",
    [
        {"patient": "NOBODY"},
        {"patient": "PACS-001", "modality": "CT"},
        {"patient": "PACS-001", "study_date": "20250101-20251231"},
        {"study_date": "19990101-19991231"},
    ],
)
def test_search_with_filters_that_match_nothing_finds_nothing(
    filters: dict[str, str], seeded_study: SeededStudy, seeded_ct: SeededCT, pacs_settings: Settings
) -> None:
    assert Archive.from_settings(pacs_settings).search_studies(**filters) == []


@pytest.mark.slow
def test_search_by_modality_and_date_finds_the_ct(
    seeded_study: SeededStudy, seeded_ct: SeededCT, pacs_settings: Settings
) -> None:
    archive = Archive.from_settings(pacs_settings)
    for filters in ({"modality": "CT"}, {"study_date": "20040119"}, {"patient": "1CT1"}):
        uids = [s.study_uid for s in archive.search_studies(**filters)]
        assert seeded_ct.study_uid in uids and seeded_study.study_uid not in uids, filters
    series = archive.search_series(seeded_ct.study_uid)
    assert [(s.series_uid, s.modality, s.instances) for s in series] == [(seeded_ct.series_uid, "CT", 1)]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"study_date": "2024-01-01"}, "not a DICOM date"),
        ({"study_date": "20241301"}, "not a real date"),
        ({"study_date": "20241231-20240101"}, "ends before it starts"),
        ({"study_date": "-"}, "not a DICOM date"),
        ({"modality": "C R"}, "not a DICOM modality"),
        ({"patient": "a\\b"}, "no backslash"),
        ({"patient": " "}, "not a patient ID or name"),
        ({"limit": 0}, "limit must be"),
    ],
)
def test_bad_filters_are_refused_before_the_archive_is_asked(
    filters: dict[str, object], message: str
) -> None:
    archive = Archive("http://127.0.0.1:9/dicom-web")  # a closed port: any request would fail differently
    with pytest.raises(BadInput, match=message):
        archive.search_studies(**filters)  # type: ignore[arg-type]


# Pull (WADO-RS)


@pytest.mark.slow
def test_pull_a_study_writes_each_instance_by_its_uid(
    seeded_study: SeededStudy, pacs_settings: Settings, tmp_path: Path
) -> None:
    dest = tmp_path / "pulled"
    paths = Archive.from_settings(pacs_settings).retrieve(seeded_study.study_uid, dest=dest)
    assert sorted(p.name for p in paths) == sorted(f"{uid}.dcm" for uid in seeded_study.files)
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in paths)  # no temporary files left
    for path in paths:
        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == path.stem and ds.StudyInstanceUID == seeded_study.study_uid
        assert np.array_equal(ds.pixel_array, _pixels(seeded_study.files[path.stem]))


@pytest.mark.slow
def test_pull_one_series(seeded_ct: SeededCT, pacs_settings: Settings, tmp_path: Path) -> None:
    paths = Archive.from_settings(pacs_settings).retrieve(
        seeded_ct.study_uid, seeded_ct.series_uid, dest=tmp_path / "ct"
    )
    assert [p.name for p in paths] == [f"{seeded_ct.sop_uid}.dcm"]
    assert np.array_equal(_pixels(paths[0]), _pixels(seeded_ct.path))


@pytest.mark.slow
def test_pull_of_an_unknown_study_or_a_bad_uid_is_bad_input(pacs_settings: Settings, tmp_path: Path) -> None:
    archive = Archive.from_settings(pacs_settings)
    with pytest.raises(BadInput, match="is not in the archive"):
        archive.retrieve("1.2.3.4.5.6", dest=tmp_path / "none")
    with pytest.raises(BadInput, match="not a DICOM study UID"):
        archive.retrieve("../../etc", dest=tmp_path / "none")


# Push (STOW-RS)


@pytest.mark.slow
def test_push_a_folder_then_find_and_pull_it(pacs_settings: Settings, tmp_path: Path) -> None:
    paths = _study_files(tmp_path / "outgoing", patient_id="PUSH-001", count=2)
    (tmp_path / "outgoing" / "analysis.json").write_text("{}")  # not DICOM: skipped, not an error
    archive = Archive.from_settings(pacs_settings)

    result = archive.store([tmp_path / "outgoing"])

    sent = {str(pydicom.dcmread(p).SOPInstanceUID) for p in paths}
    assert result.ok and set(result.stored) == sent
    assert len(result.skipped) == 1 and "analysis.json" in result.skipped[0]
    [study] = archive.search_studies(patient="PUSH-001")
    assert study.instances == 2 and study.modalities == ["CR"]
    pulled = archive.retrieve(study.study_uid, dest=tmp_path / "back")
    assert {p.stem for p in pulled} == sent


@pytest.mark.slow
def test_push_datasets_and_refuse_a_named_file_that_is_not_dicom(
    pacs_settings: Settings, tmp_path: Path
) -> None:
    archive = Archive.from_settings(pacs_settings)
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not an image")
    with pytest.raises(BadInput, match=r"notes\.txt is not a DICOM file"):
        archive.store([not_dicom])
    [path] = _study_files(tmp_path / "one", patient_id="PUSH-002", count=1)
    result = archive.store([pydicom.dcmread(path)])
    assert result.ok and result.stored == [str(pydicom.dcmread(path).SOPInstanceUID)]
    assert [s.instances for s in archive.search_studies(patient="PUSH-002")] == [1]


def test_instances_the_archive_refuses_are_reported_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [path] = _study_files(tmp_path, patient_id="REFUSED", count=1)
    uid = str(pydicom.dcmread(path).SOPInstanceUID)
    refusal = requests.Response()
    refusal.status_code = 409
    refusal._content = json.dumps(
        {
            "00081198": {
                "vr": "SQ",
                "Value": [
                    {"00081155": {"vr": "UI", "Value": [uid]}, "00081197": {"vr": "US", "Value": [0xC000]}}
                ],
            }
        }
    ).encode()
    archive = Archive("http://127.0.0.1:9/dicom-web")

    def refuse(datasets: list[pydicom.Dataset]) -> pydicom.Dataset:
        raise requests.HTTPError("409 Conflict", response=refusal)

    monkeypatch.setattr(archive.client, "store_instances", refuse)
    result = archive.store([path])
    assert not result.ok and result.stored == []
    assert [(f.sop_instance_uid, f.reason) for f in result.failed] == [(uid, "cannot understand (0xC000)")]


# Errors and settings


@pytest.mark.slow
def test_wrong_password_is_a_clear_error_without_the_password(
    orthanc: Orthanc,
    pacs_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = "not-the-Password-42"
    monkeypatch.setenv("SAHAY_PACS_PASSWORD", wrong)
    reload_settings()
    code, stdout, stderr = run_cli(capsys, "pacs", "query", "--patient", "PACS-001")
    assert code == 2
    assert "refused Sahay's login (HTTP 401)" in stderr and "SAHAY_PACS_PASSWORD" in stderr
    assert "Traceback" not in stderr
    assert wrong not in stdout + stderr and orthanc.password not in stdout + stderr


def test_no_archive_configured_is_a_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SAHAY_PACS_URL", raising=False)
    reload_settings()
    code, _, stderr = run_cli(capsys, "pacs", "query", "--modality", "CR")
    assert code == 2 and "no archive configured: set SAHAY_PACS_URL" in stderr
    with pytest.raises(BadInput, match="no archive configured"):
        Archive.from_settings(reload_settings())


def test_an_unreachable_archive_is_a_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAHAY_PACS_URL", "http://sahay:secret-in-url@127.0.0.1:9/dicom-web")
    reload_settings()
    code, stdout, stderr = run_cli(capsys, "pacs", "pull", "--study", "1.2.3")
    assert code == 2 and "cannot reach the archive at http://127.0.0.1:9/dicom-web" in stderr
    assert "connection refused" in stderr and "secret-in-url" not in stdout + stderr
    with pytest.raises(ArchiveUnavailable):
        Archive.from_settings(reload_settings()).search_studies()


def test_a_url_that_is_not_http_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHAY_PACS_URL", "file:///etc/passwd")
    with pytest.raises(BadInput, match="must be an http or https address"):
        Archive.from_settings(reload_settings())


# The command line


@pytest.mark.slow
def test_cli_query_pull_and_push(
    seeded_study: SeededStudy,
    pacs_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, stdout, stderr = run_cli(capsys, "pacs", "query", "--patient", "PACS-001", "--json")
    assert code == 0, stderr
    [study] = json.loads(stdout)
    assert study["study_uid"] == seeded_study.study_uid and study["instances"] == 2

    code, stdout, _ = run_cli(capsys, "pacs", "query", "--date", "20240102", "--modality", "CR")
    assert code == 0 and f"study {seeded_study.study_uid}" in stdout
    assert "20240102  PACS-001  Pacs^Test  CR  Chest phantom  (2 instances)" in stdout

    code, stdout, _ = run_cli(capsys, "pacs", "query", "--study", seeded_study.study_uid)
    assert code == 0 and seeded_study.series_uid in stdout and "CR  (2 instances)" in stdout

    code, _, stderr = run_cli(capsys, "pacs", "query", "--date", "yesterday")
    assert code == 2 and "not a DICOM date" in stderr

    out = tmp_path / "pulled"
    code, stdout, stderr = run_cli(
        capsys,
        "pacs",
        "pull",
        "--study",
        seeded_study.study_uid,
        "--series",
        seeded_study.series_uid,
        "-o",
        out,
    )
    assert code == 0 and "Pulled 2 instances" in stdout, stderr
    assert sorted(p.stem for p in out.iterdir()) == sorted(seeded_study.files)

    paths = _study_files(tmp_path / "outgoing", patient_id="PUSH-CLI", count=1)
    code, stdout, stderr = run_cli(capsys, "pacs", "push", *paths)
    assert code == 0 and "Stored 1 instances" in stdout, stderr
    code, stdout, _ = run_cli(capsys, "pacs", "query", "--patient", "PUSH-CLI", "--json")
    assert [s["instances"] for s in json.loads(stdout)] == [1]


# Analyze: pull, analyse, push the SR and Secondary Captures back


@pytest.fixture
def study_to_analyse(orthanc: Orthanc, tmp_path: Path) -> tuple[str, str]:
    """A new study holding one chest image and one report without pixels; returns (study, image UID)."""
    study_uid = generate_uid()
    [image] = _study_files(tmp_path / "analyse", patient_id="ANALYSE-001", count=1, study_uid=study_uid)
    report = write_dicom_without_pixels(tmp_path / "analyse" / "report.dcm")
    ds = pydicom.dcmread(report)
    ds.StudyInstanceUID, ds.PatientID = study_uid, "ANALYSE-001"
    ds.save_as(report, enforce_file_format=True)
    for path in (image, report):
        orthanc.upload(path)
    return study_uid, str(pydicom.dcmread(image).SOPInstanceUID)


@pytest.mark.slow
def test_pacs_analyze_pushes_an_sr_and_secondary_captures_into_the_study(
    study_to_analyse: tuple[str, str],
    demo_installed: Settings,
    pacs_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    study_uid, image_uid = study_to_analyse
    archive = Archive.from_settings(pacs_settings)
    before = archive.search_series(study_uid)

    # The demonstration model was made for synthetic pictures, not chest images: it refuses, and says so.
    code, stdout, stderr = run_cli(
        capsys, "pacs", "analyze", "--study", study_uid, "--model", DEMO, "-o", tmp_path / "a", "--json"
    )
    assert code == 1, stderr
    outcomes = {i["sop_instance_uid"]: i for i in json.loads(stdout)["instances"]}
    assert outcomes[image_uid]["status"] == "refused"
    assert "does not look like an image this model was made for" in outcomes[image_uid]["reason"]
    [report] = [i for uid, i in outcomes.items() if uid != image_uid]
    assert report["status"] == "skipped" and "no pixel data" in report["reason"]
    assert archive.search_series(study_uid) == before  # nothing pushed

    code, stdout, stderr = run_cli(
        capsys, "pacs", "analyze", "--study", study_uid, "--model", DEMO, "-o", tmp_path / "b", "--force"
    )
    assert code == 0, stderr
    assert "Pushed" in stdout and "analysed" in stdout

    series = {s.series_uid: s for s in archive.search_series(study_uid)}
    new = [s for uid, s in series.items() if uid not in {b.series_uid for b in before}]
    assert sorted(s.modality or "" for s in new) == ["OT", "SR"]
    [sr_series] = [s for s in new if s.modality == "SR"]
    [sr_path] = archive.retrieve(study_uid, sr_series.series_uid, dest=tmp_path / "sr")
    sr = pydicom.dcmread(sr_path)
    assert sr.StudyInstanceUID == study_uid and sr.PatientID == "ANALYSE-001"
    referenced = {str(e.value) for e in sr.iterall() if e.keyword == "ReferencedSOPInstanceUID"}
    assert image_uid in referenced
    [sc_series] = [s for s in new if s.modality == "OT"]
    for path in archive.retrieve(study_uid, sc_series.series_uid, dest=tmp_path / "sc"):
        sc = pydicom.dcmread(path)
        assert sc.Manufacturer == "Sahay" and sc.pixel_array.ndim == 3

    # A second run passes over Sahay's own Secondary Captures instead of analysing them.
    again = analyze_study(archive, study_uid, model=DEMO, force=True, out_dir=tmp_path / "c")
    reasons = {i.sop_instance_uid: i.reason for i in again.instances if i.status == "skipped"}
    assert any(r == "a result Sahay made earlier" for r in reasons.values())
    assert [i.sop_instance_uid for i in again.analysed] == [image_uid]
    assert (tmp_path / "c" / image_uid / "analysis.json").is_file()
    copies = sorted(p.name.split("-")[0] for p in (tmp_path / "c" / image_uid / "dicom").iterdir())
    assert copies == ["ot"] * (len(again.analysed[0].results) - 1) + ["sr"]


def test_a_hostile_instance_in_a_pulled_study_is_refused_and_the_others_go_on(
    demo_installed: Settings, tmp_path: Path
) -> None:
    """Pulled files pass the reader's limits: a deeply nested or item-stuffed instance is refused
    with its reason, instead of exhausting memory or aborting the whole study."""
    from sahay.pacs.client import StoreResult
    from tests.imaging.test_hostile_dicom import with_empty_items, with_nesting

    served = tmp_path / "served"
    served.mkdir()
    with_nesting(served / "1.2.3.1.dcm", 20_000, undefined_length=True)
    with_empty_items(served / "1.2.3.2.dcm", 500_000)
    write_dicom_without_pixels(served / "1.2.3.3.dcm")

    class FolderArchive:  # an archive that hands over files already on disk: the error path only
        def __init__(self) -> None:
            self.stored: list[Path] = []

        def retrieve(self, study_uid: str, series_uid: str | None = None, *, dest: Path) -> list[Path]:
            dest.mkdir(parents=True)
            return [Path(shutil.copy(p, dest)) for p in sorted(served.iterdir())]

        def store(self, items: list[Path]) -> StoreResult:
            self.stored += items
            return StoreResult()

    archive = FolderArchive()
    result = analyze_study(archive, "1.2.3", model=DEMO, out_dir=tmp_path / "out", settings=demo_installed)  # type: ignore[arg-type]

    outcomes = {i.sop_instance_uid: i for i in result.instances}
    assert outcomes["1.2.3.1"].status == "refused"
    assert "too deeply nested" in (outcomes["1.2.3.1"].reason or "")
    assert outcomes["1.2.3.2"].status == "refused"
    assert "500,000 sequence items" in (outcomes["1.2.3.2"].reason or "")
    assert outcomes["1.2.3.3"].status == "skipped"
    assert archive.stored == []
