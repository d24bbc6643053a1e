"""The CSV layout: one row per image, one 0/1 column per label (CheXpert, NIH ChestX-ray14).

Columns are detected when not named: the image column, the patient column (or ``patient<digits>``
folders in the paths), a ``split`` column, and the label columns (NIH's ``Finding Labels`` when
present, else every column whose values are all 0, 1, -1 or blank). Blank or -1 marks an
uncertain label, mapped by the ``UncertainPolicy``. ``text_column`` names a free-text column
(a report, notes). Rows are split by patient where the table gives no split.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sahay.analysis import Task
from sahay.datasets.dataset import LabelledDataset, LoadOptions, Sample, UncertainPolicy
from sahay.datasets.registry import LAYOUTS
from sahay.datasets.splits import (
    SPLIT_VALUES,
    SPLITS,
    SplitPlan,
    carve_missing_splits,
    note_patients_across_splits,
    patient_groups,
)
from sahay.errors import BadInput

IMAGE_COLUMNS = ("path", "Path", "image", "Image Index", "filename", "file")
PATIENT_COLUMNS = ("patient_id", "Patient ID", "PatientID", "patient")
SPLIT_COLUMNS = ("split",)
NIH_FINDINGS_COLUMN = "Finding Labels"
NIH_NO_FINDING = "No Finding"
_PATIENT_IN_PATH = re.compile(r"patient\d+")


def is_csv_table(source: Path) -> bool:
    """Whether ``source`` is a ``.csv`` file; ``load_csv`` says what is wrong with it, if anything."""
    return source.is_file() and source.suffix.lower() == ".csv"


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


def list_csv_images(csv_path: Path, image_column: str | None = None) -> list[tuple[Path, dict[str, str]]]:
    """Each row's image path and the row itself, for a CSV of paths with or without labels."""
    table = _read_table(csv_path)
    column = _pick_column(table, image_column, IMAGE_COLUMNS, "image_column")
    if column is None:
        raise BadInput(
            f"{csv_path} has no image column (looked for {', '.join(IMAGE_COLUMNS)}); its columns are: "
            f"{', '.join(map(repr, table.header))}. Name it with --image-column."
        )
    written = _csv_written_paths(table, column)
    image_root = _csv_image_root(table, written, [])
    paths = [p if p.is_absolute() else image_root / p for p in written]
    return [
        (path, dict(zip(table.header, row, strict=False)))
        for path, row in zip(paths, table.rows, strict=True)
    ]


def load_csv(csv_path: Path, options: LoadOptions) -> LabelledDataset:
    """Read the labels and splits of the CSV label table ``csv_path`` (see ``load_dataset``)."""
    columns = options.columns
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
    task: Task = options.task or "multilabel"
    targets = _apply_uncertain_policy(raw, options.uncertain, notes)
    if task == "multiclass":
        _check_one_hot(table, labels, targets)
    written = _csv_written_paths(table, image_column)
    image_root = _csv_image_root(table, written, notes)
    paths = [p if p.is_absolute() else image_root / p for p in written]
    patients = _csv_patients(table, patient_column, written, notes)
    targets = targets.astype(np.float32)
    targets.flags.writeable = False  # each sample's target is a row view
    texts: Sequence[str | None] = table.column(text_column) if text_column else [None] * len(paths)
    rows = [dict(zip(table.header, row, strict=False)) for row in table.rows]
    samples = [
        Sample(path, target, patient, text, row)
        for path, target, patient, text, row in zip(paths, targets, patients, texts, rows, strict=True)
    ]
    strata = [int(np.argmax(t)) for t in targets] if task == "multiclass" else None
    splits = _csv_splits(table, split_column, samples, strata, options.plan, notes)
    return LabelledDataset(
        csv_path,
        CSV_TABLE.name,
        task,
        labels,
        splits,
        notes,
        image_root=image_root,
        layout_title=CSV_TABLE.title,
    )


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
    plan: SplitPlan,
    notes: list[str],
) -> dict[str, list[Sample]]:
    found, found_strata = _given_splits(table, split_column, samples, strata)
    if not found["train"]:
        raise BadInput(f"no row of {table.path} is marked 'train' in the {split_column!r} column; mark some.")
    groups, group_notes = patient_groups(found)
    if split_column is not None:
        notes.append(f"splits taken from the {split_column!r} column")
        note_patients_across_splits(found, notes)
        if "test" not in found:
            found["test"] = []
            notes.append(f"the {split_column!r} column has no test rows: the test split is empty")
    if any(split not in found for split in ("val", "test")):
        notes.extend(group_notes)
    source = (
        f"the {'training ' if split_column else ''}{'patients' if groups else 'rows'} of {table.path.name}"
    )
    return carve_missing_splits(found, found_strata, plan, notes, source=source, groups=groups)


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


CSV_TABLE = LAYOUTS["csv"]
detect = is_csv_table
load = load_csv
