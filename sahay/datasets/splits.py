"""Split names and the carving of missing splits: stratified by class, or grouped by patient.

Layouts find the splits a dataset gives (``train/``, ``val/``, ``test/`` folders; a ``split``
column) and hand the rest to ``carve_missing_splits``, which holds test, then val, out of train
with a seed, and says in ``notes`` what it did. scikit-learn is imported only when a split is
carved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sahay.errors import BadInput

if TYPE_CHECKING:
    from sahay.datasets.dataset import Sample

SPLITS = ("train", "val", "test")
SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
"""What a split column may hold (compared in lower case), and the split each value means."""
T = TypeVar("T")


@dataclass(frozen=True)
class SplitPlan:
    """How to carve the splits a dataset does not give: fractions of the train rows, and the seed."""

    val_fraction: float
    test_fraction: float
    seed: int


def split_plan(val_fraction: float, test_fraction: float, seed: int) -> SplitPlan:
    """A SplitPlan; BadInput when the fractions leave no room for training."""
    if not 0 < val_fraction < 1:
        raise BadInput(f"val_fraction={val_fraction} must lie strictly between 0 and 1.")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise BadInput(
            f"test_fraction={test_fraction} must lie in [0, 1) and leave room for training "
            f"(val_fraction + test_fraction = {val_fraction + test_fraction:g} must be below 1)."
        )
    return SplitPlan(val_fraction, test_fraction, seed)


def carve_missing_splits(
    splits: dict[str, list[T]],
    strata: dict[str, list[int]] | None,
    plan: SplitPlan,
    notes: list[str],
    *,
    source: str,
    groups: dict[str, list[str]] | None = None,
) -> dict[str, list[T]]:
    """Hold out test, then val, from train where they are missing; fractions are of the train rows.

    ``strata`` (class per sample) makes the split stratified; ``groups`` (patient per sample) makes it
    a group split, so no group lands on two sides.
    """
    splits = dict(splits)
    carve = [s for s in ("test", "val") if s not in splits and (s == "val" or plan.test_fraction > 0)]
    if "test" not in splits and plan.test_fraction == 0:
        splits["test"] = []
        notes.append("test_fraction is 0: the test split is empty")
    held = 0.0
    unit = "patients" if groups else "images"
    total = len(set(groups["train"])) if groups else len(splits["train"])
    too_few = _too_few_message(total, unit, source, [s for s in SPLITS if s == "train" or s in carve])
    for split in carve:
        fraction = plan.test_fraction if split == "test" else plan.val_fraction
        relative = fraction / (1.0 - held)
        rows = list(range(len(splits["train"])))
        keep, out, how = _split_rows(
            rows,
            relative,
            plan.seed,
            strata=strata["train"] if strata else None,
            groups=groups["train"] if groups else None,
            too_few=too_few,
        )
        _move_rows(splits, split, keep, out)
        if strata:
            _move_rows(strata, split, keep, out)
        if groups:
            _move_rows(groups, split, keep, out)
        held += fraction
        notes.append(
            f"no {split} split: {fraction:.0%} of {source} held out as {split} ({how}, seed {plan.seed})"
        )
    return {split: splits[split] for split in SPLITS}


def _move_rows(table: dict[str, list[T]], split: str, keep: list[int], out: list[int]) -> None:
    """Move the ``out`` rows of table["train"] to table[split]."""
    train = table["train"]
    table[split] = [train[i] for i in out]
    table["train"] = [train[i] for i in keep]


def _too_few_message(total: int, unit: str, source: str, parts: list[str]) -> str:
    return (
        f"too few {unit} to split {source} into {', '.join(parts)}: found {total}, and at least {len(parts)} "
        f"are needed (one per split). Add {unit}, or give the splits yourself."
    )


def _split_rows(
    rows: list[int],
    fraction: float,
    seed: int,
    *,
    strata: list[int] | None,
    groups: list[str] | None,
    too_few: str,
) -> tuple[list[int], list[int], str]:
    """(kept rows, held-out rows, how it was done); BadInput ``too_few`` when a side would be empty."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    try:
        if groups is not None:
            splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
            keep, out = next(splitter.split(rows, groups=groups))
            return sorted(int(i) for i in keep), sorted(int(i) for i in out), "by patient"
        if strata is not None:
            try:
                keep, out = train_test_split(rows, test_size=fraction, stratify=strata, random_state=seed)
                return sorted(keep), sorted(out), "stratified"
            except ValueError:  # a class with one image, or fewer held-out rows than classes
                how = "random: a class is too small to stratify"
        else:
            how = "random"
        keep, out = train_test_split(rows, test_size=fraction, random_state=seed)
        return sorted(keep), sorted(out), how
    except ValueError as exc:
        raise BadInput(too_few) from exc


# --- patients ----------------------------------------------------------------------------------


def patient_groups(found: dict[str, list[Sample]]) -> tuple[dict[str, list[str]] | None, list[str]]:
    """Group keys for splitting by patient; rows without a patient id count as their own patient."""
    train = found["train"]
    known = sum(sample.patient_id is not None for sample in train)
    if not known:
        warning = (
            "no patient information (no patient column, no patient<digits> folder in the paths): rows were "
            "split at random, so one patient's images may fall on both sides; give patient_column to fix this"
        )
        return None, [warning]
    keys = [s.patient_id if s.patient_id is not None else f"\0row{i}" for i, s in enumerate(train)]
    notes = ["rows split by patient: no patient is on two sides"]
    if known < len(train):
        notes.append(f"{len(train) - known} row(s) have no patient id; each counts as its own patient")
    return {"train": keys}, notes


def note_patients_across_splits(found: dict[str, list[Sample]], notes: list[str]) -> None:
    """Warn in ``notes`` when given splits put one patient on more than one side."""
    seen: dict[str, set[str]] = {}
    for split, samples in found.items():
        for sample in samples:
            if sample.patient_id is not None:
                seen.setdefault(sample.patient_id, set()).add(split)
    straddling = sum(len(splits) > 1 for splits in seen.values())
    if straddling:
        notes.append(f"warning: the split column puts {straddling} patient(s) on more than one side")
