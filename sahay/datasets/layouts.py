"""Labelled image datasets for fine-tuning: image-folder trees and CSV label tables.

Two layouts cover what users bring:

* an **image folder** (Kaggle chest X-ray pneumonia, BreakHis, brain MRI slices):
  ``train/<class>/*``, ``test/<class>/*`` and optionally ``val/<class>/*``; one class per image;
* a **CSV label table** (CheXpert, NIH ChestX-ray14): one row per image, one 0/1 column per label,
  blank or -1 for an uncertain label.

``load_dataset`` decides the layout, the labels and the train/val/test splits, and records every
decision it made for the user in ``notes``. ``scan_images`` reads every image once through the
project's one reader and writes a DVC-like manifest. ``ImageDataset`` feeds a model, with light
augmentation.

Example::

    dataset = load_dataset(Path("chest_xray"))            # train/, test/ (and maybe val/) inside
    report = scan_images(dataset)
    train = ImageDataset(report.readable["train"], bundle_spec, augment=Augment())
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, TypeVar, get_args

import cv2
import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from torch.utils.data import Dataset

from sahay.analysis import Task
from sahay.config import Settings
from sahay.errors import BadInput
from sahay.fileio import atomic_write_text
from sahay.imaging.reader import read_image
from sahay.models.bundle import InputSpec
from sahay.models.preprocess import preprocess

UncertainPolicy = Literal["ignore", "zero", "one"]
Layout = Literal["imagefolder", "csv"]
SPLITS = ("train", "val", "test")
T = TypeVar("T")

IMAGE_COLUMNS = ("path", "Path", "image", "Image Index", "filename", "file")
PATIENT_COLUMNS = ("patient_id", "Patient ID", "PatientID", "patient")
SPLIT_COLUMNS = ("split",)
NIH_FINDINGS_COLUMN = "Finding Labels"
NIH_NO_FINDING = "No Finding"
SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_PATIENT_IN_PATH = re.compile(r"patient\d+")
_POS_WEIGHT_RANGE = (1 / 100, 100.0)
_SHOWN_FAILURES = 5


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


@dataclass(frozen=True)
class LabelledDataset:
    """Labels and splits of a dataset, before any image is read.

    ``notes`` say what was decided for the user (a carved split, a derived patient id, ...).
    ``image_root`` is the folder that image paths and manifest relpaths are relative to; None means
    ``root`` for an image folder and the CSV's folder for a CSV.
    """

    root: Path
    layout: Layout
    task: Task
    labels: list[str]
    splits: dict[str, list[Sample]]
    notes: list[str]
    image_root: Path | None = None

    def positives(self, split: str) -> np.ndarray:
        """Per-label count of positive (1) targets in ``split``; ignored (NaN) labels do not count."""
        return self._count(split, 1.0)

    def negatives(self, split: str) -> np.ndarray:
        """Per-label count of negative (0) targets in ``split``; ignored (NaN) labels do not count."""
        return self._count(split, 0.0)

    def summary(self) -> str:
        """One paragraph for bundle.json's ``training_data``: layout, task, labels, counts, notes."""
        kind = "Image-folder dataset" if self.layout == "imagefolder" else "CSV label table"
        parts = [
            f"{kind} {self.root.name} ({self.task}, {len(self.labels)} labels: {', '.join(self.labels)})."
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
class _SplitPlan:
    val_fraction: float
    test_fraction: float
    seed: int


@dataclass(frozen=True)
class _CsvColumns:
    """Columns the user named; None means auto-detect."""

    image_column: str | None = None
    patient_column: str | None = None
    label_columns: Sequence[str] | None = None
    split_column: str | None = None
    text_column: str | None = None


def load_dataset(
    source: Path,
    *,
    task: Task | None = None,
    uncertain: UncertainPolicy = "ignore",
    image_column: str | None = None,
    patient_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    split_column: str | None = None,
    text_column: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> LabelledDataset:
    """Read the labels and splits of an image folder or a CSV label table.

    **Image folder** (``source`` is a folder): ``train/<class>/``, ``test/<class>/`` and optionally
    ``val/<class>/``; files are found recursively, hidden ones skipped, any extension accepted (the
    reader goes by content). Classes are sorted by name; the task is multiclass. A missing ``val/``
    (or ``test/``) is carved from ``train/``, stratified by class (``val_fraction``, ``test_fraction``
    of the train images, ``random_state=seed``).

    **CSV** (``source`` is a ``.csv`` file): image paths are relative to the CSV's folder unless
    absolute (CheXpert's paths, which start with the CSV's own folder name, are read from the folder
    above). Columns are auto-detected when not given:

    * image: the first of ``path, Path, image, Image Index, filename, file``;
    * patient: the first of ``patient_id, Patient ID, PatientID, patient``; else a ``patient<digits>``
      folder in the image path (CheXpert);
    * split: ``split`` (values train, val/valid/validation, test);
    * text: only when named with ``text_column`` (free text such as a report; similar-case search
      embeds it);
    * labels: NIH's ``Finding Labels`` ("A|B", "No Finding") when present, else every other column
      whose non-blank values are all 0, 1 or -1 (text and numeric columns such as Sex, Age, AP/PA drop out).

    Blank or -1 marks an uncertain label; ``uncertain`` maps it: "ignore" → NaN (masked out of the
    loss), "zero" → 0, "one" → 1. Without a split column, rows are split by patient
    (``GroupShuffleSplit``), so no patient is on two sides.

    Raises BadInput naming the file, folder, column or value that is wrong.

    Example::

        >>> # chest_xray/ holds train/, val/ and test/, each with NORMAL/ and PNEUMONIA/
        >>> xray = load_dataset(Path("chest_xray"))  # doctest: +SKIP
        >>> xray.task, xray.labels  # doctest: +SKIP
        ('multiclass', ['NORMAL', 'PNEUMONIA'])
        >>> chexpert = load_dataset(Path("CheXpert-v1.0-small/train.csv"), uncertain="zero")  # doctest: +SKIP
        >>> chexpert.task, chexpert.labels[:2]  # doctest: +SKIP
        ('multilabel', ['No Finding', 'Enlarged Cardiomediastinum'])
    """
    source = Path(source).expanduser()
    plan = _check_options(task, uncertain, val_fraction, test_fraction, seed)
    columns = _CsvColumns(image_column, patient_column, label_columns, split_column, text_column)
    if source.is_dir():
        given = [f.name for f in fields(columns) if getattr(columns, f.name) is not None]
        if given:
            raise BadInput(f"{', '.join(given)} apply to CSV files only, and {source} is a folder.")
        return _load_image_folder(source, task, plan)
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise BadInput(
                f"{source} is not a .csv file; give a CSV label table or a folder holding train/<class>/."
            )
        return _load_csv(source, task, uncertain, columns, plan)
    raise BadInput(
        f"{source} does not exist; give a folder with train/<class>/ subfolders or a CSV file of labels."
    )


def _check_options(
    task: str | None, uncertain: str, val_fraction: float, test_fraction: float, seed: int
) -> _SplitPlan:
    if task is not None and task not in get_args(Task):
        raise BadInput(f"task={task!r}; use one of {', '.join(get_args(Task))}, or leave it out.")
    if uncertain not in get_args(UncertainPolicy):
        raise BadInput(f"uncertain={uncertain!r}; use one of {', '.join(get_args(UncertainPolicy))}.")
    if not 0 < val_fraction < 1:
        raise BadInput(f"val_fraction={val_fraction} must lie strictly between 0 and 1.")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise BadInput(
            f"test_fraction={test_fraction} must lie in [0, 1) and leave room for training "
            f"(val_fraction + test_fraction = {val_fraction + test_fraction:g} must be below 1)."
        )
    return _SplitPlan(val_fraction, test_fraction, seed)


# --- image folder ------------------------------------------------------------------------------


def _load_image_folder(root: Path, task: Task | None, plan: _SplitPlan) -> LabelledDataset:
    if task == "multilabel":
        raise BadInput(
            f"{root} is an image folder (one class folder per image), which is multiclass; "
            "use a CSV label table for multilabel training."
        )
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise BadInput(
            f"{root} has no train/ folder; an image-folder dataset needs train/<class>/ and test/<class>/ "
            "subfolders (val/<class>/ optional)."
        )
    found = {"train": _class_folders(train_dir)}
    classes = sorted(found["train"])
    if len(classes) < 2:
        raise BadInput(
            f"{train_dir} has {len(classes)} class folder(s) ({', '.join(classes) or 'none'}); "
            "training needs at least 2 classes, one folder each."
        )
    for split in ("val", "test"):
        if (root / split).is_dir():
            found[split] = _class_folders(root / split)
            _check_same_classes(root / split, set(found[split]), set(classes))
    splits = {split: _folder_samples(folders, classes) for split, folders in found.items()}
    notes: list[str] = []
    strata = {split: [int(np.argmax(s.target)) for s in samples] for split, samples in splits.items()}
    carved = [split for split in ("val", "test") if split not in splits]
    splits = _carve_missing_splits(splits, strata, plan, notes, source="train/")
    if carved:
        notes.append("held-out images were chosen per image: one patient's images may fall on both sides")
    return LabelledDataset(root, "imagefolder", "multiclass", classes, splits, notes)


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _class_folders(split_dir: Path) -> dict[str, list[Path]]:
    """Class name → its image files (recursive, sorted, hidden files and folders skipped)."""
    folders: dict[str, list[Path]] = {}
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p for p in class_dir.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(class_dir))
        )
        if not files:
            raise BadInput(f"class folder {class_dir} is empty; add its images or remove the folder.")
        folders[class_dir.name] = files
    return folders


def _check_same_classes(split_dir: Path, found: set[str], classes: set[str]) -> None:
    if found != classes:
        missing, extra = sorted(classes - found), sorted(found - classes)
        raise BadInput(
            f"{split_dir} has different class folders from train/ (missing: {', '.join(missing) or 'none'}; "
            f"extra: {', '.join(extra) or 'none'}); use the same class folders in train/, val/ and test/."
        )


def _folder_samples(folders: dict[str, list[Path]], classes: list[str]) -> list[Sample]:
    samples = []
    for index, name in enumerate(classes):
        target = np.zeros(len(classes), dtype=np.float32)
        target[index] = 1.0
        target.flags.writeable = False  # shared by every sample of the class
        samples += [Sample(path, target) for path in folders[name]]
    return samples


# --- splitting ---------------------------------------------------------------------------------


def _carve_missing_splits(
    splits: dict[str, list[Sample]],
    strata: dict[str, list[int]] | None,
    plan: _SplitPlan,
    notes: list[str],
    *,
    source: str,
    groups: dict[str, list[str]] | None = None,
) -> dict[str, list[Sample]]:
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


# --- CSV label tables --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]  # line number of each row, for messages

    def column(self, name: str) -> list[str]:
        index = self.header.index(name)
        return [row[index].strip() for row in self.rows]

    def where(self, row: int) -> str:
        return f"line {self.lines[row]} of {self.path.name}"


def _read_table(path: Path) -> _Table:
    fix = "save it as UTF-8, comma-separated text with one header row"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} cannot be parsed as CSV (not UTF-8 text); {fix}.") from exc
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc}); check its permissions.") from exc
    if "\0" in text:
        raise BadInput(f"{path} cannot be parsed as CSV (it contains NUL bytes, so it is binary); {fix}.")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        header = [name.strip() for name in next(reader, [])]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise BadInput(
                    f"{path} cannot be parsed as CSV: line {reader.line_num} has {len(row)} fields and the "
                    f"header has {len(header)}; {fix}."
                )
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise BadInput(f"{path} cannot be parsed as CSV (line {reader.line_num}: {exc}); {fix}.") from exc
    _check_header(path, header, rows)
    return _Table(path, header, rows, lines)


def _check_header(path: Path, header: list[str], rows: list[list[str]]) -> None:
    if not header or not rows:
        raise BadInput(
            f"{path} has no {'header' if not header else 'rows'}; give a header row and one row per image."
        )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise BadInput(f"{path} names the column(s) {', '.join(map(repr, duplicates))} twice; rename them.")


def _known_column(table: _Table, name: str, option: str) -> str:
    if name not in table.header:
        raise BadInput(
            f"{option}={name!r} is not a column of {table.path}; its columns are: "
            f"{', '.join(map(repr, table.header))}."
        )
    return name


def _pick_column(table: _Table, given: str | None, candidates: Sequence[str], option: str) -> str | None:
    if given is not None:
        return _known_column(table, given, option)
    return next((name for name in candidates if name in table.header), None)


def _load_csv(
    csv_path: Path,
    task: Task | None,
    uncertain: UncertainPolicy,
    columns: _CsvColumns,
    plan: _SplitPlan,
) -> LabelledDataset:
    table = _read_table(csv_path)
    image_column = _pick_column(table, columns.image_column, IMAGE_COLUMNS, "image_column")
    if image_column is None:
        raise BadInput(
            f"{csv_path} has no image column (looked for {', '.join(IMAGE_COLUMNS)}); its columns are: "
            f"{', '.join(map(repr, table.header))}. Name it with image_column."
        )
    patient_column = _pick_column(table, columns.patient_column, PATIENT_COLUMNS, "patient_column")
    split_column = _pick_column(table, columns.split_column, SPLIT_COLUMNS, "split_column")
    text_column = _known_column(table, columns.text_column, "text_column") if columns.text_column else None
    notes: list[str] = []
    reserved = {image_column, patient_column, split_column, text_column}
    labels, raw = _csv_labels(table, columns.label_columns, reserved, notes)
    task = task or "multilabel"
    targets = _apply_uncertain_policy(raw, uncertain, notes)
    if task == "multiclass":
        _check_one_hot(table, labels, targets)
    written = _csv_written_paths(table, image_column)
    image_root = _csv_image_root(table, written, notes)
    paths = [p if p.is_absolute() else image_root / p for p in written]
    patients = _csv_patients(table, patient_column, written, notes)
    targets = targets.astype(np.float32)
    targets.flags.writeable = False  # each sample's target is a row view
    texts: Sequence[str | None] = table.column(text_column) if text_column else [None] * len(paths)
    samples = [
        Sample(path, target, patient, text)
        for path, target, patient, text in zip(paths, targets, patients, texts, strict=True)
    ]
    strata = [int(np.argmax(t)) for t in targets] if task == "multiclass" else None
    splits = _csv_splits(table, split_column, samples, strata, plan, notes)
    return LabelledDataset(csv_path, "csv", task, labels, splits, notes, image_root=image_root)


def _csv_labels(
    table: _Table, given: Sequence[str] | None, reserved: set[str | None], notes: list[str]
) -> tuple[list[str], np.ndarray]:
    """Label names and the raw (N, K) matrix of 1, 0, -1 and NaN (blank)."""
    if given is not None:
        named = [_known_column(table, name, "label_columns") for name in given]
        if not named:
            raise BadInput("label_columns is empty; name at least one label column.")
        if len(set(named)) != len(named):
            raise BadInput(f"label_columns={list(named)} names a column twice; name each label once.")
        raw = np.stack([_label_values(table, name) for name in named], axis=1)
        uncertain_only = [
            name for name, column in zip(named, raw.T, strict=True) if not np.isin(column, (0, 1)).any()
        ]
        if uncertain_only:
            raise BadInput(
                f"label column(s) {', '.join(uncertain_only)} hold no certain 0 or 1 value; drop them."
            )
        return named, raw
    if NIH_FINDINGS_COLUMN in table.header:
        return _nih_findings(table, notes)
    labels: list[str] = []
    columns: list[np.ndarray] = []
    skipped: list[str] = []
    for name in table.header:
        if name in reserved or not name or name.startswith("Unnamed:"):  # pandas' index column
            continue
        values = _try_label_values(table, name)
        # A column with no certain 0/1 value (all blank or -1) teaches nothing: it is not a label.
        if values is not None and np.isin(values, (0.0, 1.0)).any():
            labels.append(name)
            columns.append(values)
        else:
            skipped.append(name)
    if not labels:
        raise BadInput(
            f"{table.path} has no label columns (all values 0, 1, -1 or blank); its columns are: "
            f"{', '.join(map(repr, table.header))}. Name them with label_columns."
        )
    if skipped:
        notes.append(
            "columns not used as labels (not all 0/1/-1/blank, or no certain 0/1 value): "
            + ", ".join(skipped)
        )
    return labels, np.stack(columns, axis=1)


def _parse_label(cell: str) -> float | None:
    """1, 0, -1, or NaN for blank; None for anything else."""
    if cell == "" or cell.lower() == "nan":
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if value in (0.0, 1.0, -1.0) else None


def _try_label_values(table: _Table, name: str) -> np.ndarray | None:
    """The column as floats (NaN for blank), or None when a value is not a label value."""
    values = [_parse_label(cell) for cell in table.column(name)]
    if any(value is None for value in values):
        return None
    return np.array(values, dtype=np.float64)


def _label_values(table: _Table, name: str) -> np.ndarray:
    values = np.empty(len(table.rows), dtype=np.float64)
    for row, cell in enumerate(table.column(name)):
        value = _parse_label(cell)
        if value is None:
            raise BadInput(
                f"label column {name!r} has the value {cell!r} on {table.where(row)}; label values must be "
                "1, 0, -1 (uncertain) or blank (uncertain). Fix the value, or leave the column out."
            )
        values[row] = value
    return values


def _nih_findings(table: _Table, notes: list[str]) -> tuple[list[str], np.ndarray]:
    """NIH ChestX-ray14's one text column, "Effusion|Mass" or "No Finding", as 0/1 columns."""
    findings = [
        {name.strip() for name in cell.split("|")} - {"", NIH_NO_FINDING}
        for cell in table.column(NIH_FINDINGS_COLUMN)
    ]
    labels = sorted(set().union(*findings))
    if not labels:
        raise BadInput(
            f"{table.path}: every {NIH_FINDINGS_COLUMN!r} is {NIH_NO_FINDING!r}; there is nothing to learn."
        )
    raw = np.array([[float(label in row) for label in labels] for row in findings])
    notes.append(
        f"labels taken from NIH's {NIH_FINDINGS_COLUMN!r} column ('|'-separated; {NIH_NO_FINDING!r} = none)"
    )
    return labels, raw


def _apply_uncertain_policy(raw: np.ndarray, policy: UncertainPolicy, notes: list[str]) -> np.ndarray:
    uncertain = np.isnan(raw) | (raw == -1)
    count = int(uncertain.sum())
    replacement = {"ignore": np.nan, "zero": 0.0, "one": 1.0}[policy]
    if count:
        meaning = {"ignore": "ignored (NaN, left out of the loss)", "zero": "set to 0", "one": "set to 1"}[
            policy
        ]
        notes.append(f"{count} uncertain label value(s) (blank or -1) {meaning}")
    return np.where(uncertain, replacement, raw)


def _check_one_hot(table: _Table, labels: list[str], targets: np.ndarray) -> None:
    if len(labels) < 2:
        raise BadInput(f"task multiclass needs at least 2 label columns; {table.path} has {labels}.")
    valid = np.isin(targets, (0.0, 1.0)).all(axis=1) & (np.nansum(targets, axis=1) == 1)
    if not valid.all():
        row = int(np.argmin(valid))
        raise BadInput(
            f"task multiclass needs exactly one 1 (and 0 elsewhere) in the label columns of every row, but "
            f"{table.where(row)} has {targets[row].tolist()}; use task multilabel, or fix the row."
        )


def _csv_written_paths(table: _Table, column: str) -> list[Path]:
    """Image paths as the CSV writes them (backslashes of paths written on Windows made forward)."""
    values = table.column(column)
    for row, value in enumerate(values):
        if not value:
            raise BadInput(
                f"{table.where(row)} has no image path in column {column!r}; fill it or drop the row."
            )
    return [Path(value.replace("\\", "/")) for value in values]


def _csv_image_root(table: _Table, written: list[Path], notes: list[str]) -> Path:
    """The CSV's folder, or the folder above it for CheXpert ("CheXpert-v1.0-small/train/...")."""
    csv_dir = table.path.parent
    own_name = table.path.absolute().parent.name
    relative = [p for p in written if not p.is_absolute()]
    if relative and all(p.parts[:1] == (own_name,) for p in relative) and not (csv_dir / own_name).exists():
        notes.append(
            f"image paths start with the CSV's own folder name {own_name!r}: read from the folder above"
        )
        return csv_dir.parent
    return csv_dir


def _csv_patients(
    table: _Table, column: str | None, written: list[Path], notes: list[str]
) -> list[str | None]:
    if column is not None:
        return [value or None for value in table.column(column)]
    # The last patient<digits> folder, so a parent folder that happens to match does not join everyone.
    derived = [
        next((part for part in reversed(p.parts) if _PATIENT_IN_PATH.fullmatch(part)), None) for p in written
    ]
    if any(derived):
        notes.append("patient ids taken from patient<digits> folders in the image paths (no patient column)")
    return derived


def _csv_splits(
    table: _Table,
    split_column: str | None,
    samples: list[Sample],
    strata: list[int] | None,
    plan: _SplitPlan,
    notes: list[str],
) -> dict[str, list[Sample]]:
    found, found_strata = _given_splits(table, split_column, samples, strata)
    if not found["train"]:
        raise BadInput(f"no row of {table.path} is marked 'train' in the {split_column!r} column; mark some.")
    groups, group_notes = _patient_groups(found)
    if split_column is not None:
        notes.append(f"splits taken from the {split_column!r} column")
        _note_patients_across_splits(found, notes)
        if "test" not in found:
            found["test"] = []
            notes.append(f"the {split_column!r} column has no test rows: the test split is empty")
    if any(split not in found for split in ("val", "test")):
        notes.extend(group_notes)
    source = (
        f"the {'training ' if split_column else ''}{'patients' if groups else 'rows'} of {table.path.name}"
    )
    return _carve_missing_splits(found, found_strata, plan, notes, source=source, groups=groups)


def _given_splits(
    table: _Table, split_column: str | None, samples: list[Sample], strata: list[int] | None
) -> tuple[dict[str, list[Sample]], dict[str, list[int]] | None]:
    if split_column is None:
        return {"train": samples}, ({"train": strata} if strata is not None else None)
    names = []
    for row, value in enumerate(table.column(split_column)):
        name = SPLIT_VALUES.get(value.lower())
        if name is None:
            raise BadInput(
                f"split column {split_column!r} has the value {value!r} on {table.where(row)}; "
                f"use one of {', '.join(SPLIT_VALUES)}."
            )
        names.append(name)
    found = {s: [sample for sample, n in zip(samples, names, strict=True) if n == s] for s in SPLITS}
    found = {s: rows for s, rows in found.items() if rows or s == "train"}
    if strata is None:
        return found, None
    return found, {s: [c for c, n in zip(strata, names, strict=True) if n == s] for s in found}


def _patient_groups(found: dict[str, list[Sample]]) -> tuple[dict[str, list[str]] | None, list[str]]:
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


def _note_patients_across_splits(found: dict[str, list[Sample]], notes: list[str]) -> None:
    seen: dict[str, set[str]] = {}
    for split, samples in found.items():
        for sample in samples:
            if sample.patient_id is not None:
                seen.setdefault(sample.patient_id, set()).add(split)
    straddling = sum(len(splits) > 1 for splits in seen.values())
    if straddling:
        notes.append(f"warning: the split column puts {straddling} patient(s) on more than one side")


# --- scanning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanReport:
    """What ``scan_images`` found.

    ``manifest`` is DVC-``.dir``-like: a list of ``{"relpath", "sha256", "size", "split", "channels"}``, one
    per readable file, sorted by relpath, relpath relative to the dataset's image root, with POSIX
    separators. DVC's ``.dir`` files hold ``{"md5", "relpath"}``; this one carries the sha256 that Sahay
    records everywhere. ``fingerprint`` is the sha256 of the manifest's canonical JSON (sorted keys, no
    spaces), which is exactly what ``write_manifest`` writes.
    """

    readable: dict[str, list[Sample]]
    skipped: list[tuple[Path, str]]
    manifest: list[dict[str, object]]
    fingerprint: str


def scan_images(
    dataset: LabelledDataset,
    *,
    max_unreadable_fraction: float = 0.05,
    settings: Settings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanReport:
    """Read every image once through ``read_image``; keep those that decode, list those that do not.

    ``progress(done, total)`` is called after each file. Raises BadInput when more than
    ``max_unreadable_fraction`` of the images cannot be read, or a split loses all its images.
    """
    if not 0 <= max_unreadable_fraction <= 1:
        raise BadInput(f"max_unreadable_fraction={max_unreadable_fraction} must lie in [0, 1].")
    split_of = {s.path: split for split in SPLITS for s in dataset.splits.get(split, [])}
    paths = list(split_of)
    base = _image_base(dataset)
    entries: list[dict[str, object]] = []
    failures: dict[Path, str] = {}
    for done, path in enumerate(paths, start=1):
        try:
            image = read_image(path, settings=settings)
            entries.append(
                {
                    "relpath": _relpath(path, base),
                    "sha256": image.info.sha256,
                    "size": path.stat().st_size,
                    "split": split_of[path],
                    "channels": image.info.channels,
                }
            )
        except BadInput as exc:
            failures[path] = str(exc)
        if progress is not None:
            progress(done, len(paths))
    _check_unreadable(failures, len(paths), max_unreadable_fraction)
    readable = {
        split: [s for s in dataset.splits.get(split, []) if s.path not in failures] for split in SPLITS
    }
    _check_splits_survive(dataset, readable, failures)
    manifest = sorted(entries, key=lambda entry: str(entry["relpath"]))
    fingerprint = hashlib.sha256(_canonical_json(manifest).encode("utf-8")).hexdigest()
    return ScanReport(readable, list(failures.items()), manifest, fingerprint)


def write_manifest(report: ScanReport, path: Path) -> None:
    """Write the manifest as canonical JSON, atomically; the file's sha256 is ``report.fingerprint``."""
    atomic_write_text(Path(path), _canonical_json(report.manifest))


def _canonical_json(manifest: list[dict[str, object]]) -> str:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _image_base(dataset: LabelledDataset) -> Path:
    if dataset.image_root is not None:
        return dataset.image_root
    return dataset.root if dataset.layout == "imagefolder" else dataset.root.parent


def _relpath(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _check_unreadable(failures: dict[Path, str], total: int, max_fraction: float) -> None:
    if len(failures) <= max_fraction * total:
        return
    first = list(failures.items())[:_SHOWN_FAILURES]
    # Some reasons name the whole path, some only the file name (not enough: CheXpert repeats names).
    shown = " | ".join(reason if str(path) in reason else f"{path}: {reason}" for path, reason in first)
    raise BadInput(
        f"{len(failures)} of {total} images ({len(failures) / total:.0%}) cannot be read, more than the "
        f"{max_fraction:.0%} allowed. First: {shown} Fix or remove them, or allow more with "
        "max_unreadable_fraction."
    )


def _check_splits_survive(
    dataset: LabelledDataset, readable: dict[str, list[Sample]], failures: dict[Path, str]
) -> None:
    for split in SPLITS:
        samples = dataset.splits.get(split, [])
        if samples and not readable[split]:
            raise BadInput(
                f"none of the {len(samples)} images of the {split} split of {dataset.root} can be read "
                f"(the first: {failures[samples[0].path]}). Fix them, or give that split other images."
            )


# --- training-time dataset ---------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Light, label-preserving augmentation of [0, 1] pixels, drawn from torch's RNG.

    ``horizontal_flip`` is off by default: flips break laterality on chest films (heart on the left).
    """

    rotation_degrees: float = 7.0
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.1  # additive, in [0, 1] pixel units
    contrast: float = 0.1  # multiplicative, around the image mean
    horizontal_flip: bool = False

    def __post_init__(self) -> None:
        low, high = self.scale
        if self.rotation_degrees < 0 or not 0 < low <= high:
            raise BadInput(
                f"Augment(rotation_degrees={self.rotation_degrees}, scale={self.scale}): rotation must be "
                ">= 0 and scale a (low, high) pair with 0 < low <= high."
            )
        if not (0 <= self.brightness <= 1 and 0 <= self.contrast <= 1):
            raise BadInput(
                f"Augment brightness={self.brightness}, contrast={self.contrast}: each must lie in [0, 1]."
            )

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Return augmented float32 pixels in [0, 1], same shape as ``pixels``."""
        # Always draw the same count of numbers, so one setting never shifts the others' stream.
        u = [float(v) for v in torch.rand(5)]
        angle = (2 * u[0] - 1) * self.rotation_degrees
        scale = self.scale[0] + u[1] * (self.scale[1] - self.scale[0])
        shift = (2 * u[2] - 1) * self.brightness
        factor = 1 + (2 * u[3] - 1) * self.contrast
        image = pixels.astype(np.float32, copy=True)
        if angle != 0 or scale != 1:
            image = _rotate_and_scale(image, angle, scale)
        if shift != 0 or factor != 1:
            # Written as x*f + m*(1-f) so that f=1 leaves x bit-for-bit unchanged.
            image = image * factor + float(image.mean()) * (1 - factor) + shift
        if self.horizontal_flip and u[4] < 0.5:
            image = image[:, ::-1]
        return np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32)


def _rotate_and_scale(image: np.ndarray, angle: float, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    warped = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return warped[..., None] if warped.ndim == 2 and image.ndim == 3 else warped


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Samples as (input (C, S, S) from ``preprocess``, float32 target (K,) with NaN kept).

    With ``cache`` the decoded pixels are kept in memory as float16, shrunk so the short side is at
    most 2 × ``spec.size``, so later epochs do not decode again. With DataLoader workers each worker
    keeps its own cache: use ``persistent_workers=True`` so it survives between epochs. Augmentation
    draws from torch's RNG: ``torch.manual_seed`` (and a seeded DataLoader ``generator``) make epochs
    repeatable on the CPU.

    Example::

        train = ImageDataset(report.readable["train"], bundle.manifest.input, augment=Augment())
        inputs, targets = train[0]
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        spec: InputSpec,
        *,
        augment: Augment | None = None,
        settings: Settings | None = None,
        cache: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.spec = spec
        self.augment = augment
        self.settings = settings
        self.cache = cache
        self._pixels: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        pixels = self._load(sample.path)
        if self.augment is not None:
            pixels = self.augment(pixels)
        inputs, _ = preprocess(pixels, self.spec)
        return inputs, torch.tensor(sample.target, dtype=torch.float32)

    def _load(self, path: Path) -> np.ndarray:
        cached = self._pixels.get(path)
        if cached is not None:
            return cached.astype(np.float32)
        pixels = self._decode(path)
        if not self.cache:
            return pixels
        self._pixels[path] = _shrink(pixels, 2 * self.spec.size).astype(np.float16)
        return self._pixels[path].astype(np.float32)

    def _decode(self, path: Path) -> np.ndarray:
        try:
            return read_image(path, settings=self.settings).pixels
        except BadInput as exc:
            raise BadInput(
                f"{path} can no longer be decoded ({exc}); it was readable when the dataset was scanned, "
                "so it has changed or gone since. Restore it, or scan the dataset again."
            ) from exc


def _shrink(pixels: np.ndarray, short_side: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    if min(height, width) <= short_side:
        return pixels
    ratio = short_side / min(height, width)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    shrunk = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return shrunk[..., None] if shrunk.ndim == 2 and pixels.ndim == 3 else shrunk


# --- loss weights ------------------------------------------------------------------------------


def class_weights(dataset: LabelledDataset, split: str = "train") -> torch.Tensor:
    """Loss weights that counter class imbalance, float32 (K,).

    * multilabel: BCE ``pos_weight`` = negatives / positives per label, clamped to [1/100, 100]
      (a label with no positives gets 100; one with no labelled rows gets 1);
    * multiclass: cross-entropy ``weight`` = 1 / class frequency, normalised to mean 1.
    """
    if not dataset._samples(split):
        raise BadInput(f"the {split} split of {dataset.root} is empty; class weights need its images.")
    positives = dataset.positives(split).astype(np.float64)
    if dataset.task == "multiclass":
        inverse = 1.0 / np.maximum(positives, 1.0)
        return torch.tensor(inverse / inverse.mean(), dtype=torch.float32)
    negatives = dataset.negatives(split).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(positives + negatives == 0, 1.0, negatives / positives)
    return torch.tensor(np.clip(ratio, *_POS_WEIGHT_RANGE), dtype=torch.float32)
