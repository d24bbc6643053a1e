"""Hostile DICOM files: deflate bombs, deep nesting and lying lengths are refused cleanly, by the
reader and by de-identification alike, and never as a RecursionError or gigabytes of memory."""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from sahay.config import Settings, reload_settings
from sahay.errors import BadInput, InputTooLarge
from sahay.imaging import read_image
from sahay.imaging.deid import deidentify_path
from sahay.imaging.dicom_parse import MAX_SEQUENCE_DEPTH, MAX_SEQUENCE_ITEMS
from sahay.imaging.reader import read_dicom_dataset
from tests.factories import write_dicom

PIXELS = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 50).astype(np.uint16)
MB = 1024 * 1024
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
UNDEFINED = 0xFFFFFFFF


def deflated(path: Path, zeros: int = 0) -> Path:
    """A Deflated Explicit VR Little Endian file, with ``zeros`` zero bytes in a private OB element."""
    write_dicom(path, PIXELS)
    ds = dcmread(path)
    if zeros:
        ds.add_new(0x00091010, "LO", "SAHAY TEST")
        ds.add_new(0x00091001, "OB", bytes(zeros))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def nested_sequences(depth: int, *, undefined_length: bool, tag: tuple[int, int] = (0x0008, 0x1140)) -> bytes:
    """``depth`` Referenced Image Sequences, each the only item's content of the one outside it."""
    if undefined_length:
        opening = struct.pack("<HH2sHI", *tag, b"SQ", 0, UNDEFINED) + struct.pack(
            "<HHI", 0xFFFE, 0xE000, UNDEFINED
        )
        closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        return opening * depth + closing * depth
    headers, length = [], 0
    for _ in range(depth):
        item = struct.pack("<HHI", 0xFFFE, 0xE000, length)
        length += len(item)
        headers.append(struct.pack("<HH2sHI", *tag, b"SQ", 0, length) + item)
        length += 12
    return b"".join(reversed(headers))


def with_nesting(path: Path, depth: int, *, undefined_length: bool) -> Path:
    data = write_dicom(path, PIXELS).read_bytes()
    at = data.index(PIXEL_DATA_TAG)
    path.write_bytes(data[:at] + nested_sequences(depth, undefined_length=undefined_length) + data[at:])
    return path


def deid_to(tmp_path: Path) -> Callable[[Path], object]:
    return lambda path: deidentify_path(path, tmp_path / "out.dcm")


def read(path: Path) -> object:
    return read_image(path)


READERS = {"read_image": lambda tmp_path: read, "deid": deid_to}


# --- deflate bombs ------------------------------------------------------------------------------------


def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = deflated(tmp_path / "bomb.dcm", zeros=4 * MB)
    assert bomb.stat().st_size < 64 * 1024  # a few kB on disk, 4 MB inflated

    def pydicom_must_not_inflate(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("pydicom inflated the dataset before its size was checked")

    monkeypatch.setattr(zlib, "decompress", pydicom_must_not_inflate)  # what pydicom's reader calls
    with pytest.raises(InputTooLarge) as caught:
        read_image(bomb, settings=Settings(max_file_mb=1))

    message = str(caught.value)
    assert message.startswith("bomb.dcm is a deflated DICOM file")
    assert "inflates to more than 1,048,576 bytes" in message
    assert "limit of 1,048,576 bytes (1 MB)" in message
    assert "SAHAY_MAX_FILE_MB" in message


def test_a_deflated_file_within_the_limit_is_read_as_before(tmp_path: Path) -> None:
    plain = read_image(write_dicom(tmp_path / "plain.dcm", PIXELS))
    image = read_image(deflated(tmp_path / "small.dcm", zeros=MB // 2), settings=Settings(max_file_mb=1))

    np.testing.assert_array_equal(image.pixels, plain.pixels)
    assert image.info.transfer_syntax == "Deflated Explicit VR Little Endian"
    bundled = read_image(str(get_testdata_file("image_dfl.dcm", download=False)))
    assert bundled.info.transfer_syntax == "Deflated Explicit VR Little Endian"


def test_a_deflated_stream_that_ends_early_is_bad_input(tmp_path: Path) -> None:
    data = deflated(tmp_path / "full.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 200])

    with pytest.raises(BadInput, match=r"cut\.dcm is a deflated DICOM file whose dataset cannot be inflated"):
        read_image(cut)
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(data[:-300] + b"\xff" * 300)
    with pytest.raises(BadInput, match=r"garbage\.dcm .*truncated or corrupt"):
        read_image(garbage)


def test_deid_refuses_a_deflate_bomb_within_the_file_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHAY_MAX_FILE_MB", "1")
    reload_settings()
    folder = tmp_path / "in"
    folder.mkdir()
    deflated(folder / "bomb.dcm", zeros=4 * MB)
    deflated(folder / "fine.dcm")

    with pytest.raises(InputTooLarge, match=r"bomb\.dcm is a deflated DICOM file .* SAHAY_MAX_FILE_MB"):
        deidentify_path(folder / "bomb.dcm", tmp_path / "one.dcm")
    report = deidentify_path(folder, tmp_path / "out")

    assert "inflates to more than 1,048,576 bytes" in report.refused["bomb.dcm"]
    assert [p.name for p in report.written] == ["fine.dcm"]
    assert not (tmp_path / "one.dcm").exists() and not (tmp_path / "out" / "bomb.dcm").exists()
    assert (
        dcmread(tmp_path / "out" / "fine.dcm").file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    )


# --- nesting --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("undefined_length", [True, False], ids=["undefined-lengths", "defined-lengths"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_twenty_thousand_nested_sequences_are_too_deeply_nested(
    tmp_path: Path, reader: str, undefined_length: bool
) -> None:
    path = with_nesting(tmp_path / "deep.dcm", 20_000, undefined_length=undefined_length)

    with pytest.raises(BadInput, match=r"deep\.dcm is too deeply nested: .* more than 32 levels") as caught:
        READERS[reader](tmp_path)(path)
    assert not isinstance(caught.value.__cause__, RecursionError)
    assert not (tmp_path / "out.dcm").exists()


@pytest.mark.parametrize("undefined_length", [True, False], ids=["undefined-lengths", "defined-lengths"])
def test_nesting_up_to_the_limit_is_read_and_deidentified_with_stack_to_spare(
    tmp_path: Path, undefined_length: bool
) -> None:
    path = with_nesting(tmp_path / "deep.dcm", MAX_SEQUENCE_DEPTH, undefined_length=undefined_length)
    over = with_nesting(tmp_path / "over.dcm", MAX_SEQUENCE_DEPTH + 1, undefined_length=undefined_length)

    def with_frames_used(frames: int, work: Callable[[], object]) -> object:
        """Run ``work`` below ``frames`` extra stack frames, as a web request handler would."""
        return work() if frames == 0 else with_frames_used(frames - 1, work)

    spare = sys.getrecursionlimit() // 4
    image = with_frames_used(spare, lambda: read_image(path))
    report = with_frames_used(spare, lambda: deidentify_path(path, tmp_path / "out.dcm"))

    assert image is not None and report is not None
    assert len(dcmread(tmp_path / "out.dcm").ReferencedImageSequence) == 1
    with pytest.raises(BadInput, match=r"over\.dcm is too deeply nested"):
        read_image(over)


# --- item counts ----------------------------------------------------------------------------------------


def with_empty_items(path: Path, items: int, *, deflate: bool = False) -> Path:
    """A Referenced Image Sequence of ``items`` empty items (8 bytes each), before the pixel data."""
    data = write_dicom(path, PIXELS).read_bytes()
    at = data.index(PIXEL_DATA_TAG)
    sequence = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 8 * items)
    sequence += struct.pack("<HHI", 0xFFFE, 0xE000, 0) * items
    path.write_bytes(data[:at] + sequence + data[at:])
    if deflate:
        ds = dcmread(path)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflated"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_half_a_million_empty_items_are_refused_before_parsing(
    tmp_path: Path, reader: str, deflate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = with_empty_items(tmp_path / "items.dcm", 500_000, deflate=deflate)

    def pydicom_must_not_parse(*args: object, **kwargs: object) -> object:
        raise AssertionError("pydicom parsed the file before its items were counted")

    monkeypatch.setattr("sahay.imaging.dicom_parse.dcmread", pydicom_must_not_parse)
    with pytest.raises(BadInput, match=r"items\.dcm holds 500,000 sequence items, over the limit of 50,000"):
        READERS[reader](tmp_path)(path)
    assert not (tmp_path / "out.dcm").exists()


def test_items_up_to_the_limit_are_read(tmp_path: Path) -> None:
    path = with_empty_items(tmp_path / "items.dcm", 2_000)

    assert read_image(path).pixels.shape == (8, 8)
    assert len(read_dicom_dataset(path).ReferencedImageSequence) == 2_000
    with pytest.raises(BadInput, match=r"holds 50,001 sequence items"):
        read_dicom_dataset(with_empty_items(tmp_path / "over.dcm", MAX_SEQUENCE_ITEMS + 1))


# --- lengths ----------------------------------------------------------------------------------------------


def _lying_length(path: Path, where: str) -> Path:
    """A file cut short after an element that declares 0xFFFFFFF0 bytes."""
    data = write_dicom(path, PIXELS).read_bytes()
    if where == "pixel data":
        at = data.index(PIXEL_DATA_TAG)
        header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, 0xFFFFFFF0)
        path.write_bytes(data[:at] + header + data[at + 12 :])
        return path
    at = data.index(b"\x08\x00\x60\x00")  # Modality: everything from here on is swallowed
    if where == "private element":
        header = struct.pack("<HH2sHI", 0x0009, 0x1001, b"OB", 0, 0xFFFFFFF0)
    else:  # a sequence whose item also lies
        header = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFF0)
        header += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFF0)
    path.write_bytes(data[:at] + header + b"abc")
    return path


@pytest.mark.parametrize("where", ["pixel data", "private element", "sequence"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_length_past_the_end_of_the_file_is_bad_input(tmp_path: Path, reader: str, where: str) -> None:
    path = _lying_length(tmp_path / "lying.dcm", where)

    with pytest.raises(
        BadInput, match=r"lying\.dcm: element \(....,....\) declares a value of 4,294,967,280 bytes"
    ):
        READERS[reader](tmp_path)(path)
    assert not (tmp_path / "out.dcm").exists()


def test_pydicom_truncated_files_name_the_element(tmp_path: Path) -> None:
    path = str(get_testdata_file("rtplan_truncated.dcm", download=False))
    with pytest.raises(
        BadInput, match=r"element \(300A,00B0\) declares a value of 976 bytes but only 711 remain"
    ):
        deidentify_path(path, tmp_path / "out.dcm")


# --- the whole dataset, for code that needs more than pixels (archive pulls) -----------------------------


def test_read_dicom_dataset_parses_within_the_same_limits(tmp_path: Path) -> None:
    ds = read_dicom_dataset(write_dicom(tmp_path / "fine.dcm", PIXELS))
    assert str(ds.PatientName) == "Doe^Jane" and ds.Rows == 8

    with pytest.raises(InputTooLarge, match=r"bomb\.dcm is a deflated DICOM file"):
        read_dicom_dataset(deflated(tmp_path / "bomb.dcm", zeros=4 * MB), settings=Settings(max_file_mb=1))
    with pytest.raises(BadInput, match=r"deep\.dcm is too deeply nested"):
        read_dicom_dataset(with_nesting(tmp_path / "deep.dcm", 20_000, undefined_length=True))
    with pytest.raises(InputTooLarge, match=r"fine\.dcm is .* bytes .* over the limit"):
        read_dicom_dataset(tmp_path / "fine.dcm", settings=Settings(max_file_mb=0.0001))
    (tmp_path / "note.txt").write_text("not an image")
    with pytest.raises(BadInput, match=r"note\.txt is not a DICOM file"):
        read_dicom_dataset(tmp_path / "note.txt")


# --- decoders ---------------------------------------------------------------------------------------------


def test_a_decoder_panic_on_corrupt_rle_data_is_bad_input(tmp_path: Path) -> None:
    """Found by tests/fuzz: pylibjpeg-rle (Rust) panics on a segment longer than the frame, and a
    pyo3 PanicException derives from BaseException, so it escaped every handler (CLI exit 1, a 500)."""
    path = write_dicom(tmp_path / "rle.dcm", np.zeros((8, 8), np.uint16))
    ds = dcmread(path)
    ds.compress(RLELossless)
    segment = b"\x81\x00" * 2  # two replicate runs of 128 zeros: 256 bytes where 64 are expected
    header = struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13))
    ds.PixelData = encapsulate([header + segment + segment])
    ds.save_as(path)

    with pytest.raises(BadInput, match=r"rle\.dcm: the RLE Lossless pixel data could not be decoded"):
        read_image(path)
