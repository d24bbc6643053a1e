"""The image-folder layout: train/<class>/, test/<class>/ and optionally val/<class>/, under the
names users give them, or a flat folder of class folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sahay.datasets import load_dataset
from sahay.errors import BadInput
from tests.datasets.helpers import make_folder, paths_of


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


def _bad_folder(kind: str, root: Path) -> Path:
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
        ("no train", r"has test/ but no training folder \(train/, training/ or train_dataset/\)"),
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


def test_a_flat_folder_of_class_folders_is_carved_into_seeded_splits(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data", {".": {"benign": 20, "malignant": 20}})

    dataset = load_dataset(root, val_fraction=0.2, test_fraction=0.2)
    again = load_dataset(root, val_fraction=0.2, test_fraction=0.2)

    assert dataset.labels == ["benign", "malignant"]
    assert {split: len(samples) for split, samples in dataset.splits.items()} == {
        "train": 24,
        "val": 8,
        "test": 8,
    }
    assert paths_of(again.splits["test"]) == paths_of(dataset.splits["test"])
    assert any("class folders directly in data/" in note for note in dataset.notes)
    assert any("no test split" in note for note in dataset.notes)


def test_split_folders_under_the_names_users_give_them(tmp_path: Path) -> None:
    sorted_root = make_folder(
        tmp_path / "dataset_sorted",
        {"train_dataset": {"benign": 12, "malignant": 12}, "test_dataset": {"benign": 3, "malignant": 3}},
    )
    dataset = load_dataset(sorted_root)
    assert (
        len(dataset.splits["test"]) == 6 and len(dataset.splits["train"]) + len(dataset.splits["val"]) == 24
    )
    assert any("train_dataset/ as train, test_dataset/ as test" in note for note in dataset.notes)

    valid_root = make_folder(
        tmp_path / "kaggle",
        {"train": {"a": 6, "b": 6}, "valid": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}},
    )
    dataset = load_dataset(valid_root)
    assert sorted(paths_of(dataset.splits["val"])) == sorted((valid_root / "valid").rglob("*.png"))


def test_two_folders_for_one_split_are_refused(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "d", {"train": {"a": 4, "b": 4}, "val": {"a": 1, "b": 1}, "valid": {"a": 1, "b": 1}}
    )
    with pytest.raises(BadInput, match="val/ and valid/: both look like the val split"):
        load_dataset(root)
