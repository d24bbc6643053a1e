"""Parsing untrusted DICOM bytes with pydicom, within limits: the one way Sahay opens a DICOM file.

pydicom trusts its input: it inflates a deflated dataset whole, recurses once per nested sequence
and reads whatever length an element declares. ``parse_dicom`` puts bounds around it, for the
reader and for de-identification alike:

- a Deflated Explicit VR Little Endian dataset is inflated first with a cap, so a small file that
  inflates to gigabytes (a deflate bomb) is refused before pydicom inflates it;
- sequences nested more than ``MAX_SEQUENCE_DEPTH`` levels are refused, and Python's recursion
  limit, should pydicom reach it first, becomes the same refusal, never a RecursionError;
- an element that declares more bytes than the file holds (a truncated file, or a corrupt length
  such as 0xFFFFFFF0) is refused, naming the element.

Every refusal is a BadInput (InputTooLarge for the cap) whose message names the file.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

# pydicom's own steps for what precedes the dataset (preamble, file meta, command set). They are
# used so that the bytes measured here are exactly the bytes pydicom's dcmread would inflate.
from pydicom.filereader import _read_command_set_elements, _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian

from sahay.errors import BadInput, InputTooLarge, describe_error

MAX_SEQUENCE_DEPTH = 32
"""Deepest sequence nesting accepted. Real objects nest a handful of levels (an SR content tree a
dozen at most); the limit keeps every recursive step (pydicom's parser and writer, deepcopy, the
de-identifier) far from Python's recursion limit."""

MAX_SEQUENCE_ITEMS = 50_000
"""Most sequence items (and encapsulated pixel fragments) accepted in one file. pydicom builds a
Dataset of about 2 kB for each item as it parses, so 500,000 empty items (8 bytes each, a 4 MB
file) would take a gigabyte and twenty seconds; real objects hold hundreds, a long cine a few
thousand fragments."""

# Item tags as they appear in the bytes (FFFE,E000), little and big endian.
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")

# What pydicom raises on malformed files; turned into BadInput, chained, never swallowed.
PYDICOM_ERRORS = (
    InvalidDicomError,
    BytesLengthException,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    EOFError,
    OSError,
    struct.error,
    zlib.error,
    OverflowError,
)

_MB = 1024 * 1024
_INFLATE_CHUNK = 4 * _MB
_UNDEFINED_LENGTH = 0xFFFFFFFF


def parse_dicom(data: bytes, filename: str, *, max_inflated_bytes: int) -> Dataset:
    """Parse ``data`` (a DICOM file, or a bare dataset without preamble) into a pydicom Dataset.

    ``max_inflated_bytes`` caps what a deflated dataset may inflate to (callers pass the file
    limit, ``Settings.max_file_bytes``: inflated content counts as if it had been stored so).
    Raises BadInput naming ``filename`` for anything pydicom cannot parse, a deflated dataset over
    the cap (InputTooLarge), sequences nested too deep or with too many items, and elements
    longer than the file.
    """
    force = data[128:132] != b"DICM"
    try:
        inflated_items = check_inflated_size(data, filename, max_inflated_bytes, force=force)
        _check_item_count(inflated_items if inflated_items is not None else _count_items(data), filename)
        dataset = dcmread(io.BytesIO(data), force=force)
    except RecursionError:
        raise too_deeply_nested(filename) from None
    except PYDICOM_ERRORS as exc:
        reason = describe_pydicom_error(exc)
        raise BadInput(
            f"{filename} could not be read as DICOM; it may be truncated or corrupt ({reason})."
        ) from exc
    check_structure(dataset, filename)
    return dataset


def check_inflated_size(data: bytes, filename: str, limit: int, *, force: bool) -> int | None:
    """Refuse a deflated dataset that inflates to more than ``limit`` bytes, or does not inflate.

    Nothing is kept: the inflated bytes are counted in chunks and dropped, so memory stays small
    however large the bomb. Returns the number of sequence items the inflated dataset holds, or
    None for a file in any other transfer syntax, which passes untouched.
    """
    stream = io.BytesIO(data)
    read_preamble(stream, force)
    meta = _read_file_meta_info(stream)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return None
    _read_command_set_elements(stream)
    start = stream.tell()
    if start >= len(data):
        return 0  # nothing after the file meta: pydicom inflates nothing either
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as PS3.5 A.5 and pydicom use
    pending = data[start:]
    total = items = 0
    tail = b""  # the last bytes of the previous chunk, for an item tag split across two
    try:
        while True:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            items += _count_items(tail + chunk)
            tail = chunk[-3:]
            total += len(chunk)
            if total > limit:
                raise InputTooLarge(
                    f"{filename} is a deflated DICOM file (Deflated Explicit VR Little Endian) that "
                    f"inflates to more than {limit:,} bytes, over the limit of {limit:,} bytes "
                    f"({limit / _MB:g} MB). Set SAHAY_MAX_FILE_MB higher to accept it."
                )
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and len(chunk) < _INFLATE_CHUNK):
                break
    except zlib.error as exc:
        raise _not_inflatable(filename, describe_pydicom_error(exc)) from exc
    if not inflater.eof:
        raise _not_inflatable(filename, "the deflated stream ends early")
    return items


def _count_items(data: bytes) -> int:
    """Item tags in raw bytes: an upper bound on the items pydicom would build, found without
    parsing (a chance match inside pixel data only makes the bound looser)."""
    return sum(data.count(tag) for tag in _ITEM_TAGS)


def _check_item_count(items: int, filename: str) -> None:
    if items > MAX_SEQUENCE_ITEMS:
        raise BadInput(
            f"{filename} holds {items:,} sequence items, over the limit of {MAX_SEQUENCE_ITEMS:,}; "
            "no real DICOM object holds so many. The file is corrupt or was made to attack readers."
        )


def check_structure(dataset: Dataset, filename: str) -> None:
    """Walk every element, without recursion: no value shorter than its declared length, and no
    sequence nested more than ``MAX_SEQUENCE_DEPTH`` levels.

    pydicom reads sequences of defined length lazily; the walk converts the elements that are, or
    may be, sequences (so later code finds them parsed) and checks the items inside.
    """
    with malformed_attributes(filename):
        pending: list[tuple[Dataset, int]] = [(dataset, 0)]
        meta = getattr(dataset, "file_meta", None)
        if isinstance(meta, Dataset):
            pending.append((meta, 0))
        while pending:
            current, depth = pending.pop()
            for element in list(current.elements()):
                if isinstance(element, RawDataElement):
                    _check_length(element, filename)
                    if not _may_be_sequence(element):
                        continue
                    element = current[element.tag]
                if element.VR == "SQ" and element.value:
                    if depth >= MAX_SEQUENCE_DEPTH:
                        raise too_deeply_nested(filename)
                    pending.extend((item, depth + 1) for item in element.value)


def too_deeply_nested(filename: str) -> BadInput:
    return BadInput(
        f"{filename} is too deeply nested: its sequences go more than {MAX_SEQUENCE_DEPTH} levels "
        "deep, which no real DICOM object does. The file is corrupt or was made to attack readers."
    )


@contextmanager
def malformed_attributes(filename: str) -> Iterator[None]:
    """Turn pydicom's errors on malformed element values into a BadInput naming the file.

    pydicom parses element values lazily, so malformed ones surface only when first read; a
    sequence parsed at that moment may also nest too deep for Python's recursion limit.
    """
    try:
        yield
    except RecursionError:
        raise too_deeply_nested(filename) from None
    except PYDICOM_ERRORS as exc:
        raise BadInput(
            f"{filename} has malformed DICOM attributes and cannot be read ({describe_pydicom_error(exc)})."
        ) from exc


def describe_pydicom_error(exc: BaseException) -> str:
    """``describe_error``, cut where pydicom pastes a whole traceback into its message
    (``tag_in_exception`` does, for errors while reading or writing an element)."""
    return describe_error(exc).split(" Traceback (most recent call last)")[0]


def _check_length(element: RawDataElement, filename: str) -> None:
    declared = element.length
    if declared == _UNDEFINED_LENGTH or element.value is None:
        return
    present = len(element.value)
    if present < declared:
        tag = element.tag
        raise BadInput(
            f"{filename}: element ({tag.group:04X},{tag.element:04X}) declares a value of "
            f"{declared:,} bytes but only {present:,} remain in the file; the file is truncated or corrupt."
        )


def _may_be_sequence(element: RawDataElement | DataElement) -> bool:
    """Whether pydicom may turn this raw element into a sequence when it is read."""
    vr = element.VR
    if vr == "SQ":
        return True
    if vr not in (None, "UN") or not element.value:
        return False
    if element.tag.is_private:
        return True  # a private dictionary may name it a sequence
    try:
        return bool(dictionary_VR(element.tag) == "SQ")
    except KeyError:
        return False


def _not_inflatable(filename: str, reason: str) -> BadInput:
    return BadInput(
        f"{filename} is a deflated DICOM file whose dataset cannot be inflated ({reason}); "
        "the file is truncated or corrupt."
    )
