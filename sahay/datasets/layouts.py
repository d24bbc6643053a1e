"""Labelled image datasets for fine-tuning: the registry of layouts, and ``load_dataset``.

Two layouts cover what users bring (``LAYOUTS``, in the order they are tried):

* an **image folder** (Kaggle chest X-ray pneumonia, BreakHis, brain MRI slices):
  ``train/<class>/*``, ``test/<class>/*`` and optionally ``val/<class>/*`` (also named
  ``train_dataset/``, ``valid/``, ``test_dataset/``, ...), or class folders directly
  (``data/benign/``, ``data/malignant/``); one class per image (``imagefolder``);
* a **CSV label table** (CheXpert, NIH ChestX-ray14): one row per image, one 0/1 column per label,
  blank or -1 for an uncertain label (``csv_table``).

``load_dataset`` picks the layout, the labels and the train/val/test splits (``splits``), and
records every decision it made for the user in ``notes``. ``scan_images`` (``scan``) reads every
image once through the project's one reader and writes a DVC-like manifest. ``ImageDataset``
(``torch_data``) feeds a model, with light augmentation.

A new layout is one module with ``detect`` and ``load`` (returning a ``LabelledDataset``) plus its
line in ``LAYOUTS`` (``registry``), tried in that order. Importing this module imports neither
torch nor OpenCV.

Example::

    dataset = load_dataset(Path("chest_xray"))            # train/, test/ (and maybe val/) inside
    report = scan_images(dataset)
    train = ImageDataset(report.readable["train"], bundle_spec, augment=Augment())
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from sahay.analysis import Task
from sahay.datasets.dataset import CsvColumns, LabelledDataset, LoadOptions, UncertainPolicy
from sahay.datasets.registry import LAYOUTS, DatasetLayout
from sahay.datasets.splits import SplitPlan, split_plan
from sahay.errors import BadInput


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

    The first layout in ``LAYOUTS`` whose detector claims ``source`` reads it: a folder is an image
    folder, a ``.csv`` file a CSV label table.

    **Image folder** (``source`` is a folder): ``train/<class>/``, ``test/<class>/`` and optionally
    ``val/<class>/``, under the names users give them (``sahay.datasets.imagefolder.SPLIT_NAMES``),
    or class folders directly; files are found recursively, hidden ones skipped, any extension
    accepted (the reader goes by content). Classes are sorted by name; the task is multiclass. A
    missing validation (or test) split is carved from the training pool, stratified by class
    (``val_fraction``, ``test_fraction`` of the training images, ``random_state=seed``).

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
    columns = CsvColumns(image_column, patient_column, label_columns, split_column, text_column)
    layout = detect_layout(source)
    return layout.load(source, LoadOptions(task, uncertain, columns, plan))


def detect_layout(source: Path) -> DatasetLayout:
    """The first layout in ``LAYOUTS`` that claims ``source``; BadInput when none does."""
    source = Path(source).expanduser()
    for layout in LAYOUTS.values():
        if layout.detect(source):
            return layout
    if source.is_file():
        raise BadInput(f"{source} is not a .csv file; give a CSV label table or a folder of class folders.")
    raise BadInput(
        f"{source} does not exist; give a folder of class folders (or train/<class>/ and test/<class>/) "
        "or a CSV file of labels."
    )


def _check_options(
    task: str | None, uncertain: str, val_fraction: float, test_fraction: float, seed: int
) -> SplitPlan:
    if task is not None and task not in get_args(Task):
        raise BadInput(f"task={task!r}; use one of {', '.join(get_args(Task))}, or leave it out.")
    if uncertain not in get_args(UncertainPolicy):
        raise BadInput(f"uncertain={uncertain!r}; use one of {', '.join(get_args(UncertainPolicy))}.")
    return split_plan(val_fraction, test_fraction, seed)
