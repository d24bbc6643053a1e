"""DICOM reading: LUTs, windows, photometric interpretations, frames, compression, identifiers, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import Decoder
from pydicom.uid import JPEG2000Lossless, RLELossless

from sahay.config import Settings
from sahay.errors import BadInput, InputTooLarge, UnsupportedFormat
from sahay.imaging import read_image
from tests.factories import DEFAULT_IDENTIFIERS, write_dicom, write_dicom_without_pixels


def bundled(name: str) -> str:
    """A test file shipped inside pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom no longer ships {name}"
    return str(path)


def linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR windowing onto [0, 1], written out independently of pydicom."""
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5).astype(np.float64)
    scaled[values <= center - 0.5 - (width - 1) / 2] = 0.0
    scaled[values > center - 0.5 + (width - 1) / 2] = 1.0
    return scaled


# A 1x6 ramp of stored values used by several tests.
RAMP = np.array([[0, 90, 125, 150, 1000, 4095]], dtype=np.uint16)


# --- pydicom's bundled files ---------------------------------------------------------------------


def test_mr_small_uses_its_window_and_metadata() -> None:
    image = read_image(bundled("MR_small.dcm"))

    stored = pydicom.dcmread(bundled("MR_small.dcm")).pixel_array.astype(np.float64)
    np.testing.assert_allclose(image.pixels, linear_window(stored, 600, 1600), atol=1e-6)
    assert image.pixels.dtype == np.float32
    info = image.info
    assert (info.rows, info.columns, info.channels) == (64, 64, 1)
    assert info.window == (600.0, 1600.0)
    assert info.modality == "MR"
    assert info.photometric_interpretation == "MONOCHROME2"
    assert info.transfer_syntax == "Explicit VR Little Endian"
    assert info.bits_stored == 16
    assert info.pixel_spacing_mm == pytest.approx((0.3125, 0.3125))
    assert info.format == "dicom"
    assert info.filename == "MR_small.dcm"
    assert (info.number_of_frames, info.frame_index) == (1, None)
    assert image.warnings == ()


def test_ct_small_without_window_scales_hounsfield_min_to_max() -> None:
    image = read_image(bundled("CT_small.dcm"))

    ds = pydicom.dcmread(bundled("CT_small.dcm"))
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = (hounsfield - hounsfield.min()) / (hounsfield.max() - hounsfield.min())
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert image.info.window is None
    assert image.info.modality == "CT"


@pytest.mark.parametrize(
    "compressed",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_lossless_encodings_decode_to_the_uncompressed_reference(compressed: str) -> None:
    reference = read_image(bundled("MR_small.dcm"))
    image = read_image(bundled(compressed))

    np.testing.assert_array_equal(image.pixels, reference.pixels)
    assert image.info.transfer_syntax == pydicom.dcmread(bundled(compressed)).file_meta.TransferSyntaxUID.name


def test_rgb_files_come_out_rgb_in_unit_range() -> None:
    image = read_image(bundled("SC_rgb_rle.dcm"))

    assert image.pixels.shape == (100, 100, 3)
    assert image.info.channels == 3
    # The pattern's rows are bands: red, light red, green, ... black, 64 grey, 192 grey, white.
    np.testing.assert_allclose(image.pixels[5, 50], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(image.pixels[15, 50], [1.0, 128 / 255, 128 / 255])
    np.testing.assert_allclose(image.pixels[45, 50], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(image.pixels[75, 50], [64 / 255] * 3)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_ybr_full_422_uncompressed.dcm"])
def test_ybr_files_are_converted_to_rgb(name: str) -> None:
    reference = read_image(bundled("SC_rgb_rle.dcm")).pixels
    image = read_image(bundled(name))

    assert image.info.photometric_interpretation in ("YBR_FULL", "YBR_FULL_422")
    assert image.pixels.shape == (100, 100, 3)
    np.testing.assert_allclose(image.pixels, reference, atol=0.03)  # lossy chroma, a few levels


def test_palette_colour_goes_through_the_colour_lut() -> None:
    image = read_image(bundled("examples_palette.dcm"))

    ds = pydicom.dcmread(bundled("examples_palette.dcm"))
    stored = ds.pixel_array
    assert list(ds.RedPaletteColorLookupTableDescriptor) == [256, 0, 16]  # 256 entries of 16 bits
    for channel, colour in enumerate(("Red", "Green", "Blue")):
        lut = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2")
        np.testing.assert_allclose(image.pixels[..., channel], lut[stored] / 65535, atol=1e-6)
    assert image.pixels.shape == (350, 800, 3)
    assert image.info.channels == 3


def test_computed_radiograph_monochrome1_is_inverted() -> None:
    path = bundled("6154")  # dicomdirtests/77654033/CR1/6154: a MONOCHROME1 CR with a window
    image = read_image(path)

    ds = pydicom.dcmread(path)
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = 1.0 - linear_window(values, float(ds.WindowCenter), float(ds.WindowWidth))
    np.testing.assert_allclose(image.pixels, expected, atol=1e-5)
    assert image.info.modality == "CR"
    assert image.info.body_part == "CSPINE"
    assert image.info.photometric_interpretation == "MONOCHROME1"


def test_bundled_multi_frame_file_gives_the_middle_frame() -> None:
    image = read_image(bundled("rtdose.dcm"))

    frames = pydicom.dcmread(bundled("rtdose.dcm")).pixel_array.astype(np.float64)
    middle = frames[7]
    np.testing.assert_allclose(
        image.pixels, (middle - middle.min()) / (middle.max() - middle.min()), atol=1e-6
    )
    assert (image.info.number_of_frames, image.info.frame_index) == (15, 7)
    assert image.warnings == ("multi-frame file: frame 8 of 15 (the middle one) was analysed",)


def test_file_without_pixel_data_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"rtplan\.dcm has no pixel data"):
        read_image(bundled("rtplan.dcm"))


def test_bundled_truncated_file_is_bad_input() -> None:
    with pytest.raises(BadInput, match=r"MR_truncated\.dcm.*truncated or corrupt"):
        read_image(bundled("MR_truncated.dcm"))


# --- files written by the factory ----------------------------------------------------------------


def test_monochrome1_is_the_inverse_of_monochrome2_pixel_for_pixel(tmp_path: Path) -> None:
    for window in (None, (125, 51)):
        mono2 = read_image(write_dicom(tmp_path / "m2.dcm", RAMP, window=window)).pixels
        mono1 = read_image(
            write_dicom(tmp_path / "m1.dcm", RAMP, photometric="MONOCHROME1", window=window)
        ).pixels

        np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)
        assert mono2[0, 0] == 0.0 and mono1[0, 0] == 1.0


def test_without_window_or_lut_min_max_maps_to_zero_and_one(tmp_path: Path) -> None:
    image = read_image(write_dicom(tmp_path / "plain.dcm", RAMP, bits_stored=12))

    np.testing.assert_allclose(image.pixels, RAMP / 4095, atol=1e-6)
    assert image.info.window is None


def test_window_clips_outside_and_maps_centre_to_half(tmp_path: Path) -> None:
    image = read_image(write_dicom(tmp_path / "w.dcm", RAMP, window=(125, 51)))

    pixels = image.pixels[0]
    assert pixels[0] == 0.0 and pixels[1] == 0.0  # 0 and 90 lie below the window, 99.5..149.5
    assert pixels[2] == pytest.approx(0.5, abs=0.01)  # 125 is the centre
    assert pixels[3] == 1.0 and pixels[4] == 1.0 and pixels[5] == 1.0  # 150, 1000, 4095 lie above
    np.testing.assert_allclose(pixels, linear_window(RAMP[0].astype(float), 125, 51), atol=1e-6)
    assert image.info.window == (125.0, 51.0)


def test_several_windows_use_the_first(tmp_path: Path) -> None:
    first_only = read_image(write_dicom(tmp_path / "one.dcm", RAMP, window=(125, 51))).pixels
    image = read_image(write_dicom(tmp_path / "two.dcm", RAMP, window=[(125, 51), (2000, 4000)]))

    np.testing.assert_array_equal(image.pixels, first_only)
    assert image.info.window == (125.0, 51.0)


def test_voi_lut_sequence_is_applied_instead_of_window(tmp_path: Path) -> None:
    # An inverting LUT over 12-bit inputs: a window alone could never produce this.
    lut = [2 * (4095 - i) for i in range(4096)]
    image = read_image(write_dicom(tmp_path / "lut.dcm", RAMP, bits_stored=12, voi_lut=lut, window=(125, 51)))

    np.testing.assert_allclose(image.pixels[0], (4095 - RAMP[0]) / 4095, atol=1e-6)
    assert image.info.window is None  # a LUT, not a window, was applied


def test_voi_lut_first_mapped_value_offsets_the_lut(tmp_path: Path) -> None:
    lut = [0, 10, 20, 30, 40]  # inputs 100..104; below clamps to the first entry, above to the last
    pixels = np.array([[50, 100, 102, 104, 200]], dtype=np.uint16)
    image = read_image(write_dicom(tmp_path / "lut.dcm", pixels, voi_lut=lut, voi_lut_first_mapped=100))

    np.testing.assert_allclose(image.pixels[0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


def test_signed_ct_with_slope_and_intercept_puts_air_dark_and_bone_bright(tmp_path: Path) -> None:
    hounsfield = np.array([[-1000, 0, 1000]])
    stored = (hounsfield + 24) // 2  # -488, 12, 512: negative stored values need the sign
    path = write_dicom(tmp_path / "ct.dcm", stored, signed=True, slope=2, intercept=-24, modality="CT")

    plain = read_image(path).pixels[0]
    np.testing.assert_allclose(plain, [0.0, 0.5, 1.0], atol=1e-6)

    windowed = read_image(
        write_dicom(tmp_path / "ctw.dcm", stored, signed=True, slope=2, intercept=-24, window=(0, 2000))
    )
    np.testing.assert_allclose(
        windowed.pixels[0], linear_window(hounsfield[0].astype(float), 0, 2000), atol=1e-6
    )
    assert windowed.pixels[0, 0] == pytest.approx(0.0, abs=1e-3)
    assert windowed.pixels[0, 1] == pytest.approx(0.5, abs=1e-3)
    assert windowed.pixels[0, 2] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(("frames", "middle"), [(5, 2), (4, 2)])
def test_multi_frame_gives_the_middle_frame_decoding_only_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames: int, middle: int
) -> None:
    # Frame k is filled with 10*k; markers 0 and 100 in every frame fix min..max at 0..100.
    stack = np.stack([np.full((8, 8), 10 * k, dtype=np.uint16) for k in range(frames)])
    stack[:, 0, 0], stack[:, 0, 1] = 0, 100
    path = write_dicom(tmp_path / "mf.dcm", stack, frames=frames)
    requested: list[int | None] = []
    original = Decoder.as_array

    def spy(self: Decoder, *args: object, **kwargs: object) -> object:
        requested.append(kwargs.get("index"))  # type: ignore[arg-type]
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Decoder, "as_array", spy)
    image = read_image(path)

    assert requested == [middle]
    np.testing.assert_allclose(image.pixels[1:, :], 10 * middle / 100, atol=1e-6)
    assert (image.info.number_of_frames, image.info.frame_index) == (frames, middle)
    assert image.warnings == (
        f"multi-frame file: frame {middle + 1} of {frames} (the middle one) was analysed",
    )


def test_metadata_comes_from_the_header(tmp_path: Path) -> None:
    path = write_dicom(
        tmp_path / "cr.dcm",
        RAMP,
        modality="DX",
        body_part="CHEST",
        view_position="AP",
        pixel_spacing=(0.15, 0.2),
    )
    info = read_image(path).info

    assert (info.modality, info.body_part, info.view_position) == ("DX", "CHEST", "AP")
    assert info.pixel_spacing_mm == pytest.approx((0.15, 0.2))
    assert (info.rows, info.columns, info.bits_stored) == (1, 6, 16)


def test_imager_pixel_spacing_is_the_fallback(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "cr.dcm", RAMP, pixel_spacing=None, imager_pixel_spacing=(0.139, 0.139))

    assert read_image(path).info.pixel_spacing_mm == pytest.approx((0.139, 0.139))


def test_a_zero_pixel_spacing_is_not_recorded_and_the_report_says_so(tmp_path: Path) -> None:
    from sahay.analysis import Analysis
    from sahay.reports.model import _study_facts

    path = write_dicom(
        tmp_path / "zero.dcm", RAMP, pixel_spacing=(0.0, 0.0), imager_pixel_spacing=(0.139, 0.139)
    )
    assert read_image(path).info.pixel_spacing_mm == pytest.approx((0.139, 0.139))  # the fallback is real
    path = write_dicom(tmp_path / "none.dcm", RAMP, pixel_spacing=(0.0, 0.0))
    info = read_image(path).info

    assert info.pixel_spacing_mm is None
    analysis = Analysis.model_validate({"image": info.model_dump(), "model": _card(), "findings": []})
    assert ("Pixel spacing", "not recorded") in _study_facts(analysis)


def _card() -> dict[str, object]:
    return {
        "name": "m", "version": "1", "task": "multilabel", "modalities": ["DX"], "body_part": "chest",
        "intended_use": "tests", "license": "none", "weights_sha256": "0" * 64, "training_data": "none",
        "calibration_temperature": 1.0,
    }  # fmt: skip


def test_identifiers_absent_by_default(tmp_path: Path) -> None:
    info = read_image(write_dicom(tmp_path / "id.dcm", RAMP)).info

    assert info.identifiers is None
    assert "Doe" not in info.model_dump_json()


def test_identifiers_kept_when_asked(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "id.dcm", RAMP, patient_name="Doe^Jane", patient_id="12345")
    ds = pydicom.dcmread(path)
    identifiers = read_image(path, keep_identifiers=True).info.identifiers

    assert identifiers is not None
    assert identifiers["PatientName"] == "Doe^Jane"
    assert identifiers["PatientID"] == "12345"
    for keyword, value in DEFAULT_IDENTIFIERS.items():
        assert identifiers[keyword] == value
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert identifiers[keyword] == str(ds[keyword].value)
    assert "PatientAddress" not in identifiers  # other patient data is never kept
    assert "1 Private Road" not in str(identifiers)


def test_rgb_dicom_with_equal_channels_is_greyscale(tmp_path: Path) -> None:
    grey = np.array([[0, 51, 255]], dtype=np.uint8)
    path = write_dicom(tmp_path / "sc.dcm", np.stack([grey] * 3, axis=-1), photometric="RGB", bits_stored=8)
    image = read_image(path)

    assert image.pixels.shape == (1, 3)
    assert image.info.channels == 1
    np.testing.assert_allclose(image.pixels[0], [0.0, 0.2, 1.0], atol=1e-6)


def test_dicom_without_preamble_is_read_when_it_looks_like_dicom(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "bare.dcm", RAMP, window=(125, 51), preamble=False)
    assert path.read_bytes()[:2] == b"\x08\x00"

    image = read_image(path)

    np.testing.assert_allclose(image.pixels[0], linear_window(RAMP[0].astype(float), 125, 51), atol=1e-6)
    assert image.info.transfer_syntax == "Explicit VR Little Endian"


# --- unsupported and bad files -------------------------------------------------------------------


@pytest.mark.parametrize("photometric", ["HSV", "YBR_ICT", "MADE_UP"])
def test_unsupported_photometric_interpretation_is_named(tmp_path: Path, photometric: str) -> None:
    colour = np.zeros((4, 4, 3), dtype=np.uint8)
    path = write_dicom(tmp_path / "odd.dcm", colour, photometric=photometric, bits_stored=8)

    with pytest.raises(UnsupportedFormat, match=rf"odd\.dcm.*{photometric}"):
        read_image(path)


@pytest.mark.parametrize(
    ("name", "syntax"), [("MR_small_RLE.dcm", RLELossless), ("MR_small_jp2klossless.dcm", JPEG2000Lossless)]
)
def test_missing_decoder_names_the_transfer_syntax_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, syntax: pydicom.uid.UID
) -> None:
    # With no plugins pydicom raises the same RuntimeError it raises when none is installed.
    monkeypatch.setattr(get_decoder(syntax), "_available", {})

    with pytest.raises(UnsupportedFormat) as caught:
        read_image(bundled(name))

    message = str(caught.value)
    assert syntax.name in message and str(syntax) in message
    assert "pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg" in message
    assert "python-gdcm" in message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_truncated_pixel_data_is_bad_input(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "cut.dcm", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    path.write_bytes(path.read_bytes()[:-1000])

    with pytest.raises(BadInput, match=r"cut\.dcm.*truncated or corrupt"):
        read_image(path)


def test_truncated_header_is_bad_input(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "cut.dcm", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    header_end = path.read_bytes().index(b"\xe0\x7f\x10\x00")  # the Pixel Data tag
    path.write_bytes(path.read_bytes()[: header_end - 3])

    with pytest.raises(BadInput, match=r"cut\.dcm.*truncated or corrupt"):
        read_image(path)


def test_structured_report_without_pixels_is_bad_input(tmp_path: Path) -> None:
    path = write_dicom_without_pixels(tmp_path / "report.dcm", modality="SR")

    with pytest.raises(BadInput, match=r"report\.dcm has no pixel data"):
        read_image(path)


def test_pixel_limit_is_checked_before_any_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_dicom(tmp_path / "big.dcm", np.zeros((64, 64), dtype=np.uint16))

    def must_not_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(Decoder, "as_array", must_not_decode)
    with pytest.raises(InputTooLarge, match=r"big\.dcm.*4,096 pixels.*SAHAY_MAX_PIXELS"):
        read_image(path, settings=Settings(max_pixels=100))


def test_invalid_window_width_falls_back_to_min_max_with_a_warning(tmp_path: Path) -> None:
    image = read_image(write_dicom(tmp_path / "w0.dcm", RAMP, bits_stored=12, window=(100, 0)))

    np.testing.assert_allclose(image.pixels, RAMP / 4095, atol=1e-6)
    assert image.info.window is None
    assert len(image.warnings) == 1 and "window in the file was ignored" in image.warnings[0]


def test_empty_rescale_slope_is_bad_input(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "slope.dcm", RAMP, slope=2, intercept=0)
    ds = pydicom.dcmread(path)
    ds.RescaleSlope = None
    ds.save_as(path)

    with pytest.raises(BadInput, match=r"slope\.dcm has invalid LUT, rescale or palette attributes"):
        read_image(path)


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_malformed_attribute_values_are_bad_input() -> None:
    # pydicom's badVR.dcm parses, then fails when its element values are read.
    with pytest.raises(BadInput, match=r"badVR\.dcm") as caught:
        read_image(get_testdata_file("badVR.dcm", download=False))
    assert "BytesIO" not in str(caught.value)


def test_non_finite_rescale_is_bad_input(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "nan.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4), slope=float("nan"))
    with pytest.raises(BadInput, match="non-finite"):
        read_image(path)


def test_non_finite_window_falls_back_to_the_value_range(tmp_path: Path) -> None:
    stored = np.arange(16, dtype=np.uint16).reshape(4, 4)
    path = write_dicom(tmp_path / "inf.dcm", stored, window=(float("nan"), float("inf")))
    image = read_image(path)
    assert image.info.window is None
    assert image.pixels.min() == 0.0 and image.pixels.max() == 1.0
