"""The image-folder layout: ``train/<class>/*``, ``test/<class>/*`` and optionally ``val/<class>/*``.

Kaggle chest X-ray pneumonia, BreakHis and brain MRI slices come like this: one class per image,
so the task is multiclass. Classes are sorted by name; a missing ``val/`` (or ``test/``) is carved
from ``train/``, stratified by class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sahay.datasets.dataset import LabelledDataset, LoadOptions, Sample
from sahay.datasets.registry import LAYOUTS
from sahay.datasets.splits import carve_missing_splits
from sahay.errors import BadInput


def is_image_folder(source: Path) -> bool:
    """Whether ``source`` is a folder; ``load_image_folder`` says what is wrong with it, if anything."""
    return source.is_dir()


def load_image_folder(root: Path, options: LoadOptions) -> LabelledDataset:
    """Read the classes and splits of the image folder ``root`` (see ``load_dataset``)."""
    given = options.columns.given()
    if given:
        raise BadInput(f"{', '.join(given)} apply to CSV files only, and {root} is a folder.")
    if options.task == "multilabel":
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
    splits = carve_missing_splits(splits, strata, options.plan, notes, source="train/")
    if carved:
        notes.append("held-out images were chosen per image: one patient's images may fall on both sides")
    return LabelledDataset(
        root, IMAGE_FOLDER.name, "multiclass", classes, splits, notes, layout_title=IMAGE_FOLDER.title
    )


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


IMAGE_FOLDER = LAYOUTS["imagefolder"]
detect = is_image_folder
load = load_image_folder
