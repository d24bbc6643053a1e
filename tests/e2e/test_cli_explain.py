"""Explanations end to end: every method from the CLI and the library on a real DICOM, and explain-eval."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from sahay.analysis import Analysis
from sahay.config import Settings
from sahay.explain.methods import METHODS, Budget
from sahay.explain.options import ExplainOptions
from sahay.models.bundle import Bundle
from sahay.services.analyze import analyze
from sahay.training.synthetic import LABELS, make_image
from tests.e2e.test_cli_analyze import DEMO, run_cli
from tests.factories import write_png

CT = Path(get_testdata_file("CT_small.dcm", download=False))


def _check_explanations(analysis: Analysis, out: Path, method: str, *, scored: bool = True) -> None:
    explained = [f for f in analysis.findings if f.explanation]
    assert explained
    for finding in explained:
        explanation = finding.explanation
        assert explanation is not None
        assert explanation.method == method and explanation.method_title == METHODS[method].title
        assert explanation.class_specific == METHODS[method].class_specific
        # The one-pass CAM reads the maps the prediction already made: no model evaluation of its own.
        assert explanation.model_evaluations == 0 if method == "cam" else explanation.model_evaluations >= 1
        assert explanation.lung_fields is None  # a CT slice is never read as a chest radiograph
        assert explanation.summary.startswith(f"{explanation.method_title}: the {finding.label} signal")
        for region in explanation.regions:
            x, y, width, height = region.box
            assert x >= 0 and y >= 0 and x + width <= 128 and y + height <= 128  # CT_small is 128 x 128
            assert region.side is None and region.location.endswith("of the image")
        if explanation.regions:
            assert sum(r.mass_share for r in explanation.regions) <= 1.0 + 1e-6
        heatmap = explanation.load_map(out)
        if heatmap.max() > 0 and scored:
            assert explanation.faithfulness is not None
            assert -1.0 <= explanation.faithfulness.score <= 1.0
        overlay = Image.open(out / explanation.overlay_png)
        assert overlay.width == 128 and overlay.height > 128  # original resolution, plus header
        if scored:  # the CLI runs ask for the side-by-side picture with the score
            assert explanation.side_by_side_png is not None
            assert Image.open(out / explanation.side_by_side_png).width > 256
        else:
            assert explanation.faithfulness is None and explanation.side_by_side_png is None


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_from_the_cli_on_a_real_dicom(
    method: str, demo_installed: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys,
        "analyze",
        CT,
        "-m",
        DEMO,
        "-o",
        out,
        "--force",
        "--explain",
        method,
        "--explain-budget",
        "20",
        "--faithfulness",
        "--side-by-side",
    )
    assert code == 0, stderr
    analysis = Analysis.from_json_file(out / "analysis.json")
    _check_explanations(analysis, out, method)
    assert f"{METHODS[method].title}: the " in stdout and "faithfulness" in stdout


@pytest.mark.parametrize("method", ["hirescam", "shap"])
def test_methods_run_from_the_library(method: str, demo_bundle: Bundle, tmp_path: Path) -> None:
    options = ExplainOptions(method, Budget(max_evaluations=20), opacity=0.8)
    out = tmp_path / "out"
    analysis = analyze(CT, model=str(demo_bundle.path), out_dir=out, force=True, explain=options)
    _check_explanations(analysis, out, method, scored=False)  # the library's defaults


def test_by_default_only_the_overlays_and_the_maps_are_written(demo_bundle: Bundle, tmp_path: Path) -> None:
    out = tmp_path / "o"
    analysis = analyze(CT, model=str(demo_bundle.path), out_dir=out, force=True)
    explained = [f.explanation for f in analysis.findings if f.explanation]
    assert explained and all(e.faithfulness is None and e.side_by_side_png is None for e in explained)
    written = sorted(p.name for p in (out / "heatmaps").iterdir())
    assert written == sorted([Path(e.overlay_png).name for e in explained] + ["maps.npz"])
    assert all(e.model_evaluations == 0 for e in explained)  # the one-pass map ran no model of its own


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--explain", "magic", "unknown explanation method 'magic'"),
        ("--overlay-opacity", "1.5", "--overlay-opacity"),
        ("--explain-budget", "1", "--explain-budget"),
    ],
)
def test_bad_explanation_options_are_refused_before_any_work(
    option: str, value: str, message: str, demo_installed: Settings, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "analyze", CT, "-m", DEMO, "-o", out, "--force", option, value)
    assert code == 2 and message in stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def _labelled_csv(folder: Path, count: int) -> Path:
    """Demo-style images with known labels in a CSV table: ``count`` test rows after two train rows."""
    rng = np.random.default_rng(5)
    rows = []
    for index in range(count + 2):
        disc, stripes = index % 2 == 0, index % 3 == 0
        image = make_image(rng, 224, disc=disc, stripes=stripes)
        path = write_png(folder / f"case-{index}.png", np.round(image.pixels * 255).astype(np.uint8))
        rows.append(
            {
                "path": path.name,
                LABELS[0]: int(disc),
                LABELS[1]: int(stripes),
                "split": "train" if index < 2 else "test",
            }
        )
    table = folder / "labels.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table


def test_explain_eval_ranks_methods_against_a_random_reference(
    demo_installed: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _labelled_csv(tmp_path, 6)
    report_path = tmp_path / "reports" / "faithfulness.json"
    code, stdout, stderr = run_cli(
        capsys,
        "explain-eval",
        DEMO,
        table,
        "--methods",
        "gradcam,occlusion",
        "--labels",
        ",".join(LABELS),
        "--split-column",
        "split",
        "--explain-budget",
        "26",
        "--out",
        report_path,
    )
    assert code == 0, stderr
    report = json.loads(report_path.read_text())
    assert report["images"] == 6 and report["split"] == "test"
    rows = {row["method"]: row for row in report["rows"]}
    assert set(rows) == {"gradcam", "occlusion", "random"}
    assert all(row["images"] == 6 for row in rows.values())
    scores = [row["mean_score"] for row in report["rows"]]
    assert scores == sorted(scores, reverse=True)
    # The demo model finds drawn shapes; maps that point at them beat a random map.
    assert rows["gradcam"]["mean_score"] > rows["random"]["mean_score"]
    assert rows["occlusion"]["mean_score"] > rows["random"]["mean_score"]
    assert rows["occlusion"]["evaluations_per_image"] <= 26
    assert "gradcam" in stdout and "random" in stdout


def test_explain_eval_refuses_bad_input(demo_installed: Settings, tmp_path: Path, capsys) -> None:
    table = _labelled_csv(tmp_path, 2)
    common = ["--labels", ",".join(LABELS), "--split-column", "split"]
    code, _, stderr = run_cli(capsys, "explain-eval", DEMO, table, "--methods", "gradcam,nope", *common)
    assert code == 2 and "unknown explanation method 'nope'" in stderr
    code, _, stderr = run_cli(capsys, "explain-eval", "no-such-model", table, *common)
    assert code == 2 and "no-such-model" in stderr
    for index in (2, 3):  # the two test rows
        (tmp_path / f"case-{index}.png").write_bytes(b"not an image at all")
    code, _, stderr = run_cli(capsys, "explain-eval", DEMO, table, *common)
    assert code == 2 and "none of the 2 images could be read" in stderr and "case-2.png" in stderr
