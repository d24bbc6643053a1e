"""Small labelled datasets for the dataset tests: image folders of PNGs, CheXpert-like CSV rows."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sahay.datasets import Sample
from tests.factories import write_png

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
