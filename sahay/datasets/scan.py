"""Scanning: read every image of a dataset once, keep those that decode, and write a manifest.

``scan_images`` reads through the project's one reader (``read_image``), so what trains is what
analysis would read; the manifest is DVC-``.dir``-like and its sha256 fingerprints the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sahay.config import Settings
from sahay.datasets.dataset import LabelledDataset, Sample
from sahay.datasets.splits import SPLITS
from sahay.errors import BadInput
from sahay.fileio import atomic_write_text
from sahay.imaging.reader import read_image

_SHOWN_FAILURES = 5


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
