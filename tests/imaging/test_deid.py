"""DICOM de-identification (PS3.15 Annex E basic profile): every identifier goes, UIDs stay consistent."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID

from sahay.errors import BadInput
from sahay.imaging.deid import (
    BASIC_PROFILE,
    BASIC_PROFILE_CODES,
    SAHAY_ADDITIONS,
    Action,
    Deidentifier,
    DeidOptions,
    deidentify_path,
    load_secret,
    parse_tag,
)
from sahay.imaging.reader import read_image
from tests.e2e.test_cli_analyze import run_cli
from tests.factories import write_dicom

SECRET = b"test-secret-0123456789abcdef"
PYDICOM_UID_ROOT = "1.2.826.0.1.3680043.8.498."  # generate_uid's, used by the factories
PIXELS = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 50).astype(np.uint16)
FAKE_DATE, FAKE_TIME, FAKE_DATETIME = "19700101", "121314", "19700101121314"
FAKE_NUMBER = 4242
PRIVATE_GROUP = 0x0009
FAKE_UID_ROOT = "1.2.826.0.1.3680043.10.999."
PRIVATE_CREATOR = "FAKE CREATOR"

# Command-set and file-meta elements cannot live in a stored dataset; pydicom writes no padding item.
_NOT_IN_A_FILE = {0x0000, 0x0002, 0xFFFC}


def fake_value(vr: str, label: str) -> object:
    """A distinctive fake value of the VR; every text one contains "fake" so a leak is easy to find."""
    vr = vr[:2]
    text = {
        "PN": f"Fakename^{label}",
        "CS": "FAKECS",
        "AE": "FAKEAE",
        "SH": "FAKEID123",
        "DA": FAKE_DATE,
        "TM": FAKE_TIME,
        "DT": FAKE_DATETIME,
        "AS": "042Y",
        "DS": f"{FAKE_NUMBER}.5",
        "IS": str(FAKE_NUMBER * 100 + 42),
    }
    if vr in text:
        return text[vr]
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return FAKE_NUMBER
    if vr in ("FL", "FD"):
        return FAKE_NUMBER + 0.5
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b"FAKE-BYTES-" + label.encode()[:4].ljust(4, b"-")
    return f"FAKE-TEXT-{label}"  # LO, LT, ST, UT, UC, UR


def nested_item(reference: str) -> Dataset:
    """A sequence item holding identifiers, a reference to another instance and a private element."""
    item = Dataset()
    item.PatientName = "Fakename^Nested"
    item.PatientID = "FAKEID123"
    item.AccessionNumber = "FAKEACC"
    item.RequestedProcedureID = "FAKEREQ"
    item.StudyDate = FAKE_DATE
    item.InstitutionName = "FAKE-TEXT-INSTITUTION"
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    item.ReferencedSOPInstanceUID = reference
    item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True).add_new(0x01, "LO", "FAKE-PRIVATE-NESTED")
    return item


def add_fake_identifiers(ds: Dataset, reference: str) -> None:
    """Set every attribute of the table to a fake value (sequences get an identifying item that
    references ``reference``), and add private blocks and an overlay."""
    for number, keyword in enumerate(sorted({**BASIC_PROFILE_CODES, **SAHAY_ADDITIONS})):
        tag = Tag(keyword)
        if tag.group in _NOT_IN_A_FILE or keyword in (
            "SOPInstanceUID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
        ):
            continue
        vr = dictionary_VR(tag)
        if vr == "SQ":
            ds[tag] = DataElement(tag, vr, Sequence([nested_item(reference)]))
        elif vr == "UI":
            ds[tag] = DataElement(tag, vr, f"{FAKE_UID_ROOT}{number}")
        else:
            ds[tag] = DataElement(tag, vr, fake_value(vr, keyword))
    # Sequences the table does not list are kept and cleaned item by item.
    series_item = Dataset()
    series_item.SeriesInstanceUID = ds.SeriesInstanceUID
    series_item.ReferencedInstanceSequence = Sequence([nested_item(reference)])
    ds.ReferencedSeriesSequence = Sequence([series_item])
    ds.OtherPatientIDsSequence[0].IssuerOfPatientID = "FAKE-TEXT-ISSUER"
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", "FAKE-PRIVATE")
    block.add_new(0x02, "UI", f"{FAKE_UID_ROOT}0")
    ds.private_block(0x0011, "OTHER CREATOR", create=True).add_new(0x10, "LO", "FAKE-PRIVATE-OTHER")
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 4)  # Overlay Data
    ds.add_new(0x60004000, "LT", "FAKE-OVERLAY-COMMENT")
    ds.PatientAddress = "FAKE-TEXT-ADDRESS"


def identified_study(folder: Path, *, patient_id: str = "FAKEID123", files: int = 2) -> list[Path]:
    """``files`` instances of one study, each full of fake identifiers; the second references the first."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_dicom(folder / f"image{n}.dcm", PIXELS, patient_id=patient_id) for n in range(files)]
    first = dcmread(paths[0])
    for number, path in enumerate(paths):
        ds = dcmread(path)
        add_fake_identifiers(ds, first.SOPInstanceUID if number else dcmread(paths[-1]).SOPInstanceUID)
        ds.StudyInstanceUID = first.StudyInstanceUID
        ds.SeriesInstanceUID = first.SeriesInstanceUID
        ds.ReferencedSeriesSequence[0].SeriesInstanceUID = first.SeriesInstanceUID
        ds.PatientName = "Fakename^Patient"
        ds.PatientID = patient_id
        ds.save_as(path, enforce_file_format=True)
    return paths


def dicom_at(path: Path, **options: Any) -> Path:
    """``write_dicom`` into a folder that may not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dicom(path, PIXELS, **options)


def walk(ds: Dataset) -> Iterator[DataElement]:
    """Every element, inside sequence items too."""
    yield from ds.iterall()


def original_uids(datasets: list[Dataset]) -> set[str]:
    """The instance UIDs of the inputs (fake ones and pydicom's generated ones), not class UIDs."""
    return {
        str(uid)
        for ds in datasets
        for elem in walk(ds)
        if elem.VR == "UI"
        for uid in (elem.value if isinstance(elem.value, MultiValue) else [elem.value])
        if str(uid).startswith((FAKE_UID_ROOT, PYDICOM_UID_ROOT))
    }


def leaks(elem: DataElement, old_uids: set[str]) -> bool:
    """Whether an element still holds one of the fake values or an original UID."""
    value = elem.value
    if elem.VR == "SQ" or value is None:
        return False
    if isinstance(value, bytes):
        return b"FAKE" in value
    for single in value if isinstance(value, MultiValue) else [value]:
        text = str(single)
        if "fake" in text.lower() or text in old_uids or text == "042Y":
            return True
        if elem.VR in ("DA", "DT", "TM") and (FAKE_DATE in text or FAKE_TIME in text):
            return True
        if elem.VR != "UI" and str(FAKE_NUMBER) in text:
            return True
    return False


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def codes(ds: Dataset) -> set[str]:
    return {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}


# --- the table -------------------------------------------------------------------------------------


def test_table_covers_the_identifying_attributes() -> None:
    named = {
        "PatientName": Action.ZERO,
        "PatientID": Action.DUMMY,
        "PatientBirthDate": Action.ZERO,
        "PatientSex": Action.ZERO,
        "PatientAge": Action.REMOVE,
        "OtherPatientIDs": Action.REMOVE,
        "OtherPatientIDsSequence": Action.REMOVE,
        "OtherPatientNames": Action.REMOVE,
        "PatientAddress": Action.REMOVE,
        "PatientTelephoneNumbers": Action.REMOVE,
        "PatientMotherBirthName": Action.REMOVE,
        "MilitaryRank": Action.REMOVE,
        "EthnicGroup": Action.REMOVE,
        "Occupation": Action.REMOVE,
        "AdditionalPatientHistory": Action.REMOVE,
        "PatientComments": Action.REMOVE,
        "MedicalRecordLocator": Action.REMOVE,
        "ReferencedPatientSequence": Action.REMOVE,
        "AccessionNumber": Action.ZERO,
        "StudyID": Action.ZERO,
        "StudyDate": Action.ZERO,
        "StudyTime": Action.ZERO,
        "SeriesDate": Action.DUMMY,
        "AcquisitionDate": Action.ZERO,
        "ContentDate": Action.DUMMY,
        "InstanceCreationDate": Action.DUMMY,
        "AcquisitionDateTime": Action.DUMMY,
        "ReferringPhysicianName": Action.ZERO,
        "ReferringPhysicianAddress": Action.REMOVE,
        "ReferringPhysicianTelephoneNumbers": Action.REMOVE,
        "PerformingPhysicianName": Action.REMOVE,
        "NameOfPhysiciansReadingStudy": Action.REMOVE,
        "OperatorsName": Action.DUMMY,
        "PhysiciansOfRecord": Action.REMOVE,
        "RequestingPhysician": Action.REMOVE,
        "InstitutionName": Action.DUMMY,
        "InstitutionAddress": Action.REMOVE,
        "InstitutionalDepartmentName": Action.REMOVE,
        "StationName": Action.DUMMY,
        "DeviceSerialNumber": Action.DUMMY,
        "ProtocolName": Action.DUMMY,
        "StudyDescription": Action.REMOVE,
        "SeriesDescription": Action.REMOVE,
        "ImageComments": Action.REMOVE,
        "RequestAttributesSequence": Action.REMOVE,
        "IssuerOfPatientID": Action.REMOVE,
        "PatientInsurancePlanCodeSequence": Action.REMOVE,
        "CountryOfResidence": Action.REMOVE,
        "RegionOfResidence": Action.REMOVE,
        "PatientState": Action.REMOVE,
        "PatientWeight": Action.REMOVE,
        "PatientSize": Action.REMOVE,
        "ResponsiblePerson": Action.REMOVE,
        "ResponsibleOrganization": Action.REMOVE,
        "SOPInstanceUID": Action.UID,
        "StudyInstanceUID": Action.UID,
        "SeriesInstanceUID": Action.UID,
        "FrameOfReferenceUID": Action.UID,
        "ReferencedSOPInstanceUID": Action.UID,
        "StorageMediaFileSetUID": Action.UID,
        "ReferencedImageSequence": Action.KEEP,
    }
    for keyword, action in named.items():
        assert BASIC_PROFILE[Tag(keyword)] is action, keyword
    assert len(BASIC_PROFILE) > 600


# --- the whole set ---------------------------------------------------------------------------------


def test_every_identifier_is_removed_and_uids_stay_consistent(tmp_path: Path) -> None:
    paths = identified_study(tmp_path / "in")
    originals = [dcmread(p) for p in paths]
    old_uids = original_uids(originals)
    assert len(old_uids) > 50
    before = tree_hashes(tmp_path / "in")

    report = deidentify_path(tmp_path / "in", tmp_path / "out", secret=SECRET)

    assert len(report.written) == 2 and not report.refused and not report.skipped
    assert tree_hashes(tmp_path / "in") == before  # the input is never changed
    outputs = [dcmread(tmp_path / "out" / p.name) for p in paths]
    for original, ds in zip(originals, outputs, strict=True):
        leaked = [f"{e.tag} {e.keyword}={e.value!r}" for e in walk(ds) if leaks(e, old_uids)]
        assert leaked == []
        assert [e.tag for e in walk(ds) if e.tag.is_private] == []
        assert [e.tag for e in walk(ds) if e.tag.group & 0xFF00 == 0x6000] == []  # overlays
        for elem in walk(ds):  # every UID we did not keep on purpose is a new 2.25 one
            if elem.VR == "UI" and elem.value and BASIC_PROFILE.get(elem.tag) is not None:
                assert str(elem.value).startswith("2.25."), elem.keyword
                assert UID(str(elem.value)).is_valid
        assert ds.SOPInstanceUID != original.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == original.SOPClassUID  # class UIDs are not identifying
        assert ds.PatientIdentityRemoved == "YES"
        assert codes(ds) == {"113100"}
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert re.fullmatch(r"ANON-[0-9A-F]{10}", ds.PatientID)
        assert ds.PatientName.family_name == ds.PatientID
        assert ds.PatientBirthDate == "" and ds.AccessionNumber == "" and "PatientAddress" not in ds
        assert ds.PixelData == original.PixelData
        assert len(ds.ReferencedStudySequence) == 0  # X/Z: emptied
        assert "RequestAttributesSequence" not in ds and "OtherPatientIDsSequence" not in ds
        item = ds.ReferencedImageSequence[0]  # X/Z/U*: kept, cleaned
        assert item.PatientName == "" and item.AccessionNumber == "" and "RequestedProcedureID" not in item

    first, second = outputs
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.PatientID == second.PatientID
    # References inside sequences point at the referenced instance's new UID.
    assert second.SourceImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert second.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert first.ReferencedImageSequence[0].ReferencedSOPInstanceUID == second.SOPInstanceUID
    nested = second.ReferencedSeriesSequence[0]
    assert nested.SeriesInstanceUID == second.SeriesInstanceUID
    assert nested.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["image0.dcm", "image1.dcm"]


def test_dataset_returns_a_copy_and_leaves_the_input_alone(tmp_path: Path) -> None:
    ds = dcmread(identified_study(tmp_path, files=1)[0])
    snapshot = ds.to_json_dict()
    out, _ = Deidentifier(secret=SECRET).dataset(ds)
    assert ds.to_json_dict() == snapshot
    assert out.PatientName != ds.PatientName


def test_uids_are_keyed_by_the_secret() -> None:
    uid = "1.2.826.0.1.3680043.10.999.1"
    one, again = Deidentifier(secret=SECRET), Deidentifier(secret=SECRET)
    assert one.new_uid(uid) == again.new_uid(uid)
    assert one.new_uid(uid) != Deidentifier(secret=b"another-secret-0123456789").new_uid(uid)
    assert one.new_uid(uid) != Deidentifier().new_uid(uid)  # a random secret per run by default
    assert one.new_uid(uid) != one.new_uid(uid + "0")
    new = one.new_uid(uid)
    assert new.startswith("2.25.") and len(new) <= 64 and UID(new).is_valid
    assert one.uid_map == {uid: new, uid + "0": one.new_uid(uid + "0")}


def test_same_secret_maps_the_same_way_across_runs(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "in.dcm", PIXELS)
    secret_file = tmp_path / "secret"
    secret_file.write_text("a-long-enough-secret-for-tests\n")
    secret = load_secret(secret_file)
    deidentify_path(path, tmp_path / "a.dcm", secret=secret)
    deidentify_path(path, tmp_path / "b.dcm", secret=secret)
    deidentify_path(path, tmp_path / "c.dcm")
    a, b, c = (dcmread(tmp_path / name) for name in ("a.dcm", "b.dcm", "c.dcm"))
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.PatientID == b.PatientID
    assert c.SOPInstanceUID != a.SOPInstanceUID and c.PatientID != a.PatientID


def test_secret_file_must_exist_and_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_secret(tmp_path / "missing")
    (tmp_path / "short").write_text("abc")
    with pytest.raises(BadInput, match="at least 16"):
        load_secret(tmp_path / "short")


# --- options ---------------------------------------------------------------------------------------


def _dated(path: Path, patient_id: str, study_date: str, **extra: str) -> Path:
    dicom_at(path, patient_id=patient_id)
    ds = dcmread(path)
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AcquisitionDateTime = f"{study_date}101733.25+0100"
    ds.PatientBirthDate = "19700101"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def test_retain_dates_shifts_each_patient_by_whole_days(tmp_path: Path) -> None:
    _dated(tmp_path / "in" / "a.dcm", "P1", "20240102", ContentDate="20240103")
    _dated(tmp_path / "in" / "b.dcm", "P1", "20240301")
    options = DeidOptions(retain_longitudinal_dates=True)
    deidentify_path(tmp_path / "in", tmp_path / "out", options, secret=SECRET)
    a, b = dcmread(tmp_path / "out" / "a.dcm"), dcmread(tmp_path / "out" / "b.dcm")

    assert a.StudyDate != "20240102" and b.StudyDate != "20240301"
    assert (_day(b.StudyDate) - _day(a.StudyDate)).days == (date(2024, 3, 1) - date(2024, 1, 2)).days
    assert (_day(a.ContentDate) - _day(a.StudyDate)).days == 1
    assert 365 <= (date(2024, 1, 2) - _day(a.StudyDate)).days <= 3652
    assert a.StudyTime == "101500"  # times are kept
    assert a.AcquisitionDateTime == a.StudyDate + "101733.25+0100"
    assert a.PatientBirthDate == ""  # a birth date is never kept, shifted or not
    assert a.LongitudinalTemporalInformationModified == "MODIFIED"
    assert codes(a) == {"113100", "113107"}


def test_retain_dates_offsets_differ_between_patients_and_secrets() -> None:
    deid = Deidentifier(DeidOptions(retain_longitudinal_dates=True), secret=SECRET)
    offsets = {deid.date_offset(f"P{n}") for n in range(20)}
    assert len(offsets) > 10
    assert deid.date_offset("P1") == Deidentifier(secret=SECRET).date_offset("P1")


def test_without_retain_dates_dates_and_times_go(tmp_path: Path) -> None:
    path = _dated(tmp_path / "a.dcm", "P1", "20240102", ContentDate="20240103")
    ds, _ = Deidentifier(secret=SECRET).dataset(dcmread(path))
    assert ds.StudyDate == "" and ds.StudyTime == ""
    assert ds.ContentDate == "19000101"  # Z/D: a dummy keeps Type 1 uses valid
    assert "20240103" not in str(ds.to_json_dict())


def test_retain_patient_characteristics(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "a.dcm", PIXELS)
    ds = dcmread(path)
    characteristics = {
        "PatientSex": "F",
        "PatientAge": "054Y",
        "PatientSize": "1.62",
        "PatientWeight": "61.5",
        "SmokingStatus": "NO",
        "PregnancyStatus": 4,
        "EthnicGroup": "FAKE-ETHNIC",
    }
    for keyword, value in characteristics.items():
        setattr(ds, keyword, value)
    ds.Allergies = "FAKE-ALLERGY"

    kept, _ = Deidentifier(DeidOptions(retain_patient_characteristics=True), SECRET).dataset(ds)
    for keyword, value in characteristics.items():
        assert str(kept.data_element(keyword).value) == str(value), keyword
    assert "Allergies" not in kept and "PatientAddress" not in kept
    assert codes(kept) == {"113100", "113108"}

    removed, _ = Deidentifier(secret=SECRET).dataset(ds)
    assert removed.PatientSex == ""
    for keyword in ("PatientAge", "PatientSize", "PatientWeight", "SmokingStatus", "EthnicGroup"):
        assert keyword not in removed, keyword


def test_private_allow_list_keeps_only_what_is_named(tmp_path: Path) -> None:
    ds = dcmread(write_dicom(tmp_path / "a.dcm", PIXELS))
    ds.private_block(0x0009, "VENDOR A", create=True).add_new(0x01, "DS", "2.5")
    ds.private_block(0x0009, "VENDOR A", create=False).add_new(0x02, "LO", "FAKE-PRIVATE")
    ds.private_block(0x0019, "VENDOR B", create=True).add_new(0x05, "LO", "kept by creator")

    options = DeidOptions(
        keep_private_tags=frozenset({0x00091001}), keep_private_creators=frozenset({"VENDOR B"})
    )
    out, _ = Deidentifier(options, SECRET).dataset(ds)
    private = {int(e.tag): e.value for e in out if e.tag.is_private}
    assert private == {
        0x00090010: "VENDOR A",
        0x00091001: "2.5",
        0x00190010: "VENDOR B",
        0x00191005: "kept by creator",
    }
    assert codes(out) == {"113100", "113111"}

    with pytest.raises(BadInput, match="not a private data element"):
        DeidOptions(keep_private_tags=frozenset({0x00100010}))


def test_public_attributes_unknown_to_the_dictionary_are_removed(tmp_path: Path) -> None:
    ds = dcmread(dicom_at(tmp_path / "a.dcm"))
    ds.add_new(0x00080999, "LO", "FAKE-UNKNOWN")
    out, _ = Deidentifier(secret=SECRET).dataset(ds)
    assert 0x00080999 not in out and out.Modality == "CR"


@pytest.mark.parametrize("text", ["00091001", "0009,1001", "(0009,1001)", "0x00091001", " (0009, 1001) "])
def test_parse_tag(text: str) -> None:
    assert parse_tag(text) == 0x00091001


def test_parse_tag_refuses_nonsense() -> None:
    with pytest.raises(BadInput, match="not a DICOM tag"):
        parse_tag("PatientName")


# --- burned-in text --------------------------------------------------------------------------------


def _burned_in(path: Path, value: str | None) -> Path:
    dicom_at(path)
    ds = dcmread(path)
    if value is not None:
        ds.BurnedInAnnotation = value
    ds.save_as(path, enforce_file_format=True)
    return path


def test_burned_in_images_are_refused_unless_allowed(tmp_path: Path) -> None:
    path = _burned_in(tmp_path / "burned.dcm", "YES")
    with pytest.raises(BadInput, match=r"burned\.dcm.*Burned In Annotation \(0028,0301\)"):
        deidentify_path(path, tmp_path / "out.dcm")
    assert not (tmp_path / "out.dcm").exists()

    report = deidentify_path(path, tmp_path / "out.dcm", DeidOptions(allow_burned_in=True))
    assert report.written == [tmp_path / "out.dcm"]
    assert any("text in the pixels was not removed" in w for w in report.warnings["burned.dcm"])


def test_secondary_capture_without_burned_in_attribute_is_flagged(tmp_path: Path) -> None:
    flagged = deidentify_path(_burned_in(tmp_path / "sc.dcm", None), tmp_path / "a.dcm")
    assert any("Secondary Capture" in w for w in flagged.warnings["sc.dcm"])
    clean = deidentify_path(_burned_in(tmp_path / "no.dcm", "NO"), tmp_path / "b.dcm")
    assert clean.warnings == {}


# --- folders, files, bad input ---------------------------------------------------------------------


def test_folder_mirrors_layout_skips_non_dicom_and_refuses_bad_files(tmp_path: Path) -> None:
    source = tmp_path / "in"
    identified_study(source / "patient1" / "study1")
    dicom_at(source / "patient2" / "bare.dcm", preamble=False)
    _burned_in(source / "patient2" / "burned.dcm", "YES")
    (source / "notes.txt").write_text("not an image")
    shutil.copy(get_testdata_file("DICOMDIR", download=False), source / "DICOMDIR")
    corrupt = bytearray((source / "patient1" / "study1" / "image0.dcm").read_bytes()[:400])
    (source / "patient2" / "corrupt.dcm").write_bytes(bytes(corrupt[:132]) + b"\x08\x00\x20\x00DA\xff\xff")
    before = tree_hashes(source)

    report = deidentify_path(source, tmp_path / "out", secret=SECRET)

    assert tree_hashes(source) == before
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in report.written)
    assert written == ["patient1/study1/image0.dcm", "patient1/study1/image1.dcm", "patient2/bare.dcm"]
    assert report.skipped["notes.txt"] == "not a DICOM file"
    assert set(report.skipped) == {"notes.txt", "DICOMDIR"}  # its offsets would go stale
    assert set(report.refused) == {"patient2/burned.dcm", "patient2/corrupt.dcm"}
    assert "Burned In Annotation" in report.refused["patient2/burned.dcm"]
    assert "corrupt.dcm" in report.refused["patient2/corrupt.dcm"]
    on_disk = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert on_disk == ["patient1", "patient1/study1", *written[:2], "patient2", written[2]]  # no temp files
    bare = dcmread(tmp_path / "out" / "patient2" / "bare.dcm")
    assert bare.preamble is not None and bare.file_meta.MediaStorageSOPInstanceUID == bare.SOPInstanceUID


@pytest.mark.parametrize("case", ["inside", "contains", "file", "same"])
def test_overlapping_or_wrong_outputs_are_bad_input(tmp_path: Path, case: str) -> None:
    source = tmp_path / "in"
    path = dicom_at(source / "a.dcm")
    (tmp_path / "file.dcm").write_bytes(b"x")
    src, dst = {
        "inside": (source, source / "out"),
        "contains": (source, tmp_path),
        "file": (source, tmp_path / "file.dcm"),
        "same": (path, path),
    }[case]
    before = tree_hashes(tmp_path)
    with pytest.raises(BadInput):
        deidentify_path(src, dst)
    assert tree_hashes(tmp_path) == before


def test_not_dicom_or_missing_single_file_is_bad_input(tmp_path: Path) -> None:
    text = tmp_path / "note.dcm"
    text.write_text("hello")
    with pytest.raises(BadInput, match=r"note\.dcm is not a DICOM file"):
        deidentify_path(text, tmp_path / "out.dcm")
    with pytest.raises(BadInput, match="does not exist"):
        deidentify_path(tmp_path / "missing.dcm", tmp_path / "out.dcm")
    with pytest.raises(BadInput, match="DICOMDIR index"):
        deidentify_path(get_testdata_file("DICOMDIR", download=False), tmp_path / "out")


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_dicom(tmp_path / "in.dcm", PIXELS)
    out = tmp_path / "out"
    out.mkdir()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("sahay.fileio.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        deidentify_path(path, out)
    assert list(out.iterdir()) == []


def test_mapping_is_written_only_where_asked(tmp_path: Path) -> None:
    paths = identified_study(tmp_path / "in")
    report = deidentify_path(tmp_path / "in", tmp_path / "out", secret=SECRET)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["image0.dcm", "image1.dcm"]
    assert not report.refused

    mapping = tmp_path / "private" / "map.csv"
    deidentify_path(tmp_path / "in", tmp_path / "out2", secret=SECRET, mapping_out=mapping)
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["image0.dcm", "image1.dcm"]
    rows = list(csv.DictReader(mapping.open()))
    uids = {row["original"]: row["replacement"] for row in rows if row["kind"] == "uid"}
    original, new = dcmread(paths[0]), dcmread(tmp_path / "out2" / "image0.dcm")
    assert uids[original.SOPInstanceUID] == new.SOPInstanceUID
    assert uids[original.StudyInstanceUID] == new.StudyInstanceUID
    assert {"patient", "FAKEID123", new.PatientID} <= {v for row in rows for v in row.values()}
    # The mapping never goes into the DICOM either.
    assert original.SOPInstanceUID not in (tmp_path / "out2" / "image0.dcm").read_bytes().decode("latin-1")

    with pytest.raises(BadInput, match="inside the input folder"):
        deidentify_path(tmp_path / "in", tmp_path / "out3", mapping_out=tmp_path / "in" / "map.csv")


# --- a real file -----------------------------------------------------------------------------------


def test_pydicom_ct_small_still_reads_with_identical_pixels(tmp_path: Path) -> None:
    source = Path(get_testdata_file("CT_small.dcm", download=False))
    before = sha256(source)
    deidentify_path(source, tmp_path / "ct.dcm", DeidOptions(retain_longitudinal_dates=True))
    assert sha256(source) == before

    original, out = dcmread(source), dcmread(tmp_path / "ct.dcm")
    assert out.PixelData == original.PixelData
    assert [e.tag for e in walk(out) if e.tag.is_private] == []
    for keyword in ("PatientName", "PatientID", "InstitutionName", "StationName", "StudyID"):
        assert str(out.data_element(keyword).value) != str(original.data_element(keyword).value), keyword
    assert "OtherPatientIDsSequence" not in out and "StudyDescription" not in out
    assert out.StudyInstanceUID != original.StudyInstanceUID
    assert out.FrameOfReferenceUID != original.FrameOfReferenceUID
    assert "SourceApplicationEntityTitle" not in out.file_meta

    image, reference = read_image(tmp_path / "ct.dcm"), read_image(source)
    assert image.info.modality == "CT" and image.pixels.shape == (128, 128)
    np.testing.assert_array_equal(image.pixels, reference.pixels)


# --- the command line ------------------------------------------------------------------------------


def test_cli_deid_folder_with_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    identified_study(tmp_path / "in")
    (tmp_path / "in" / "readme.txt").write_text("hello")
    secret = tmp_path / "secret"
    secret.write_text("cli-secret-0123456789abcdef")
    before = tree_hashes(tmp_path / "in")

    code, out, err = run_cli(
        capsys,
        "deid",
        tmp_path / "in",
        tmp_path / "out",
        "--retain-dates",
        "--retain-patient-characteristics",
        "--keep-private-tag",
        "(0011,1010)",
        "--secret-file",
        secret,
        "--mapping-out",
        tmp_path / "map.csv",
    )

    assert code == 0, err
    assert re.search(r"written\s*│\s*2", out) and re.search(r"refused\s*│\s*0", out)
    assert "readme.txt" in err and "map.csv" in out
    assert tree_hashes(tmp_path / "in") == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["image0.dcm", "image1.dcm"]
    ds = dcmread(tmp_path / "out" / "image0.dcm")
    assert codes(ds) == {"113100", "113107", "113108", "113111"}
    assert ds[0x00111010].value == "FAKE-PRIVATE-OTHER"  # asked for, so kept
    assert (tmp_path / "map.csv").is_file()


def test_cli_deid_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "note.txt").write_text("hello")
    code, _, err = run_cli(capsys, "deid", tmp_path / "note.txt", tmp_path / "out.dcm")
    assert code == 2 and "not a DICOM file" in err and "Traceback" not in err

    path = write_dicom(tmp_path / "a.dcm", PIXELS)
    code, _, err = run_cli(capsys, "deid", path, tmp_path / "b.dcm", "--secret-file", tmp_path / "none")
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(capsys, "deid", path, tmp_path / "b.dcm", "--keep-private-tag", "xyz")
    assert code == 2 and "not a DICOM tag" in err
    assert not (tmp_path / "b.dcm").exists()


def test_cli_deid_refused_files_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    _burned_in(tmp_path / "in" / "burned.dcm", "YES")
    write_dicom(tmp_path / "in" / "ok.dcm", PIXELS)
    code, out, err = run_cli(capsys, "deid", tmp_path / "in", tmp_path / "out")
    assert code == 1
    assert "refused" in err and "burned.dcm" in err
    assert re.search(r"refused\s*│\s*1", out)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.dcm"]


def test_the_preamble_is_cleared(tmp_path: Path) -> None:
    source = dicom_at(tmp_path / "in" / "a.dcm")
    data = bytearray(source.read_bytes())
    data[:28] = b"PATIENT JOHN DOE MRN 123456 "
    source.write_bytes(bytes(data))
    deidentify_path(source, tmp_path / "out.dcm", secret=SECRET)
    assert (tmp_path / "out.dcm").read_bytes()[:128] == b"\0" * 128


def test_instance_uids_outside_the_table_are_replaced_and_definitions_kept(tmp_path: Path) -> None:
    ds = dcmread(dicom_at(tmp_path / "a.dcm"))
    ds.MultiFrameSourceSOPInstanceUID = ds.SOPInstanceUID
    ds.add_new(0x00081150, "UI", ds.SOPClassUID)  # Referenced SOP Class UID: a definition
    out, _ = Deidentifier(secret=SECRET).dataset(ds)
    assert out.MultiFrameSourceSOPInstanceUID == out.SOPInstanceUID != ds.SOPInstanceUID
    assert out.SOPClassUID == ds.SOPClassUID and out[0x00081150].value == ds.SOPClassUID
    assert out.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID


def test_folder_progress_counts_every_file(tmp_path: Path) -> None:
    identified_study(tmp_path / "in", files=3)
    (tmp_path / "in" / "readme.txt").write_text("not DICOM", encoding="utf-8")
    heard: list[tuple[int, int]] = []
    deidentify_path(
        tmp_path / "in", tmp_path / "out", secret=SECRET, progress=lambda d, t: heard.append((d, t))
    )
    assert heard == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


# --- burned-in text by modality, files without file meta, values that cannot be written -----------

# A storage class of the modality's own, so that the Secondary Capture warning does not answer first.
_MODALITY_CLASSES = {
    "US": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "ES": "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image Storage
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
}


def _of_modality(path: Path, modality: str, burned_in: str | None = None) -> Path:
    dicom_at(path, modality=modality)
    ds = dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = _MODALITY_CLASSES[modality]
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("modality", ["US", "ES", "XA"])
def test_modalities_that_often_burn_in_text_are_flagged_without_the_attribute(
    tmp_path: Path, modality: str
) -> None:
    flagged = deidentify_path(_of_modality(tmp_path / "in.dcm", modality), tmp_path / "a.dcm")

    (warning,) = flagged.warnings["in.dcm"]
    assert f"({modality}) image" in warning and "Burned In Annotation (0028,0301)" in warning
    assert "check its pixels for text before sharing" in warning
    said_no = deidentify_path(_of_modality(tmp_path / "no.dcm", modality, "NO"), tmp_path / "b.dcm")
    assert said_no.warnings == {}
    with pytest.raises(BadInput, match="Burned In Annotation"):
        deidentify_path(_of_modality(tmp_path / "yes.dcm", modality, "YES"), tmp_path / "c.dcm")


def test_a_radiograph_without_the_attribute_is_not_flagged(tmp_path: Path) -> None:
    assert deidentify_path(_of_modality(tmp_path / "cr.dcm", "CR"), tmp_path / "out.dcm").warnings == {}


def _bare(path: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """A dataset with no preamble, DICM prefix or file meta (group 0002), as old systems write."""
    dicom_at(path, preamble=False)
    if drop:
        ds = dcmread(path, force=True)
        for keyword in drop:
            delattr(ds, keyword)
        ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=False)
    return path


def test_a_file_without_file_meta_is_written_with_a_warning(tmp_path: Path) -> None:
    report = deidentify_path(_bare(tmp_path / "bare.dcm"), tmp_path / "out.dcm")

    assert report.written == [tmp_path / "out.dcm"]
    assert any(
        "no file meta information" in w and "Explicit VR Little Endian" in w
        for w in report.warnings["bare.dcm"]
    )
    assert dcmread(tmp_path / "out.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_a_file_without_file_meta_or_sop_uids_gets_a_clear_refusal(tmp_path: Path) -> None:
    path = _bare(tmp_path / "anonymous.dcm", drop=("SOPClassUID", "SOPInstanceUID"))

    with pytest.raises(BadInput) as caught:
        deidentify_path(path, tmp_path / "out.dcm")

    message = str(caught.value)
    assert "anonymous.dcm has no SOP Class UID (0008,0016) and no SOP Instance UID (0008,0018)" in message
    assert "no file meta information" in message and "standard DICOM file" in message
    assert "AttributeError" not in message
    assert not (tmp_path / "out.dcm").exists()


def test_a_value_the_character_set_cannot_encode_is_bad_input_without_a_traceback(tmp_path: Path) -> None:
    """Found by tests/fuzz: pydicom raises IndexError encoding the pseudonym in ISO 2022 IR 87 alone."""
    path = dicom_at(tmp_path / "jis.dcm")
    ds = dcmread(path)
    ds.SpecificCharacterSet = "ISO 2022 IR 87"
    ds.save_as(path, enforce_file_format=True)

    with pytest.raises(BadInput, match=r"jis\.dcm could not be written after de-identification") as caught:
        deidentify_path(path, tmp_path / "out.dcm")
    assert "Traceback" not in str(caught.value)
