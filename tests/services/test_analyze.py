"""The analysis flow's own rules: heatmap targets, output folders, and what a failure leaves behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sahay.analysis import Analysis, Finding
from sahay.config import Settings
from sahay.errors import BadInput
from sahay.explain.methods import METHODS, ExplanationMethod, MethodInput, MethodResult
from sahay.explain.options import ExplainOptions
from sahay.models.bundle import Bundle
from sahay.services import analyze as analyze_service
from sahay.services.analyze import analyze, heatmap_targets
from sahay.services.demo import write_example_image
from tests.factories import chest_phantom, write_dicom, write_png


def _finding(label: str, probability: float, positive: bool = False) -> Finding:
    return Finding(label=label, probability=probability, threshold=0.5, positive=positive)


def test_heatmaps_go_to_positive_findings() -> None:
    findings = [_finding("a", 0.9, True), _finding("b", 0.2), _finding("c", 0.7, True)]
    assert heatmap_targets(findings) == [0, 2]


def test_at_most_top_k_positives_get_heatmaps_the_most_probable_first() -> None:
    findings = [_finding(name, p, True) for name, p in zip("abcde", [0.6, 0.9, 0.7, 0.95, 0.8], strict=True)]
    assert heatmap_targets(findings) == [1, 3, 4]  # 0.9, 0.95 and 0.8, in label order
    assert heatmap_targets(findings, top_k=1) == [3]
    assert heatmap_targets(findings, top_k=10) == [0, 1, 2, 3, 4]


def test_top_three_get_heatmaps_when_none_is_positive() -> None:
    findings = [_finding(name, p) for name, p in zip("abcde", [0.1, 0.4, 0.05, 0.3, 0.2], strict=True)]
    assert heatmap_targets(findings) == [1, 3, 4]


def test_labels_that_clean_to_the_same_name_get_distinct_files() -> None:
    assert analyze_service._file_stems(["a b", "a_b", "A B", "../x"]) == ["a_b", "a_b-2", "A_B-3", "x"]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "example.png"
    write_example_image(path, disc=True)
    return path


def test_demonstration_overlays_carry_the_banner(demo_bundle: Bundle, example: Path, tmp_path: Path) -> None:
    analysis = analyze(example, model=str(demo_bundle.path), out_dir=tmp_path / "out")
    finding = next(f for f in analysis.findings if f.explanation)
    assert finding.explanation is not None
    overlay = np.asarray(Image.open(tmp_path / "out" / finding.explanation.overlay_png))
    bottom_band = overlay[-4:, :, :].reshape(-1, 3)
    # The red banner (170, 0, 0) with white text runs along the bottom of every demo overlay.
    assert (np.all(bottom_band == (170, 0, 0), axis=1)).mean() > 0.5


def test_a_failure_while_writing_keeps_the_previous_result(
    demo_bundle: Bundle, example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    first = analyze(example, model=str(demo_bundle.path), out_dir=out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken_overlay(*args: object, **kwargs: object) -> None:
        raise RuntimeError("renderer failed")

    monkeypatch.setattr("sahay.explain.overlay.render_overlay", broken_overlay)
    with pytest.raises(RuntimeError):
        analyze(example, model=str(demo_bundle.path), out_dir=out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert Analysis.from_json_file(out / "analysis.json").id == first.id
    assert not list(out.glob(".staging-*"))


def test_a_new_result_replaces_the_old_one_whole(demo_bundle: Bundle, example: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    analyze(example, model=str(demo_bundle.path), out_dir=out)
    assert (out / "heatmaps").is_dir()
    analyze(example, model=str(demo_bundle.path), out_dir=out, heatmaps=False)
    assert not (out / "heatmaps").exists()
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json"]


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(
    demo_bundle: Bundle, example: Path, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("keep me")
    with pytest.raises(BadInput, match="is a file, not a folder"):
        analyze(example, model=str(demo_bundle.path), out_dir=not_a_folder)
    with pytest.raises(BadInput, match="not a writable folder"):
        analyze(example, model=str(demo_bundle.path), out_dir=not_a_folder / "sub")
    assert not_a_folder.read_text() == "keep me"


def test_images_too_small_to_analyse_are_refused(
    demo_bundle: Bundle, tmp_path: Path, settings: Settings
) -> None:
    line = write_png(tmp_path / "line.png", np.full((1, 400), 128, dtype=np.uint8))
    with pytest.raises(BadInput, match="at least 16 pixels"):
        analyze(line, model=str(demo_bundle.path))


def _fixed_map_method(centre: tuple[float, float]) -> ExplanationMethod:
    """A stand-in method whose map is one blob at ``centre`` (x, y as fractions of the input)."""

    def run(request: MethodInput) -> MethodResult:
        height, width = request.input_tensor.shape[-2:]
        rows, columns = np.mgrid[0:height, 0:width]
        x, y = centre[0] * width, centre[1] * height
        blob = np.exp(-((columns - x) ** 2 + (rows - y) ** 2) / (2 * (width / 40) ** 2)).astype(np.float32)
        return MethodResult([blob for _ in request.label_indices], 0)

    return ExplanationMethod("fixed", "Fixed map", "perturbation", True, "none", run)


@pytest.mark.parametrize(
    ("orientation", "words"),
    [
        (None, "right upper zone, peripheral"),
        (("L", "F"), "right upper zone, peripheral"),
        (("R", "F"), "left upper zone, peripheral"),
    ],
)
def test_chest_regions_are_named_in_patient_terms(
    demo_bundle: Bundle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    orientation: tuple[str, str] | None,
    words: str,
) -> None:
    # A PA chest 800 x 700; the demo bundle stretches it to its square input, so fractions carry over.
    phantom = chest_phantom(800, 700)
    path = write_dicom(
        tmp_path / "chest.dcm",
        np.round(phantom.pixels * 4000).astype(np.uint16),
        bits_stored=12,
        patient_orientation=orientation,
    )
    monkeypatch.setitem(METHODS, "fixed", _fixed_map_method((0.25, 0.25)))
    analysis = analyze(
        path,
        model=str(demo_bundle.path),
        out_dir=tmp_path / "out",
        force=True,
        explain=ExplainOptions("fixed"),
    )
    explanation = next(f.explanation for f in analysis.findings if f.explanation)
    assert explanation.lung_fields == "detected"
    (region,) = explanation.regions
    assert region.location == words
    assert region.zone == "upper" and region.depth == "peripheral"
    x, y, width, height = region.box  # original pixels, around (175, 200)
    assert abs(x + width / 2 - 175) < 12 and abs(y + height / 2 - 200) < 12
    assert words in explanation.summary


def test_overlays_are_written_at_display_size_unless_full_resolution_is_asked(
    demo_bundle: Bundle, example: Path, tmp_path: Path
) -> None:
    import cv2

    small = np.asarray(Image.open(example))
    big = write_png(tmp_path / "big.png", cv2.resize(small, (2048, 1536), interpolation=cv2.INTER_CUBIC))
    shown = analyze(big, model=str(demo_bundle.path), out_dir=tmp_path / "shown", force=True)
    full = analyze(
        big, model=str(demo_bundle.path), out_dir=tmp_path / "full", force=True, full_resolution=True
    )
    for analysis, folder, width in ((shown, "shown", 1024), (full, "full", 2048)):
        explained = [f for f in analysis.findings if f.explanation]
        assert explained
        for finding in explained:
            assert finding.explanation is not None
            with Image.open(tmp_path / folder / finding.explanation.overlay_png) as overlay:
                assert overlay.width == width
            # Regions stay in the image's own pixels in analysis.json.
            for region in finding.explanation.regions:
                assert region.box[0] + region.box[2] <= 2048
