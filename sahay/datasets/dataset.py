"""What every layout shares: a labelled ``Sample``, the ``LabelledDataset`` a loader returns, the
``LoadOptions`` it is given, and ``DatasetLayout``, one entry of the registry in ``layouts``.

Nothing here reads an image, so it imports neither torch nor OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np

from sahay.analysis import Task
from sahay.datasets.splits import SPLITS, SplitPlan
from sahay.errors import BadInput

UncertainPolicy = Literal["ignore", "zero", "one"]
"""What a CSV's uncertain label (blank or -1) becomes: "ignore" → NaN, "zero" → 0, "one" → 1."""


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value
class Sample:
    """One labelled image.

    ``target`` is float32 (K,): for multilabel 0/1 with NaN where an uncertain label is ignored; for
    multiclass one-hot.
    """

    path: Path
    target: np.ndarray
    patient_id: str | None = None
    text: str | None = None
    """CSV only: the row's free text (``text_column``), e.g. its report or notes."""
    row: dict[str, str] | None = None
    """CSV only: the whole row by column name, for subgroups (``sahay evaluate --by``)."""


@dataclass(frozen=True)
class LabelledDataset:
    """Labels and splits of a dataset, before any image is read.

    ``layout`` is the name of its layout in ``LAYOUTS`` ("imagefolder", "csv").
    ``notes`` say what was decided for the user (a carved split, a derived patient id, ...).
    ``image_root`` is the folder that image paths and manifest relpaths are relative to; None means
    ``root`` for an image folder and the CSV's folder for a CSV.
    """

    root: Path
    layout: str
    task: Task
    labels: list[str]
    splits: dict[str, list[Sample]]
    notes: list[str]
    image_root: Path | None = None
    layout_title: str = ""
    """How ``summary`` names the layout, e.g. "CSV label table"."""

    def positives(self, split: str) -> np.ndarray:
        """Per-label count of positive (1) targets in ``split``; ignored (NaN) labels do not count."""
        return self._count(split, 1.0)

    def negatives(self, split: str) -> np.ndarray:
        """Per-label count of negative (0) targets in ``split``; ignored (NaN) labels do not count."""
        return self._count(split, 0.0)

    def summary(self) -> str:
        """One paragraph for bundle.json's ``training_data``: layout, task, labels, counts, notes."""
        parts = [
            f"{self.layout_title or self.layout} {self.root.name} "
            f"({self.task}, {len(self.labels)} labels: {', '.join(self.labels)})."
        ]
        parts += [self._split_summary(split) for split in SPLITS]
        if self.notes:
            parts.append("Notes: " + "; ".join(self.notes) + ".")
        return " ".join(parts)

    def _samples(self, split: str) -> list[Sample]:
        if split not in SPLITS:
            raise BadInput(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        return self.splits.get(split, [])

    def _count(self, split: str, value: float) -> np.ndarray:
        samples = self._samples(split)
        if not samples:
            return np.zeros(len(self.labels), dtype=np.int64)
        targets = np.stack([sample.target for sample in samples])
        return np.asarray((targets == value).sum(axis=0), dtype=np.int64)

    def _split_summary(self, split: str) -> str:
        samples = self._samples(split)
        if not samples:
            return f"{split}: no images."
        positives = self.positives(split)
        if self.task == "multiclass":
            counts = ", ".join(f"{label} {n}" for label, n in zip(self.labels, positives, strict=True))
        else:
            labelled = positives + self.negatives(split)
            counts = ", ".join(
                f"{label} {p} of {n} positive"
                for label, p, n in zip(self.labels, positives, labelled, strict=True)
            )
        return f"{split}: {len(samples)} images ({counts})."


@dataclass(frozen=True)
class CsvColumns:
    """Columns the user named; None means auto-detect."""

    image_column: str | None = None
    patient_column: str | None = None
    label_columns: Sequence[str] | None = None
    split_column: str | None = None
    text_column: str | None = None

    def given(self) -> list[str]:
        """The names of the options the user gave, in field order."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass(frozen=True)
class LoadOptions:
    """``load_dataset``'s options, checked; a layout uses those that apply to it."""

    task: Task | None
    uncertain: UncertainPolicy
    columns: CsvColumns
    plan: SplitPlan
