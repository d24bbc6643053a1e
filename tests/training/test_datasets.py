"""Labelled datasets: image folders and CSV tables, splits, scanning, the torch Dataset, class weights."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from sahay.datasets.layouts import (
    Augment,
    ImageDataset,
    LabelledDataset,
    Sample,
    load_dataset,
    scan_images,
    write_manifest,
)
from sahay.datasets.layouts import class_weights as weights_for
from sahay.errors import BadInput
from sahay.imaging.reader import read_image
from sahay.models.bundle import InputSpec
from sahay.models.preprocess import preprocess
from tests.factories import write_dicom, write_jpeg, write_png

SPEC = InputSpec(size=16, channels=1, resize="stretch")
CHEXPERT_LABELS = ["Atelectasis", "Cardiomegaly", "Edema"]


def pixels(seed: int, shape: tuple[int, ...] = (12, 10)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_folder(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    """counts: split -> class -> number of PNG files."""
    seed = 0
    for split, classes in counts.items():
        for name, count in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                seed += 1
                write_png(root / split / name / f"{name}_{index:03d}.png", pixels(seed))
    return root


def paths_of(samples: Sequence[Sample]) -> list[Path]:
    return [sample.path for sample in samples]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def chexpert_rows(patients: int, seed: int = 0) -> list[list[object]]:
    """CheXpert-like rows: 1-4 studies per patient, labels 1.0/0.0/-1.0/blank, text and number columns."""
    rng = np.random.default_rng(seed)
    rows: list[list[object]] = []
    for patient in range(1, patients + 1):
        for study in range(1, int(rng.integers(1, 5)) + 1):
            path = f"train/patient{patient:05d}/study{study}/view1_frontal.jpg"
            labels = [rng.choice(["1.0", "0.0", "-1.0", ""]) for _ in CHEXPERT_LABELS]
            rows.append(
                [path, rng.choice(["Male", "Female"]), int(rng.integers(20, 90)), "Frontal", "AP", *labels]
            )
    return rows


CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]


# --- image folders ----------------------------------------------------------------------------


def test_image_folder_without_val_carves_a_stratified_deterministic_val(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "xray", {"train": {"zeta": 30, "alpha": 10}, "test": {"zeta": 3, "alpha": 3}}
    )

    dataset = load_dataset(root)
    again = load_dataset(root)
    other_seed = load_dataset(root, seed=1)

    assert dataset.layout == "imagefolder" and dataset.task == "multiclass"
    assert dataset.labels == ["alpha", "zeta"]  # sorted by name
    train, val = dataset.splits["train"], dataset.splits["val"]
    assert sorted(paths_of(train) + paths_of(val)) == sorted((root / "train").rglob("*.png"))
    assert not set(paths_of(train)) & set(paths_of(val))
    for index, count in enumerate((10, 30)):  # alpha, zeta: proportions kept within one image
        assert abs(dataset.positives("val")[index] - 0.15 * count) <= 1
    assert paths_of(again.splits["val"]) == paths_of(val)
    assert paths_of(other_seed.splits["val"]) != paths_of(val)
    assert any("no val split" in note and "stratified" in note for note in dataset.notes)
    assert len(dataset.splits["test"]) == 6
    for sample in train:
        expected = [1.0, 0.0] if sample.path.parent.name == "alpha" else [0.0, 1.0]
        assert sample.target.dtype == np.float32 and sample.target.tolist() == expected


def test_image_folder_with_val_is_used_as_is(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "mri",
        {
            "train": {"tumour": 4, "normal": 4},
            "val": {"tumour": 2, "normal": 1},
            "test": {"tumour": 1, "normal": 1},
        },
    )
    (root / "train" / "normal" / ".DS_Store").write_bytes(b"junk")  # hidden files are skipped

    dataset = load_dataset(root)

    assert sorted(paths_of(dataset.splits["val"])) == sorted((root / "val").rglob("*.png"))
    assert len(dataset.splits["train"]) == 8
    assert dataset.positives("val").tolist() == [1, 2]  # normal, tumour
    assert dataset.negatives("val").tolist() == [2, 1]
    assert not any("held out" in note for note in dataset.notes)
    summary = dataset.summary()
    assert "Image-folder dataset mri" in summary and "multiclass" in summary
    assert "val: 3 images (normal 1, tumour 2)" in summary


def test_image_folder_without_test_carves_test_and_val(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "breakhis", {"train": {"benign": 20, "malignant": 20}})

    dataset = load_dataset(root, val_fraction=0.2, test_fraction=0.2)

    counts = {split: len(samples) for split, samples in dataset.splits.items()}
    assert counts == {"train": 24, "val": 8, "test": 8}
    assert any("no test split" in note for note in dataset.notes)
    assert any("per image" in note for note in dataset.notes)


def test_a_class_too_small_to_stratify_falls_back_to_a_random_split(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"train": {"a": 10, "b": 1}, "test": {"a": 1, "b": 1}})

    dataset = load_dataset(root)

    assert len(dataset.splits["val"]) == 2
    assert any("too small to stratify" in note for note in dataset.notes)


# --- scanning and the manifest ----------------------------------------------------------------


def test_mixed_formats_scan_and_the_manifest_records_each_file(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "mixed", {"train": {"b": 2}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    )
    class_a = root / "train" / "a"
    class_a.mkdir()
    write_png(class_a / "one.png", pixels(1))
    write_jpeg(class_a / "two.jpg", pixels(2))
    write_dicom(class_a / "three", pixels(3).astype(np.uint16) * 100)  # no extension: sniffed by content

    dataset = load_dataset(root)
    seen: list[tuple[int, int]] = []
    report = scan_images(dataset, progress=lambda done, total: seen.append((done, total)))

    assert report.skipped == []
    assert len(report.readable["train"]) == 5
    assert seen[-1] == (9, 9)
    by_relpath = {str(entry["relpath"]): entry for entry in report.manifest}
    assert list(by_relpath) == sorted(by_relpath) and len(by_relpath) == 9
    for name in ("one.png", "two.jpg", "three"):
        entry = by_relpath[f"train/a/{name}"]
        data = (class_a / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)

    manifest_file = tmp_path / "out" / "dataset.json"
    write_manifest(report, manifest_file)
    assert json.loads(manifest_file.read_text()) == report.manifest
    assert hashlib.sha256(manifest_file.read_bytes()).hexdigest() == report.fingerprint

    write_png(class_a / "one.png", pixels(99))
    assert scan_images(dataset).fingerprint != report.fingerprint


def _folder_with_text_files(root: Path, counts: dict[str, dict[str, int]], broken: int) -> list[Path]:
    make_folder(root, counts)
    victims = sorted((root / "train").rglob("*.png"))[:broken]
    for path in victims:
        path.write_text("this is not an image")
    return victims


def test_too_many_unreadable_images_is_bad_input(tmp_path: Path) -> None:
    counts = {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    victims = _folder_with_text_files(tmp_path / "d", counts, broken=3)

    with pytest.raises(BadInput, match=r"3 of 10 images \(30%\) cannot be read") as caught:
        scan_images(load_dataset(tmp_path / "d"), max_unreadable_fraction=0.05)
    assert victims[0].name in str(caught.value)


def test_a_few_unreadable_images_are_skipped_with_their_reason(tmp_path: Path) -> None:
    counts = {"train": {"a": 12, "b": 12}, "val": {"a": 4, "b": 4}, "test": {"a": 4, "b": 4}}
    (victim,) = _folder_with_text_files(tmp_path / "d", counts, broken=1)

    report = scan_images(load_dataset(tmp_path / "d"), max_unreadable_fraction=0.05)

    assert [path for path, _ in report.skipped] == [victim]
    assert "not a DICOM, PNG, JPEG or TIFF" in report.skipped[0][1]
    assert len(report.readable["train"]) == 23 and victim not in paths_of(report.readable["train"])
    assert len(report.manifest) == 39


# --- CSV label tables -------------------------------------------------------------------------


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


def test_class_weights_for_multilabel_and_multiclass(tmp_path: Path) -> None:
    rows = [
        ["t0.png", "train", 1, 0, 1, 1],
        ["t1.png", "train", 0, 0, 1, 0],
        ["t2.png", "train", 0, 0, 1, -1],
        ["t3.png", "train", 0, 0, 1, ""],
        ["v.png", "val", 1, 1, 0, 0],
    ]
    header = ["path", "split", "A", "B", "C", "D"]
    dataset = load_dataset(write_csv(tmp_path / "t.csv", header, rows), test_fraction=0.0)

    # A: 3 negatives / 1 positive; B: no positives (clamped to 100); C: no negatives (clamped to 1/100);
    # D: one each, the uncertain ones ignored.
    assert weights_for(dataset).tolist() == pytest.approx([3.0, 100.0, 0.01, 1.0])
    assert dataset.splits["test"] == [] and any("test" in note for note in dataset.notes)

    root = make_folder(
        tmp_path / "f", {"train": {"a": 2, "b": 6}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    )
    assert weights_for(load_dataset(root)).tolist() == pytest.approx([1.5, 0.5])  # 1/count, mean 1


# --- bad inputs -------------------------------------------------------------------------------


def _bad_folder(kind: str, root: Path) -> Path:
    if kind == "missing":
        return root / "nowhere"
    if kind == "no train":
        return make_folder(root, {"test": {"a": 1, "b": 1}})
    if kind == "empty class":
        make_folder(root, {"train": {"a": 2, "b": 2}})
        (root / "train" / "hollow").mkdir()
        return root
    if kind == "one class":
        return make_folder(root, {"train": {"only": 3}, "test": {"only": 1}})
    if kind == "different classes":
        return make_folder(root, {"train": {"a": 2, "b": 2}, "test": {"a": 1, "c": 1}})
    if kind == "too few":
        return make_folder(root, {"train": {"a": 1, "b": 1}})
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("missing", "nowhere does not exist"),
        ("no train", "has no train/ folder"),
        ("empty class", "hollow is empty"),
        ("one class", r"1 class folder\(s\) \(only\); training needs at least 2"),
        ("different classes", "missing: b; extra: c"),
        ("too few", r"too few images .* found 2, and at least 3 are needed"),
    ],
)
def test_bad_image_folders(tmp_path: Path, kind: str, fragment: str) -> None:
    with pytest.raises(BadInput, match=fragment):
        load_dataset(_bad_folder(kind, tmp_path / "d"))


def test_image_folders_are_multiclass_only(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"train": {"a": 2, "b": 2}})
    with pytest.raises(BadInput, match="multiclass"):
        load_dataset(root, task="multilabel")
    with pytest.raises(BadInput, match="label_columns apply to CSV files only"):
        load_dataset(root, label_columns=["a"])


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


def test_a_split_with_no_readable_image_is_bad_input(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "d", {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    )
    for path in (root / "val").rglob("*.png"):
        path.write_text("not an image")
    with pytest.raises(BadInput, match="none of the 2 images of the val split"):
        scan_images(load_dataset(root), max_unreadable_fraction=1.0)


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


# --- the training-time dataset ----------------------------------------------------------------


@pytest.fixture
def small_dataset(tmp_path: Path) -> LabelledDataset:
    return load_dataset(make_folder(tmp_path / "d", {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 1}}))


def test_items_have_the_spec_shape_and_range(small_dataset: LabelledDataset) -> None:
    dataset = ImageDataset(small_dataset.splits["train"], SPEC, augment=Augment())
    inputs, target = dataset[0]
    assert inputs.shape == (1, 16, 16) and inputs.dtype == torch.float32
    assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0
    assert (
        target.dtype == torch.float32 and target.tolist() == small_dataset.splits["train"][0].target.tolist()
    )
    assert len(dataset) == len(small_dataset.splits["train"])


def test_augmentation_is_repeatable_with_a_seed(small_dataset: LabelledDataset) -> None:
    augment = Augment(
        rotation_degrees=15, scale=(0.8, 1.2), brightness=0.2, contrast=0.2, horizontal_flip=True
    )
    dataset = ImageDataset(small_dataset.splits["train"], SPEC, augment=augment)

    def epoch(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [dataset[i][0] for i in range(len(dataset))]

    first, second, other = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_unaugmented_items_equal_preprocess_of_read_image(small_dataset: LabelledDataset) -> None:
    samples = small_dataset.splits["train"]
    uncached, cached = ImageDataset(samples, SPEC, cache=False), ImageDataset(samples, SPEC)
    for index, sample in enumerate(samples):
        expected = preprocess(read_image(sample.path).pixels, SPEC)[0]
        assert torch.equal(uncached[index][0], expected)
        torch.testing.assert_close(cached[index][0], expected, atol=2e-3, rtol=0)


def test_the_cache_avoids_decoding_again_and_shrinks_large_images(tmp_path: Path) -> None:
    image = write_png(tmp_path / "big.png", pixels(5, (120, 90)))
    sample = Sample(image, np.array([1.0], dtype=np.float32))
    cached, uncached = ImageDataset([sample], SPEC), ImageDataset([sample], SPEC, cache=False)
    expected = preprocess(read_image(image).pixels, SPEC)[0]

    first = cached[0][0]
    torch.testing.assert_close(first, expected, atol=0.05, rtol=0)  # shrunk to 32 px, then to 16 px
    assert not torch.equal(first, expected)  # so it really was shrunk first
    image.write_text("gone")
    assert torch.equal(cached[0][0], first)  # served from memory, not decoded again
    with pytest.raises(BadInput, match=r"big\.png can no longer be decoded"):
        uncached[0]


def test_no_flip_unless_asked(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (20, 1))  # dark left, bright right
    sample = Sample(write_png(tmp_path / "ramp.png", ramp), np.array([1.0], dtype=np.float32))
    plain = ImageDataset([sample], SPEC)[0][0]
    identity = {"rotation_degrees": 0.0, "scale": (1.0, 1.0), "brightness": 0.0, "contrast": 0.0}
    never = ImageDataset([sample], SPEC, augment=Augment(**identity, horizontal_flip=False))  # type: ignore[arg-type]
    sometimes = ImageDataset([sample], SPEC, augment=Augment(**identity, horizontal_flip=True))  # type: ignore[arg-type]

    torch.manual_seed(0)
    assert all(torch.equal(never[0][0], plain) for _ in range(20))
    flipped = [torch.equal(sometimes[0][0], torch.flip(plain, dims=[2])) for _ in range(20)]
    assert any(flipped) and not all(flipped)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Augment(scale=(1.2, 0.8)),
        lambda: Augment(rotation_degrees=-1),
        lambda: Augment(brightness=2),
    ],
)
def test_invalid_augment_settings(make: Callable[[], Augment]) -> None:
    with pytest.raises(BadInput, match="Augment"):
        make()


def test_a_label_column_with_no_certain_value_is_not_a_label(tmp_path: Path) -> None:
    rows = ["Path,patient_id,Effusion,Hernia"] + [f"a{i}.png,p{i},{i % 2},-1" for i in range(20)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    detected = load_dataset(tmp_path / "labels.csv")
    assert detected.labels == ["Effusion"] and any("Hernia" in note for note in detected.notes)
    with pytest.raises(BadInput, match="Hernia hold no certain 0 or 1 value"):
        load_dataset(tmp_path / "labels.csv", label_columns=["Effusion", "Hernia"])
