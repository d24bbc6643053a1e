"""Scanning a dataset: every image read once, unreadable ones skipped or refused, the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sahay.datasets import load_dataset, scan_images, write_manifest
from sahay.errors import BadInput
from tests.datasets.helpers import make_folder, paths_of, pixels
from tests.factories import write_dicom, write_jpeg, write_png


def test_mixed_formats_scan_and_the_manifest_records_each_file(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "mixed", {"train": {"b": 2}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    )
    class_a = root / "train" / "a"
    class_a.mkdir()
    write_png(class_a / "one.png", pixels(1))
    write_jpeg(class_a / "two.jpg", pixels(2))
    write_dicom(class_a / "three", pixels(3).astype(np.uint16) * 100)  # no extension: sniffed by content

    dataset = load_dataset(root)
    seen: list[tuple[int, int]] = []
    report = scan_images(dataset, progress=lambda done, total: seen.append((done, total)))

    assert report.skipped == []
    assert len(report.readable["train"]) == 5
    assert seen[-1] == (9, 9)
    by_relpath = {str(entry["relpath"]): entry for entry in report.manifest}
    assert list(by_relpath) == sorted(by_relpath) and len(by_relpath) == 9
    for name in ("one.png", "two.jpg", "three"):
        entry = by_relpath[f"train/a/{name}"]
        data = (class_a / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)

    manifest_file = tmp_path / "out" / "dataset.json"
    write_manifest(report, manifest_file)
    assert json.loads(manifest_file.read_text()) == report.manifest
    assert hashlib.sha256(manifest_file.read_bytes()).hexdigest() == report.fingerprint

    write_png(class_a / "one.png", pixels(99))
    assert scan_images(dataset).fingerprint != report.fingerprint


def _folder_with_text_files(root: Path, counts: dict[str, dict[str, int]], broken: int) -> list[Path]:
    make_folder(root, counts)
    victims = sorted((root / "train").rglob("*.png"))[:broken]
    for path in victims:
        path.write_text("this is not an image")
    return victims


def test_too_many_unreadable_images_is_bad_input(tmp_path: Path) -> None:
    counts = {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    victims = _folder_with_text_files(tmp_path / "d", counts, broken=3)

    with pytest.raises(BadInput, match=r"3 of 10 images \(30%\) cannot be read") as caught:
        scan_images(load_dataset(tmp_path / "d"), max_unreadable_fraction=0.05)
    assert victims[0].name in str(caught.value)


def test_a_few_unreadable_images_are_skipped_with_their_reason(tmp_path: Path) -> None:
    counts = {"train": {"a": 12, "b": 12}, "val": {"a": 4, "b": 4}, "test": {"a": 4, "b": 4}}
    (victim,) = _folder_with_text_files(tmp_path / "d", counts, broken=1)

    report = scan_images(load_dataset(tmp_path / "d"), max_unreadable_fraction=0.05)

    assert [path for path, _ in report.skipped] == [victim]
    assert "not a DICOM, PNG, JPEG or TIFF" in report.skipped[0][1]
    assert len(report.readable["train"]) == 23 and victim not in paths_of(report.readable["train"])
    assert len(report.manifest) == 39


def test_a_split_with_no_readable_image_is_bad_input(tmp_path: Path) -> None:
    root = make_folder(
        tmp_path / "d", {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    )
    for path in (root / "val").rglob("*.png"):
        path.write_text("not an image")
    with pytest.raises(BadInput, match="none of the 2 images of the val split"):
        scan_images(load_dataset(root), max_unreadable_fraction=1.0)
