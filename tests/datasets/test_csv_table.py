"""The CSV layout: column detection, label columns, the uncertain-label policy, splits by patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sahay.datasets import load_dataset
from sahay.errors import BadInput
from tests.datasets.helpers import CHEXPERT_HEADER, CHEXPERT_LABELS, chexpert_rows, write_csv


@pytest.mark.parametrize(
    ("policy", "first", "second"),
    [
        ("ignore", [1.0, np.nan, np.nan], [0.0, 1.0, np.nan]),
        ("zero", [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        ("one", [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]),
    ],
)
def test_uncertainty_policy(tmp_path: Path, policy: str, first: list[float], second: list[float]) -> None:
    known = [
        ["train/patient00001/study1/view1_frontal.jpg", "Male", 70, "Frontal", "AP", "1.0", "-1.0", ""],
        ["train/patient00002/study1/view1_frontal.jpg", "Female", 40, "Frontal", "PA", "0.0", "1.0", "-1.0"],
    ]
    taken = ("train/patient00001/", "train/patient00002/")
    others = [row for row in chexpert_rows(20, seed=3) if not str(row[0]).startswith(taken)]
    path = write_csv(tmp_path / "train.csv", CHEXPERT_HEADER, known + others)

    dataset = load_dataset(path, uncertain=policy)  # type: ignore[arg-type]

    by_path = {s.path: s.target for samples in dataset.splits.values() for s in samples}
    for row, expected in zip(known, (first, second), strict=True):
        np.testing.assert_array_equal(by_path[tmp_path / str(row[0])], np.array(expected, dtype=np.float32))
    assert any("uncertain" in note for note in dataset.notes)


def test_csv_splits_by_patient_derived_from_paths(tmp_path: Path) -> None:
    rows = chexpert_rows(120, seed=1)
    path = write_csv(tmp_path / "train.csv", CHEXPERT_HEADER, rows)

    dataset = load_dataset(path)

    assert dataset.layout == "csv" and dataset.task == "multilabel"
    assert dataset.labels == CHEXPERT_LABELS  # Sex, Age, Frontal/Lateral and AP/PA are not labels
    assert any("patient ids taken from patient<digits> folders" in note for note in dataset.notes)
    patients = {split: {s.patient_id for s in samples} for split, samples in dataset.splits.items()}
    assert all(patients.values()) and None not in set().union(*patients.values())
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(samples) for samples in dataset.splits.values()) == len(rows)
    assert len(patients["test"]) == 18 and len(patients["val"]) == 18  # 15% of 120 patients each


def test_csv_patient_column_is_used(tmp_path: Path) -> None:
    rows = [[f"img{i}.png", f"P{i % 10}", i % 2, (i + 1) % 2] for i in range(50)]
    path = write_csv(tmp_path / "labels.csv", ["image", "Patient ID", "cat", "dog"], rows)

    dataset = load_dataset(path, task="multiclass")

    assert dataset.labels == ["cat", "dog"] and dataset.task == "multiclass"
    patients = [{s.patient_id for s in dataset.splits[split]} for split in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert any("split by patient" in note for note in dataset.notes)


def test_csv_split_column_is_honoured(tmp_path: Path) -> None:
    rows = chexpert_rows(30, seed=2)
    names = ["train", "valid", "test", "TRAIN", "val"]
    header = [*CHEXPERT_HEADER, "split"]
    path = write_csv(tmp_path / "data.csv", header, [[*row, names[i % 5]] for i, row in enumerate(rows)])

    dataset = load_dataset(path)

    expected = {"train": "train", "valid": "val", "val": "val", "test": "test", "TRAIN": "train"}
    where = {tmp_path / str(row[0]): expected[names[i % 5]] for i, row in enumerate(rows)}
    for split, samples in dataset.splits.items():
        assert samples and all(where[s.path] == split for s in samples)
    assert "split" not in dataset.labels
    assert any("splits taken from the 'split' column" in note for note in dataset.notes)
    assert any("puts" in note and "patient(s) on more than one side" in note for note in dataset.notes)


def test_csv_without_patient_information_splits_by_row_with_a_warning(tmp_path: Path) -> None:
    rows = [[f"images/{i}.png", i % 2] for i in range(20)]
    dataset = load_dataset(write_csv(tmp_path / "t.csv", ["filename", "Effusion"], rows))

    assert [len(dataset.splits[s]) for s in ("train", "val", "test")] == [14, 3, 3]
    assert any("one patient's images may fall on both sides" in note for note in dataset.notes)
    assert dataset.splits["train"][0].path.parent == tmp_path / "images"


def test_chexpert_paths_are_read_from_the_folder_above_the_csv(tmp_path: Path) -> None:
    folder = tmp_path / "CheXpert-v1.0-small"
    rows = [[f"CheXpert-v1.0-small/{row[0]}", *row[1:]] for row in chexpert_rows(10)]
    dataset = load_dataset(write_csv(folder / "train.csv", CHEXPERT_HEADER, rows))

    sample = dataset.splits["train"][0]
    assert sample.path.is_relative_to(folder / "train") and sample.path.parts.count(folder.name) == 1
    assert dataset.image_root == tmp_path


def test_nih_finding_labels_become_label_columns(tmp_path: Path) -> None:
    findings = ["No Finding", "Effusion|Mass", "Mass", "Atelectasis"] * 5
    rows = [[f"{i:08d}_000.png", text, i // 2, 50] for i, text in enumerate(findings)]
    header = ["Image Index", "Finding Labels", "Patient ID", "Patient Age"]
    dataset = load_dataset(write_csv(tmp_path / "Data_Entry_2017.csv", header, rows))

    assert dataset.labels == ["Atelectasis", "Effusion", "Mass"]
    targets = {s.path.name: s.target.tolist() for samples in dataset.splits.values() for s in samples}
    assert targets["00000000_000.png"] == [0.0, 0.0, 0.0]
    assert targets["00000001_000.png"] == [0.0, 1.0, 1.0]


def test_unknown_label_column_lists_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", CHEXPERT_HEADER, chexpert_rows(5))
    with pytest.raises(BadInput, match=r"'Nope' is not a column .*'Path', 'Sex', 'Age'"):
        load_dataset(path, label_columns=["Edema", "Nope"])
    with pytest.raises(BadInput, match=r"image_column='file_name' is not a column"):
        load_dataset(path, image_column="file_name")


def test_label_value_outside_0_1_minus_1_is_bad_input(tmp_path: Path) -> None:
    rows = chexpert_rows(5)
    rows[3][-1] = "2"
    path = write_csv(tmp_path / "t.csv", CHEXPERT_HEADER, rows)
    with pytest.raises(BadInput, match=r"'Edema' has the value '2' on line 5 of t.csv"):
        load_dataset(path, label_columns=CHEXPERT_LABELS)


def test_duplicate_label_columns_are_bad_input(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", CHEXPERT_HEADER, chexpert_rows(5))
    with pytest.raises(BadInput, match="names a column twice"):
        load_dataset(path, label_columns=["Edema", "Edema"])


def test_multiclass_csv_needs_one_positive_per_row(tmp_path: Path) -> None:
    rows = [[f"{i}.png", 1, 0] for i in range(10)] + [["odd.png", 1, 1]]
    with pytest.raises(BadInput, match="exactly one 1"):
        load_dataset(write_csv(tmp_path / "t.csv", ["file", "x", "y"], rows), task="multiclass")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"path,A\nx.png,1,0\n", "line 2 has 3 fields and the header has 2"),
        (b'path,A\n"x.png,1\n', "cannot be parsed as CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "cannot be parsed as CSV"),
        (b"", "has no header"),
        (b"Sex,Age\nM,40\nF,50\n", "no image column"),
        (b"path,Sex\na.png,M\n", "no label columns"),
    ],
)
def test_unusable_csv_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=fragment):
        load_dataset(path)


def test_a_label_column_with_no_certain_value_is_not_a_label(tmp_path: Path) -> None:
    rows = ["Path,patient_id,Effusion,Hernia"] + [f"a{i}.png,p{i},{i % 2},-1" for i in range(20)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    detected = load_dataset(tmp_path / "labels.csv")
    assert detected.labels == ["Effusion"] and any("Hernia" in note for note in detected.notes)
    with pytest.raises(BadInput, match="Hernia hold no certain 0 or 1 value"):
        load_dataset(tmp_path / "labels.csv", label_columns=["Effusion", "Hernia"])
