"""The image-folder layout: one folder per class, in split folders or not.

Kaggle chest X-ray pneumonia, BreakHis and brain MRI slices come like this: one class per image,
so the task is multiclass. Recognised, in this order:

- split folders, each holding one folder per class: ``train/`` (or ``training/``,
  ``train_dataset/``, ``train_data/``, ``train_set/``), optionally ``val/`` (``valid/``,
  ``validation/``, ``val_dataset/``, ...) and ``test/`` (``testing/``, ``test_dataset/``, ...);
- a flat folder of class folders (``data/benign/``, ``data/malignant/``): every image is in the
  training pool.

Classes are sorted by name; a missing validation or test split is carved from the training pool,
stratified by class and seeded, and the dataset's notes say which layout was recognised and how
each split was made.
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
    split_dirs = _split_folders(root)
    notes: list[str] = []
    if "train" in split_dirs:
        train_dir = split_dirs["train"]
        named = ", ".join(f"{path.name}/ as {split}" for split, path in split_dirs.items())
        notes.append(f"layout: split folders ({named})")
    else:
        train_dir = root  # a flat folder of class folders: the whole of it is the training pool
        notes.append(f"layout: class folders directly in {root.name}/; every image is in the training pool")
    found = {"train": _class_folders(train_dir)}
    classes = sorted(found["train"])
    if len(classes) < 2:
        raise BadInput(
            f"{train_dir} has {len(classes)} class folder(s) ({', '.join(classes) or 'none'}); training "
            "needs at least 2 classes, one folder each: either <class>/ folders, or train/<class>/ "
            "with test/<class>/ (val/<class>/ optional)."
        )
    for split in ("val", "test"):
        if split in split_dirs:
            found[split] = _class_folders(split_dirs[split])
            _check_same_classes(split_dirs[split], set(found[split]), set(classes))
    splits = {split: _folder_samples(folders, classes) for split, folders in found.items()}
    strata = {split: [int(np.argmax(s.target)) for s in samples] for split, samples in splits.items()}
    carved = [split for split in ("val", "test") if split not in splits]
    splits = carve_missing_splits(splits, strata, options.plan, notes, source=f"{train_dir.name}/")
    if carved:
        notes.append("held-out images were chosen per image: one patient's images may fall on both sides")
    return LabelledDataset(
        root, IMAGE_FOLDER.name, "multiclass", classes, splits, notes, layout_title=IMAGE_FOLDER.title
    )


SPLIT_NAMES = {
    "train": ("train", "training", "train_dataset", "train_data", "train_set", "trainset"),
    "val": ("val", "valid", "validation", "val_dataset", "validation_dataset", "val_data", "val_set"),
    "test": ("test", "testing", "test_dataset", "test_data", "test_set", "testset"),
}


def _split_folders(root: Path) -> dict[str, Path]:
    """The split folders under ``root`` by the names users give them (any case); none for a flat
    folder of class folders. Two folders for one split ("val/" and "valid/") are refused."""
    folders = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    found = {}
    for split, names in SPLIT_NAMES.items():
        present = [folders[name] for name in names if name in folders]
        if len(present) > 1:
            raise BadInput(
                f"{root} has {' and '.join(p.name + '/' for p in present)}: both look like the {split} "
                "split; keep one."
            )
        if present:
            found[split] = present[0]
    if found and "train" not in found:
        raise BadInput(
            f"{root} has {', '.join(p.name + '/' for p in found.values())} but no training folder "
            "(train/, training/ or train_dataset/)."
        )
    return found


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
