"""Trust at a new site: recalibration, the unlabelled site check and subgroup evaluation.

The data are generated with known faults: a model made overconfident (its temperature divided
by 8) on labels with 15 % noise, a site where one finding never occurs, and a subgroup whose
labels are unrelated to the images.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sahay.config import Settings
from sahay.models.bundle import MANIFEST_NAME, load_bundle
from sahay.models.registry import find_installed
from sahay.services.analyze import analyze
from sahay.training.evaluate import evaluate
from sahay.training.recalibrate import calibrate
from sahay.training.site_check import check_site
from sahay.training.synthetic import LABELS, make_image
from tests.e2e.test_cli_analyze import run_cli
from tests.factories import write_png

OVERCONFIDENT = "overconfident"


def _write_images(
    folder: Path, count: int, seed: int, *, stripes: bool | None = None
) -> list[tuple[Path, np.ndarray]]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(count):
        disc = bool(index % 2)
        stripe = bool((index // 2) % 2) if stripes is None else stripes
        image = make_image(rng, 96, disc=disc, stripes=stripe)
        path = write_png(folder / f"img-{index:04d}.png", np.round(image.pixels * 255).astype(np.uint8))
        written.append((path, image.targets))
    return written


def _write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def large_site_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 labelled site images; 15 % of the labels are flipped, so no model can be certain here.

    ECE over 15 bins needs a few hundred held-back images before its sampling noise falls well
    under 0.05; `site_csv` is its first 400 rows, for the tests that do not measure it.
    """
    root = tmp_path_factory.mktemp("site")
    rng = np.random.default_rng(1)
    rows: list[dict[str, object]] = []
    for index, (path, targets) in enumerate(_write_images(root / "images", 1000, seed=3)):
        noisy = np.where(rng.random(len(targets)) < 0.15, 1 - targets, targets)
        rows.append(
            {
                "path": f"images/{path.name}",
                "patient_id": f"p{index // 2}",
                **{label: int(value) for label, value in zip(LABELS, noisy, strict=True)},
            }
        )
    _write_csv(root / "site-400.csv", rows[:400])
    return _write_csv(root / "site.csv", rows)


@pytest.fixture(scope="module")
def site_csv(large_site_csv: Path) -> Path:
    return large_site_csv.with_name("site-400.csv")


@pytest.fixture
def overconfident(demo_installed: Settings) -> Settings:
    """The demo model installed again with its temperature divided by 8: a known miscalibration."""
    settings = demo_installed
    source = find_installed("sahay-demo-synthetic", settings)
    assert source is not None
    folder = settings.models_dir / OVERCONFIDENT
    shutil.copytree(source.path, folder)
    manifest = source.manifest
    calibration = manifest.calibration.model_copy(
        update={"temperature": manifest.calibration.temperature / 8}
    )
    changed = manifest.model_copy(
        update={"name": OVERCONFIDENT, "calibration": calibration, "demonstration": False}
    )
    (folder / MANIFEST_NAME).write_text(changed.model_dump_json(indent=2), encoding="utf-8")
    return settings


def test_calibrate_brings_held_back_ece_under_0_05_and_leaves_the_original(
    overconfident: Settings, large_site_csv: Path, tmp_path: Path
) -> None:
    original = (overconfident.models_dir / OVERCONFIDENT / MANIFEST_NAME).read_bytes()
    report = calibrate(
        OVERCONFIDENT, large_site_csv, as_name="site-calibrated", method="isotonic", settings=overconfident
    )

    assert report.summary["ece_before"] > 0.08  # the injected fault is visible on the held-back part
    assert report.summary["ece_after"] < 0.05
    assert report.summary["brier_after"] < report.summary["brier_before"]
    for label in LABELS:
        after = report.per_label[label]["after"]
        assert 0 <= after["ece_ci95"][0] <= after["ece_ci95"][1] <= 1
        assert after["sensitivity"] is not None and after["specificity"] is not None
    assert (overconfident.models_dir / OVERCONFIDENT / MANIFEST_NAME).read_bytes() == original
    bundle = load_bundle(overconfident.models_dir / "site-calibrated")
    site = bundle.manifest.calibration.site
    assert (
        site is not None and site.source_model == OVERCONFIDENT and sorted(site.calibrated) == sorted(LABELS)
    )
    assert site.source_weights_sha256 == bundle.manifest.weights.sha256  # the weights are the same file
    assert len(site.data_fingerprint) == 64 and site.images_fitted + site.images_held_out == 1000
    saved = json.loads((report.report_dir / "calibration.json").read_text())
    assert saved["summary"]["ece_after"] == report.summary["ece_after"]
    assert {p.name for p in report.plots} == {f"reliability-{label}.png" for label in LABELS}


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_the_parametric_methods_also_reduce_the_error(
    overconfident: Settings, site_csv: Path, method: str
) -> None:
    report = calibrate(
        OVERCONFIDENT, site_csv, as_name=f"site-{method}", method=method, settings=overconfident
    )  # type: ignore[arg-type]
    assert report.summary["ece_after"] < report.summary["ece_before"] / 2


def test_a_recalibrated_model_analyses_with_its_site_probabilities(
    overconfident: Settings, site_csv: Path, tmp_path: Path
) -> None:
    calibrate(
        OVERCONFIDENT, site_csv, as_name="site-calibrated", target_sensitivity=0.9, settings=overconfident
    )
    image = next((site_csv.parent / "images").iterdir())
    before = analyze(image, model=OVERCONFIDENT, force=True, settings=overconfident)
    after = analyze(image, model="site-calibrated", force=True, settings=overconfident)
    # Overconfident before: near 0 or 1; the site map pulls them toward the 15 % label noise.
    assert max(min(f.probability, 1 - f.probability) for f in before.findings) < 0.05
    assert all(0.05 < f.probability < 0.95 for f in after.findings)
    assert all(not any("Not calibrated" in c for c in f.cautions) for f in after.findings)
    assert after.model.site_calibration is not None and "site-400.csv" in after.model.site_calibration


def test_findings_with_too_few_positives_keep_their_values(overconfident: Settings, site_csv: Path) -> None:
    report = calibrate(
        OVERCONFIDENT, site_csv, as_name="site-strict", min_positives=500, settings=overconfident
    )
    assert set(report.kept) == set(LABELS) and "at least 500" in report.kept[LABELS[0]]
    manifest = load_bundle(overconfident.models_dir / "site-strict").manifest
    assert manifest.calibration.per_label == {}


def test_calibrate_refuses_unknown_findings_and_too_little_data(
    overconfident: Settings, site_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(site_csv.open()))
    renamed = [{("Nodule" if k == LABELS[0] else k): v for k, v in row.items()} for row in rows]
    unknown = _write_csv(site_csv.parent / "unknown.csv", renamed)
    code, output = _output(run_cli(capsys, "models", "calibrate", OVERCONFIDENT, str(unknown), "--as", "x"))
    assert code == 2 and "Nodule" in output and "does not know" in output
    few = _write_csv(site_csv.parent / "few.csv", rows[:10])
    code, output = _output(run_cli(capsys, "models", "calibrate", OVERCONFIDENT, str(few), "--as", "x"))
    assert code == 2 and "needs 40" in output
    code, output = _output(
        run_cli(capsys, "models", "calibrate", OVERCONFIDENT, str(site_csv), "--as", OVERCONFIDENT)
    )
    assert code == 2 and "already installed" in output
    assert "Traceback" not in output


def test_check_site_flags_the_shifted_finding_and_analyses_repeat_it(
    overconfident: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This site never has stripes; the training data had them in half the images.
    images = _write_images(tmp_path / "site", 40, seed=5, stripes=False)
    code, output = _output(
        run_cli(
            capsys,
            "models",
            "check-site",
            OVERCONFIDENT,
            str(tmp_path / "site"),
            "--out",
            str(tmp_path / "report"),
        )
    )
    assert code == 0, output
    saved = json.loads((tmp_path / "report" / "site-check.json").read_text())
    rates = {entry["label"]: entry for entry in saved["findings"]}
    assert rates["synthetic_stripes"]["flagged"] and rates["synthetic_stripes"]["ratio"] < 0.5
    assert not rates["synthetic_disc"]["flagged"]
    assert saved["images"] == 40 and "calibrate" in " ".join(saved["advice"])
    html = (tmp_path / "report" / "site-check.html").read_text()
    assert "data:image/png;base64," in html and "synthetic_stripes" in html

    analysis = analyze(images[0][0], model=OVERCONFIDENT, force=True, settings=overconfident)
    cautions = {f.label: f.cautions for f in analysis.findings}
    assert any("Flagged by the site check" in c for c in cautions["synthetic_stripes"])
    assert not any("Flagged" in c for c in cautions["synthetic_disc"])


def test_check_site_reads_a_csv_of_paths_and_reports_unreadable_files(
    overconfident: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _write_images(tmp_path / "imgs", 24, seed=6)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not an image")
    listed = _write_csv(
        tmp_path / "list.csv", [{"path": f"imgs/{p.name}"} for p, _ in images] + [{"path": "imgs/broken.png"}]
    )
    report = check_site(OVERCONFIDENT, listed, out=tmp_path / "out", settings=overconfident)
    assert report.images == 24 and len(report.unreadable) == 1 and "broken.png" in report.unreadable[0][0]
    too_few = _write_csv(tmp_path / "few.csv", [{"path": f"imgs/{p.name}"} for p, _ in images[:5]])
    code, output = _output(
        run_cli(capsys, "models", "check-site", OVERCONFIDENT, str(too_few), "--out", str(tmp_path / "o2"))
    )
    assert code == 2 and "at least 20" in output


def test_evaluate_by_finds_the_weak_subgroup(
    demo_installed: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(2)
    rows: list[dict[str, object]] = []
    for index, (path, targets) in enumerate(_write_images(tmp_path / "images", 162, seed=9)):
        sex = "F" if index % 4 == 0 else "M"
        # For the F subgroup the labels say nothing about the images: its AUROC is near chance.
        labels = rng.integers(0, 2, len(targets)) if sex == "F" else targets
        rows.append(
            {
                "path": f"images/{path.name}",
                "split": "train" if index < 2 else "test",  # evaluate scores the test rows
                "sex": sex,
                **{label: int(v) for label, v in zip(LABELS, labels, strict=True)},
            }
        )
    data = _write_csv(tmp_path / "eval.csv", rows)
    metrics = evaluate("sahay-demo-synthetic", data, out=tmp_path / "eval", by="sex", settings=demo_installed)
    groups = metrics["subgroups"]["groups"]
    assert groups["F"]["images"] == 40 and groups["M"]["images"] == 120
    assert groups["F"]["flags"] and not groups["M"]["flags"]
    assert any("subgroup F" in w for w in metrics["warnings"])
    assert groups["F"]["per_label"][LABELS[0]]["auroc_ci95"][1] < metrics["per_label"][LABELS[0]]["auroc"]
    code, output = _output(
        run_cli(
            capsys,
            "evaluate",
            "sahay-demo-synthetic",
            str(data),
            "--out",
            str(tmp_path / "e2"),
            "--by",
            "scanner",
        )
    )
    assert code == 2 and "--by scanner" in output


def _output(result: tuple[int, str, str]) -> tuple[int, str]:
    code, stdout, stderr = result
    return code, stdout + stderr
