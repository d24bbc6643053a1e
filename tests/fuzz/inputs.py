"""Hostile image files for fuzzing: valid seeds (DICOM, PNG, JPEG, TIFF) and ways to break them.

``make_case(rng)`` picks a seed file and applies one to three mutations: bit flips, byte
overwrites, truncation, cut or repeated slices, corrupt length fields (DICOM elements and items,
PNG chunks, JPEG segments, TIFF directory entries), huge or odd dimensions in the headers, odd
DICOM attribute values, deflate bombs and deeply nested DICOM sequences.

Everything is drawn from ``rng``, a ``random.Random``: the Hypothesis tests pass one that
Hypothesis controls (so failures shrink and replay), ``bench/fuzz_inputs.py`` a seeded one. No
pytest or Hypothesis import here, so the benchmark runs without them.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from sahay.imaging.dicom_parse import parse_dicom
from tests.factories import write_dicom

INTERESTING_32 = (
    0,
    1,
    2,
    3,
    7,
    8,
    0x7F,
    0x80,
    0xFF,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFF0,
    0xFFFFFFFE,
)
INTERESTING_16 = (0, 1, 2, 3, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class Case:
    """One fuzz input: a file name (its suffix is the seed's, whatever the content), the bytes, and
    how they were made (seed and mutations), for reports."""

    name: str
    data: bytes = field(repr=False)
    recipe: str

    def __repr__(self) -> str:  # what Hypothesis prints for a failing example: never the bytes
        digest = hashlib.sha256(self.data).hexdigest()[:12]
        return f"Case({self.recipe!r}, {len(self.data):,} bytes, sha256 {digest}...)"

    @property
    def is_dicom_seed(self) -> bool:
        return self.recipe.startswith("dicom")


# --- seeds -------------------------------------------------------------------------------------------


def _ramp(rows: int, columns: int, top: int) -> np.ndarray:
    return (np.add.outer(np.arange(rows), np.arange(columns)) * top // (rows + columns)).astype(np.uint16)


def _dicom_bytes(pixels: np.ndarray, **options: object) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_dicom(Path(folder) / "seed.dcm", pixels, **options).read_bytes()  # type: ignore[arg-type]


def _resave(data: bytes, change: Callable[[Dataset], None], **save: object) -> bytes:
    ds = dcmread(io.BytesIO(data), force=True)
    change(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, **save)  # type: ignore[arg-type]
    return buffer.getvalue()


def _with_references(ds: Dataset) -> None:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    inner = Dataset()
    inner.CodeValue = "T-D3000"
    inner.CodingSchemeDesignator = "SRT"
    inner.CodeMeaning = "Chest"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    ds.add_new(0x00091010, "LO", "FUZZ CREATOR")
    ds.add_new(0x00091001, "OB", b"private bytes")


def _implicit(ds: Dataset) -> None:
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian


def _deflated(ds: Dataset) -> None:
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian


def _rle(ds: Dataset) -> None:
    ds.compress(RLELossless)


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _jpeg(image: Image.Image, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def _tiff(*pages: Image.Image, compression: str | None = None) -> bytes:
    buffer = io.BytesIO()
    first, *rest = pages
    first.save(buffer, format="TIFF", save_all=bool(rest), append_images=rest, compression=compression)
    return buffer.getvalue()


# Small files shipped inside pydicom: encodings the factories do not write.
_BUNDLED = (
    "MR_small_bigendian",
    "image_dfl",
    "MR_small_jp2klossless",
    "MR_small_jpeg_ls_lossless",
    "SC_rgb_small_odd",
    "SC_rgb_small_odd_jpeg",
    "examples_palette",
    "ExplVR_LitEndNoMeta",
)


def _bundled(name: str) -> bytes:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom no longer ships {name}"
    return Path(str(path)).read_bytes()


@cache
def seeds() -> dict[str, bytes]:
    """Small valid files, keyed ``format-variant`` (the format is the part before the dash)."""
    grey = _ramp(48, 40, 4095)
    grey8 = Image.fromarray((grey // 16).astype(np.uint8), mode="L")
    rgb = Image.fromarray(
        np.stack([grey // 16, grey[::-1] // 16, np.full_like(grey, 90)], -1).astype(np.uint8)
    )
    base = _dicom_bytes(grey, bits_stored=12, window=(2000, 4000), modality="CR")
    result = {
        "dicom-explicit": base,
        "dicom-bare": _dicom_bytes(grey, bits_stored=12, preamble=False),
        "dicom-ct": _dicom_bytes(
            grey, signed=True, intercept=-1024, slope=1, window=(40, 400), modality="CT"
        ),
        "dicom-voilut": _dicom_bytes(grey, bits_stored=12, voi_lut=list(range(0, 8192, 2))),
        "dicom-rgb": _dicom_bytes(np.asarray(rgb).astype(np.uint16), photometric="RGB", bits_stored=8),
        "dicom-frames": _dicom_bytes(np.stack([grey, grey[::-1], grey]), frames=3, bits_stored=12),
        "dicom-mono1": _dicom_bytes(grey, photometric="MONOCHROME1", bits_stored=12, modality="US"),
        "dicom-implicit": _resave(base, _implicit, enforce_file_format=True),
        "dicom-deflated": _resave(base, _deflated, enforce_file_format=True),
        "dicom-sequences": _resave(base, _with_references, enforce_file_format=True),
        "dicom-rle": _resave(base, _rle, enforce_file_format=True),
        **{f"dicom-{name}": _bundled(f"{name}.dcm") for name in _BUNDLED},
        "png-grey": _png(grey8),
        "png-grey16": _png(Image.fromarray(grey.astype(np.uint16))),
        "png-rgb": _png(rgb, pnginfo=None),
        "png-palette": _png(rgb.convert("P")),
        "jpeg-grey": _jpeg(grey8),
        "jpeg-rgb": _jpeg(rgb, orientation=6),
        "jpeg-progressive": _progressive_jpeg(rgb),
        "tiff-grey": _tiff(grey8),
        "tiff-pages": _tiff(grey8, rgb.convert("L"), grey8),
        "tiff-deflate": _tiff(rgb, compression="tiff_adobe_deflate"),
        "tiff-lzw": _tiff(grey8, compression="tiff_lzw"),
    }
    return result


def _progressive_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80, progressive=True)
    return buffer.getvalue()


# --- byte-level mutations ----------------------------------------------------------------------------


def flip_bits(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        position = _position(rng, len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def overwrite_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = _position(rng, len(out))
        value = rng.choice(
            [
                bytes([rng.randrange(256)]),
                struct.pack("<I", rng.choice(INTERESTING_32)),
                struct.pack(">I", rng.choice(INTERESTING_32)),
                struct.pack("<H", rng.choice(INTERESTING_16)),
                b"\xff" * rng.randint(1, 8),
                b"\x00" * rng.randint(1, 8),
            ]
        )
        out[position : position + len(value)] = value
    return bytes(out[: max(len(data), 1)])


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: _position(rng, len(data))]


def cut_or_repeat(rng: random.Random, data: bytes) -> bytes:
    start = _position(rng, len(data))
    end = min(len(data), start + rng.choice([1, 2, 4, 8, 16, 64, 512, 4096]))
    if rng.random() < 0.5:
        return data[:start] + data[end:]
    return data[:end] + data[start:end] * rng.randint(1, 64) + data[end:]


def _position(rng: random.Random, size: int) -> int:
    """Mostly in the first 1 kB, where the headers are."""
    if size <= 1:
        return 0
    if rng.random() < 0.7:
        return rng.randrange(min(size, 1024))
    return rng.randrange(size)


# --- length fields ---------------------------------------------------------------------------------


def corrupt_length(rng: random.Random, data: bytes) -> bytes:
    """Set one length field the format declares (little or big endian, 2 or 4 bytes) to an odd value."""
    fields = _length_fields(data)
    if not fields:
        return overwrite_bytes(rng, data)
    offset, size, endian = rng.choice(fields)
    maximum = 0xFFFF if size == 2 else 0xFFFFFFFF
    current = int.from_bytes(data[offset : offset + size], endian)
    value = rng.choice(
        [
            rng.choice(INTERESTING_32 if size == 4 else INTERESTING_16),
            current + rng.choice([-2, -1, 1, 2, 3]),
            len(data),
            len(data) - offset,
            rng.randrange(maximum + 1),
            maximum,
        ]
    )
    value = min(max(value, 0), maximum)
    return data[:offset] + value.to_bytes(size, endian) + data[offset + size :]


def _length_fields(data: bytes) -> list[tuple[int, int, str]]:
    if data.startswith(b"\x89PNG"):
        return _png_fields(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_fields(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_fields(data)
    return _dicom_fields(data)


def _dicom_fields(data: bytes) -> list[tuple[int, int, str]]:
    """Length fields of DICOM elements and items, walking into sequences (explicit or implicit VR LE)."""
    fields: list[tuple[int, int, str]] = []
    position = 132 if data[128:132] == b"DICM" else 0
    while position + 8 <= len(data) and len(fields) < 400:
        group, element = struct.unpack_from("<HH", data, position)
        vr = data[position + 4 : position + 6]
        if group == 0xFFFE:  # item or delimiter: tag and a 4-byte length
            fields.append((position + 4, 4, "little"))
            length = struct.unpack_from("<I", data, position + 4)[0]
            position += 8 if element == 0xE000 or length == UNDEFINED_LENGTH else 8 + length
            continue
        if vr.isalpha() and vr.isupper():
            if vr in (
                b"OB",
                b"OW",
                b"OF",
                b"OD",
                b"OL",
                b"OV",
                b"SQ",
                b"UC",
                b"UN",
                b"UR",
                b"UT",
                b"SV",
                b"UV",
            ):
                fields.append((position + 8, 4, "little"))
                length = struct.unpack_from("<I", data, position + 8)[0] if position + 12 <= len(data) else 0
                header = 12
            else:
                fields.append((position + 6, 2, "little"))
                length = struct.unpack_from("<H", data, position + 6)[0]
                header = 8
        else:
            fields.append((position + 4, 4, "little"))
            length = struct.unpack_from("<I", data, position + 4)[0]
            header = 8
        into = vr == b"SQ" or length == UNDEFINED_LENGTH
        position += header if into else header + length
    return fields


def _png_fields(data: bytes) -> list[tuple[int, int, str]]:
    fields = []
    position = 8
    while position + 8 <= len(data):
        fields.append((position, 4, "big"))
        position += 12 + struct.unpack_from(">I", data, position)[0]
    return fields


def _jpeg_fields(data: bytes) -> list[tuple[int, int, str]]:
    fields = []
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            position += 2
            continue
        fields.append((position + 2, 2, "big"))
        if marker in (0xC0, 0xC1, 0xC2):  # frame header: precision, height, width, components
            fields += [(position + 5, 2, "big"), (position + 7, 2, "big")]
        if marker == 0xDA:
            break  # entropy-coded data follows
        position += 2 + struct.unpack_from(">H", data, position + 2)[0]
    return fields


def _tiff_fields(data: bytes) -> list[tuple[int, int, str]]:
    endian = "little" if data[:2] == b"II" else "big"
    fields = [(4, 4, endian)]
    offset = int.from_bytes(data[4:8], endian)
    seen = set()
    while 8 <= offset < len(data) - 2 and offset not in seen and len(seen) < 16:
        seen.add(offset)
        fields.append((offset, 2, endian))
        count = int.from_bytes(data[offset : offset + 2], endian)
        for index in range(min(count, 64)):
            entry = offset + 2 + 12 * index
            if entry + 12 > len(data):
                break
            fields += [(entry + 2, 2, endian), (entry + 4, 4, endian), (entry + 8, 4, endian)]
        next_field = offset + 2 + 12 * count
        if next_field + 4 > len(data):
            break
        fields.append((next_field, 4, endian))
        offset = int.from_bytes(data[next_field : next_field + 4], endian)
    return fields


# --- headers: dimensions and attributes -------------------------------------------------------------


def huge_dimensions(rng: random.Random, data: bytes) -> bytes:
    """Claim another size in the header: huge, zero, one, or just over what the data hold."""
    width = rng.choice([0, 1, 2, 65535, 65536, 30000, 100_000, 2**31 - 1, 2**32 - 1])
    height = rng.choice([0, 1, 2, 65535, 65536, 30000, 100_000, 2**31 - 1, 2**32 - 1])
    if data.startswith(b"\x89PNG") and len(data) >= 33:
        header = struct.pack(">II", width, height) + data[24:29]
        return data[:16] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[33:]
    if data.startswith(b"\xff\xd8"):
        fields = [f for f in _jpeg_fields(data) if f[1] == 2]
        frame = [f for f in fields if data[f[0] - 2 : f[0]] in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2")]
        if frame:
            at = frame[0][0]
            return data[: at + 3] + struct.pack(">HH", height & 0xFFFF, width & 0xFFFF) + data[at + 7 :]
        return data
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_dimensions(data, width, height)
    return _dicom_attributes(rng, data, {"Rows": height & 0xFFFF, "Columns": width & 0xFFFF})


def _tiff_dimensions(data: bytes, width: int, height: int) -> bytes:
    endian = "little" if data[:2] == b"II" else "big"
    offset = int.from_bytes(data[4:8], endian)
    if offset + 2 > len(data):
        return data
    out = bytearray(data)
    for index in range(int.from_bytes(data[offset : offset + 2], endian)):
        entry = offset + 2 + 12 * index
        if entry + 12 > len(out):
            break
        tag = int.from_bytes(out[entry : entry + 2], endian)
        if tag in (256, 257):  # ImageWidth, ImageLength: rewrite as one LONG
            value = width if tag == 256 else height
            out[entry + 2 : entry + 12] = (
                (4).to_bytes(2, endian) + (1).to_bytes(4, endian) + value.to_bytes(4, endian)
            )
    return bytes(out)


_ODD_ATTRIBUTES: dict[str, list[object]] = {
    "Rows": [0, 1, 65535],
    "Columns": [0, 1, 65535],
    "BitsAllocated": [0, 1, 7, 12, 32, 64, 65535],
    "BitsStored": [0, 1, 17, 33, 65535],
    "HighBit": [0, 31, 65535],
    "PixelRepresentation": [1, 2, 65535],
    "SamplesPerPixel": [0, 2, 3, 4, 65535],
    "PlanarConfiguration": [1, 2],
    "NumberOfFrames": ["0", "-1", "2147483647", "1e9", "abc", "3"],
    "PhotometricInterpretation": ["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL_422", "HSV", ""],
    "RescaleSlope": ["0", "-1", "1e308", "nan", "inf", "", "x"],
    "RescaleIntercept": ["-1e308", "nan", "", "1e20"],
    "WindowCenter": ["nan", "1e308", "-5", ["1", "2", "3"], ""],
    "WindowWidth": ["0", "-1", "nan", "1e-9", "1e308", ""],
    "PixelSpacing": [["0", "0"], ["nan", "1"], ["1"], "abc"],
    "PatientOrientation": [["L", "P", "F"], ["X", "Y"], ""],
    "Modality": ["US", "XA", "ES", "", "X" * 16],
    "BurnedInAnnotation": ["YES", "NO", "maybe"],
    "SpecificCharacterSet": ["ISO 2022 IR 87", "GB18030", "nonsense", ["", "ISO 2022 IR 149"]],
}
_ODD_SYNTAXES = (
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEGBaseline8Bit,
    JPEG2000Lossless,
    "1.2.3.4.5",
    "",
)


def odd_attributes(rng: random.Random, data: bytes) -> bytes:
    """DICOM only: odd values for the attributes the reader uses, or a transfer syntax that lies."""
    if not _is_dicom(data):
        return flip_bits(rng, data)
    keywords = rng.sample(sorted(_ODD_ATTRIBUTES), rng.randint(1, 3))
    changes = {keyword: rng.choice(_ODD_ATTRIBUTES[keyword]) for keyword in keywords}
    if rng.random() < 0.2:
        changes["TransferSyntaxUID"] = rng.choice(_ODD_SYNTAXES)
    if rng.random() < 0.15:
        changes["VOILUTSequence"] = _odd_lut(rng)
    return _dicom_attributes(rng, data, changes)


def _odd_lut(rng: random.Random) -> Sequence:
    item = Dataset()
    item.LUTDescriptor = [
        rng.choice([0, 1, 4, 65535]),
        rng.choice([0, 65535, 32768]),
        rng.choice([0, 8, 16, 17]),
    ]
    item.LUTData = [rng.randrange(65536) for _ in range(rng.choice([0, 1, 4]))]
    item["LUTData"].VR = "US"
    return Sequence([item])


def _dicom_attributes(rng: random.Random, data: bytes, changes: dict[str, object]) -> bytes:
    try:
        # Sahay's own parser, not dcmread: an earlier mutation may have made a deflate bomb.
        ds = parse_dicom(data, "seed.dcm", max_inflated_bytes=64 << 20)
        for keyword, value in changes.items():
            if keyword == "TransferSyntaxUID":
                ds.file_meta.TransferSyntaxUID = value
            else:
                setattr(ds, keyword, value)
        buffer = io.BytesIO()
        # Written as the file was read, so a lying transfer syntax is not re-encoded to match.
        implicit, little = ds.original_encoding
        ds.save_as(buffer, implicit_vr=bool(implicit), little_endian=little is not False)
        return buffer.getvalue()
    except Exception:  # the seed was already broken by an earlier mutation: break it further
        return flip_bits(rng, data)


# --- bombs and nesting ------------------------------------------------------------------------------


@cache
def _deflated_zeros(size: int) -> bytes:
    """A raw-deflate stream (not final, byte-aligned) of ``size`` zero bytes, made fast.

    A sync-flushed block stream refers only to itself, so copies of one 16 MB stream concatenate
    into a stream of any multiple of 16 MB.
    """
    unit = min(size, 16 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = compressor.compress(bytes(unit)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return stream * (size // unit)


def deflate_bomb(rng: random.Random, data: bytes) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM whose dataset inflates to megabytes or gigabytes
    of zeros in a private OB element; or, for raster seeds, a PNG that inflates far past its size."""
    size = rng.choice([1 << 20, 16 << 20, 256 << 20, 1 << 30])
    if not _is_dicom(data):
        return _png_bomb(rng, size)
    meta, body = _split_meta(seeds()["dicom-deflated"])
    plain = zlib.decompress(body, -zlib.MAX_WBITS)
    cut = rng.choice([0, len(plain) // 2, plain.find(b"\xe0\x7f\x10\x00")])
    cut = max(cut, 0)
    header = struct.pack("<HH2sHI", 0x0009, 0x1002, b"OB", 0, size)
    zeros = _deflated_zeros(size)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    before = compressor.compress(plain[:cut] + header) + compressor.flush(zlib.Z_SYNC_FLUSH)
    after = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    tail = after.compress(plain[cut:]) + after.flush()
    # Sync-flushed raw deflate streams concatenate into one stream.
    return meta + before + zeros + tail


def _png_bomb(rng: random.Random, size: int) -> bytes:
    """A greyscale PNG whose IDAT inflates to ``size`` zero bytes (rows of filter byte + pixels)."""
    side = rng.choice([1000, 4000, 7000, 20000, 60000])
    rows = max(1, size // (side + 1))
    # A zlib stream by hand: header, the cached raw deflate of zeros, an empty final block and the
    # Adler-32 of n zeros, which is (n mod 65521) << 16 | 1.
    idat = b"\x78\xda" + _deflated_zeros(size) + b"\x03\x00" + struct.pack(">I", (size % 65521) << 16 | 1)
    header = struct.pack(">IIBBBBB", side, rows, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _split_meta(data: bytes) -> tuple[bytes, bytes]:
    """(preamble + file meta, the rest) of an explicit VR LE file with group length."""
    length = struct.unpack_from("<I", data, 140)[0]
    end = 144 + length
    return data[:end], data[end:]


def deep_nesting(rng: random.Random, data: bytes) -> bytes:
    """Insert sequences nested 30 to 20,000 levels deep (defined or undefined lengths) before the pixels."""
    if b"1.2.840.10008.1.2.1\x00" not in data[:400]:
        data = seeds()["dicom-explicit"]  # the nested bytes are explicit VR little endian
    depth = rng.choice([31, 32, 33, 64, 200, 1000, 20000])
    tag = rng.choice([(0x0008, 0x1140), (0x0040, 0xA730), (0x0009, 0x1003)])
    if rng.random() < 0.5:
        opening = struct.pack("<HH2sHI", *tag, b"SQ", 0, UNDEFINED_LENGTH) + struct.pack(
            "<HHI", 0xFFFE, 0xE000, UNDEFINED_LENGTH
        )
        closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        nested = opening * depth + closing * depth
    else:  # defined lengths, built from the innermost (empty) item outwards
        headers = []
        length = 0
        for _ in range(depth):
            item = struct.pack("<HHI", 0xFFFE, 0xE000, length)
            length += len(item)
            headers.append(struct.pack("<HH2sHI", *tag, b"SQ", 0, length) + item)
            length += 12
        nested = b"".join(reversed(headers))
    at = data.find(b"\xe0\x7f\x10\x00")
    at = at if at > 0 else len(data)
    return data[:at] + nested + data[at:]


def _is_dicom(data: bytes) -> bool:
    return data[128:132] == b"DICM" or data[:2] in (b"\x02\x00", b"\x08\x00")


# --- cases ------------------------------------------------------------------------------------------

MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "flip_bits": flip_bits,
    "overwrite_bytes": overwrite_bytes,
    "truncate": truncate,
    "cut_or_repeat": cut_or_repeat,
    "corrupt_length": corrupt_length,
    "huge_dimensions": huge_dimensions,
    "odd_attributes": odd_attributes,
    "deflate_bomb": deflate_bomb,
    "deep_nesting": deep_nesting,
}
# Bombs and nesting build whole files; they are drawn less often than the cheap mutations.
_WEIGHTS = {"deflate_bomb": 1, "deep_nesting": 1, "huge_dimensions": 2, "odd_attributes": 3}


def make_case(rng: random.Random, *, seed_names: tuple[str, ...] | None = None) -> Case:
    """One fuzz input: a seed (from ``seed_names``, default all) through one to three mutations;
    one case in twenty is an unmutated seed, so the success path is exercised too."""
    names = seed_names or tuple(sorted(seeds()))
    seed = rng.choice(names)
    data = seeds()[seed]
    steps: list[str] = []
    if rng.random() >= 0.05:
        pool = sorted(MUTATIONS)
        weights = [_WEIGHTS.get(name, 4) for name in pool]
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            name = rng.choices(pool, weights)[0]
            data = MUTATIONS[name](rng, data)
            steps.append(name)
    suffix = {"dicom": ".dcm", "png": ".png", "jpeg": ".jpg", "tiff": ".tif"}[seed.split("-")[0]]
    return Case(name=f"fuzz{suffix}", data=data or b"\0", recipe=" + ".join([seed, *steps]))


def dicom_seed_names() -> tuple[str, ...]:
    return tuple(name for name in sorted(seeds()) if name.startswith("dicom"))
