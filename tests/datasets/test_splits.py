"""Carving the splits a dataset does not give."""

from __future__ import annotations

from pathlib import Path

import pytest

from sahay.datasets import load_dataset
from sahay.datasets.splits import SPLITS, carve_missing_splits, split_plan
from sahay.errors import BadInput
from tests.datasets.helpers import make_folder


def test_a_class_too_small_to_stratify_falls_back_to_a_random_split(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", {"train": {"a": 10, "b": 1}, "test": {"a": 1, "b": 1}})

    dataset = load_dataset(root)

    assert len(dataset.splits["val"]) == 2
    assert any("too small to stratify" in note for note in dataset.notes)


def test_a_group_split_keeps_each_patient_on_one_side_and_repeats_with_its_seed() -> None:
    rows = list(range(40))
    patients = [f"p{row // 4}" for row in rows]  # 10 patients, 4 rows each

    def carve(seed: int) -> tuple[dict[str, list[int]], list[str]]:
        notes: list[str] = []
        found = carve_missing_splits(
            {"train": rows},
            None,
            split_plan(0.2, 0.2, seed),
            notes,
            source="the rows",
            groups={"train": patients},
        )
        return found, notes

    found, notes = carve(0)

    assert list(found) == list(SPLITS) and sorted(row for split in SPLITS for row in found[split]) == rows
    sides = {split: {patients[row] for row in found[split]} for split in SPLITS}
    assert not (
        sides["train"] & sides["val"] or sides["train"] & sides["test"] or sides["val"] & sides["test"]
    )
    assert len(sides["test"]) == 2 and len(sides["val"]) == 2  # 20% of 10 patients each
    assert notes == [
        "no test split: 20% of the rows held out as test (by patient, seed 0)",
        "no val split: 20% of the rows held out as val (by patient, seed 0)",
    ]
    assert carve(0)[0] == found and carve(1)[0] != found


@pytest.mark.parametrize(
    ("val", "test", "fragment"),
    [
        (0.0, 0.15, r"val_fraction=0.0 must lie strictly between 0 and 1"),
        (1.0, 0.15, r"val_fraction=1.0 must lie strictly between 0 and 1"),
        (0.15, -0.1, r"test_fraction=-0.1 must lie in \[0, 1\)"),
        (0.5, 0.5, r"val_fraction \+ test_fraction = 1 must be below 1"),
    ],
)
def test_fractions_must_leave_room_for_training(
    tmp_path: Path, val: float, test: float, fragment: str
) -> None:
    root = make_folder(tmp_path / "d", {"train": {"a": 4, "b": 4}})
    with pytest.raises(BadInput, match=fragment):
        load_dataset(root, val_fraction=val, test_fraction=test)
