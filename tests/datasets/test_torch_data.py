"""The torch Dataset, augmentation and class weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from sahay.datasets import Augment, ImageDataset, LabelledDataset, Sample, load_dataset
from sahay.datasets import class_weights as weights_for
from sahay.errors import BadInput
from sahay.imaging.reader import read_image
from sahay.models.bundle import InputSpec
from sahay.models.preprocess import preprocess
from tests.datasets.helpers import make_folder, pixels, write_csv
from tests.factories import write_png

SPEC = InputSpec(size=16, channels=1, resize="stretch")


@pytest.fixture
def small_dataset(tmp_path: Path) -> LabelledDataset:
    return load_dataset(make_folder(tmp_path / "d", {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 1}}))


def test_items_have_the_spec_shape_and_range(small_dataset: LabelledDataset) -> None:
    dataset = ImageDataset(small_dataset.splits["train"], SPEC, augment=Augment())
    inputs, target = dataset[0]
    assert inputs.shape == (1, 16, 16) and inputs.dtype == torch.float32
    assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0
    assert (
        target.dtype == torch.float32 and target.tolist() == small_dataset.splits["train"][0].target.tolist()
    )
    assert len(dataset) == len(small_dataset.splits["train"])


def test_augmentation_is_repeatable_with_a_seed(small_dataset: LabelledDataset) -> None:
    augment = Augment(
        rotation_degrees=15, scale=(0.8, 1.2), brightness=0.2, contrast=0.2, horizontal_flip=True
    )
    dataset = ImageDataset(small_dataset.splits["train"], SPEC, augment=augment)

    def epoch(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [dataset[i][0] for i in range(len(dataset))]

    first, second, other = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_unaugmented_items_equal_preprocess_of_read_image(small_dataset: LabelledDataset) -> None:
    samples = small_dataset.splits["train"]
    uncached, cached = ImageDataset(samples, SPEC, cache=False), ImageDataset(samples, SPEC)
    for index, sample in enumerate(samples):
        expected = preprocess(read_image(sample.path).pixels, SPEC)[0]
        assert torch.equal(uncached[index][0], expected)
        torch.testing.assert_close(cached[index][0], expected, atol=2e-3, rtol=0)


def test_the_cache_avoids_decoding_again_and_shrinks_large_images(tmp_path: Path) -> None:
    image = write_png(tmp_path / "big.png", pixels(5, (120, 90)))
    sample = Sample(image, np.array([1.0], dtype=np.float32))
    cached, uncached = ImageDataset([sample], SPEC), ImageDataset([sample], SPEC, cache=False)
    expected = preprocess(read_image(image).pixels, SPEC)[0]

    first = cached[0][0]
    torch.testing.assert_close(first, expected, atol=0.05, rtol=0)  # shrunk to 32 px, then to 16 px
    assert not torch.equal(first, expected)  # so it really was shrunk first
    image.write_text("gone")
    assert torch.equal(cached[0][0], first)  # served from memory, not decoded again
    with pytest.raises(BadInput, match=r"big\.png can no longer be decoded"):
        uncached[0]


def test_no_flip_unless_asked(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (20, 1))  # dark left, bright right
    sample = Sample(write_png(tmp_path / "ramp.png", ramp), np.array([1.0], dtype=np.float32))
    plain = ImageDataset([sample], SPEC)[0][0]
    identity = {"rotation_degrees": 0.0, "scale": (1.0, 1.0), "brightness": 0.0, "contrast": 0.0}
    never = ImageDataset([sample], SPEC, augment=Augment(**identity, horizontal_flip=False))  # type: ignore[arg-type]
    sometimes = ImageDataset([sample], SPEC, augment=Augment(**identity, horizontal_flip=True))  # type: ignore[arg-type]

    torch.manual_seed(0)
    assert all(torch.equal(never[0][0], plain) for _ in range(20))
    flipped = [torch.equal(sometimes[0][0], torch.flip(plain, dims=[2])) for _ in range(20)]
    assert any(flipped) and not all(flipped)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Augment(scale=(1.2, 0.8)),
        lambda: Augment(rotation_degrees=-1),
        lambda: Augment(brightness=2),
    ],
)
def test_invalid_augment_settings(make: Callable[[], Augment]) -> None:
    with pytest.raises(BadInput, match="Augment"):
        make()


def test_class_weights_for_multilabel_and_multiclass(tmp_path: Path) -> None:
    rows = [
        ["t0.png", "train", 1, 0, 1, 1],
        ["t1.png", "train", 0, 0, 1, 0],
        ["t2.png", "train", 0, 0, 1, -1],
        ["t3.png", "train", 0, 0, 1, ""],
        ["v.png", "val", 1, 1, 0, 0],
    ]
    header = ["path", "split", "A", "B", "C", "D"]
    dataset = load_dataset(write_csv(tmp_path / "t.csv", header, rows), test_fraction=0.0)

    # A: 3 negatives / 1 positive; B: no positives (clamped to 100); C: no negatives (clamped to 1/100);
    # D: one each, the uncertain ones ignored.
    assert weights_for(dataset).tolist() == pytest.approx([3.0, 100.0, 0.01, 1.0])
    assert dataset.splits["test"] == [] and any("test" in note for note in dataset.notes)

    root = make_folder(
        tmp_path / "f", {"train": {"a": 2, "b": 6}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}}
    )
    assert weights_for(load_dataset(root)).tolist() == pytest.approx([1.5, 0.5])  # 1/count, mean 1
