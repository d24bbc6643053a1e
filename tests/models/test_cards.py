"""Model cards and weights provenance: what a TorchXRayVision bundle says about itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sahay.config import Settings, reload_settings
from sahay.errors import IntegrityError
from sahay.models.catalog import catalog
from sahay.models.registry import find_installed, import_path, pull, verify_weights
from sahay.models.xrv_reference import PREVALENCE_FILE, counts
from sahay.services.analyze import analyze
from sahay.services.models import CardOut
from tests.e2e.test_cli_analyze import run_cli
from tests.servers import ServedFolder

NIH = "xrv-densenet121-res224-nih"
ALL = "xrv-densenet121-res224-all"


@pytest.fixture
def unverified_nih(settings: Settings, xrv_release_dir: Path, tmp_path: Path) -> Settings:
    """Random weights named like the NIH release: no published checksum to match."""
    downloaded = tmp_path / catalog()[NIH].filename
    shutil.copy(xrv_release_dir / downloaded.name, downloaded)
    import_path(downloaded, settings)
    return settings


def test_a_release_file_with_no_published_checksum_is_marked_unverified_everywhere(
    unverified_nih: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydicom.data import get_testdata_file

    code, output = _output(run_cli(capsys, "models", "info", NIH))
    assert code == 0 and "weights not verified against a published checksum" in output
    analysis = analyze(
        get_testdata_file("dicomdirtests/77654033/CR1/6154", download=False), model=NIH, force=True
    )
    assert analysis.model.weights_verified is False
    assert any("weights not verified" in warning for warning in analysis.warnings)
    # Pulled models are not calibrated to the site: each finding says so beside it.
    assert all(any("Not calibrated for this site" in c for c in f.cautions) for f in analysis.findings)

    from sahay.reports.html import render_html
    from sahay.reports.model import build_report

    html = render_html(build_report(analysis))
    assert "weights not verified against a published checksum" in html
    assert "Appendix: the model&#39;s card" in html or "Appendix: the model's card" in html
    assert "Hidden stratification" in html and "Not calibrated for this site" in html


def test_verify_accepts_only_the_sha256_of_the_installed_file(
    unverified_nih: Settings, xrv_release_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sahay.fileio import sha256_file

    with pytest.raises(IntegrityError, match="not the published file"):
        verify_weights(NIH, "0" * 64, source=None, settings=unverified_nih)
    code, output = _output(run_cli(capsys, "models", "verify", NIH, "--sha256", "not-hex"))
    assert code == 2 and "not a sha256" in output
    real = sha256_file(xrv_release_dir / catalog()[NIH].filename)
    code, output = _output(
        run_cli(capsys, "models", "verify", NIH, "--sha256", real.upper(), "--source", "our mirror")
    )
    assert code == 0, output
    card = CardOut.of(find_installed(NIH, unverified_nih).manifest)  # type: ignore[union-attr]
    assert card.weights_verified is True and "our mirror" in card.weights


def test_a_pulled_model_whose_checksum_matches_is_verified_with_its_source(xrv_server: ServedFolder) -> None:
    bundle = pull(ALL, reload_settings())
    weights = bundle.manifest.weights
    assert weights.verified is True and weights.verified_by and "huggingface.co" in weights.verified_by


def test_every_finding_of_the_chest_model_has_a_cited_failure_mode_and_a_reference_prevalence(
    xrv_server: ServedFolder,
) -> None:
    manifest = pull(ALL, reload_settings()).manifest
    details = manifest.details
    for label in manifest.labels:
        modes = details.failure_modes_for(label)
        assert modes and all(mode.source.url.startswith("https://") for mode in modes)
    assert any(mode.findings == ["Pneumothorax"] for mode in details.failure_modes)
    assert {"Cardiomegaly", "Pneumothorax", "Effusion"} <= set(details.reference_prevalence)
    assert all(0 < p.prevalence < 1 for p in details.reference_prevalence.values())
    assert details.expected_views == ["PA", "AP"] and details.not_intended_for
    names = [d.name for d in details.training_datasets]
    assert names == [
        "NIH ChestX-ray14",
        "PadChest",
        "CheXpert",
        "Google NIH relabels",
        "RSNA Pneumonia Challenge",
    ]
    assert "MIMIC-CXR" in details.reference_prevalence_source  # what could not be counted is said
    # Published AUROCs, cited: TorchXRayVision's BENCHMARKS.md, e.g. Cardiomegaly 0.93 on PadChest.
    published = {(p.label, p.dataset): p for p in details.performance}
    assert published[("Cardiomegaly", "PadChest (in training)")].value == 0.93
    assert all("BENCHMARKS.md" in p.source.url for p in details.performance)
    assert {p.label for p in details.performance} <= set(manifest.labels)


def test_the_shipped_prevalence_is_what_the_label_tables_give() -> None:
    """The NIH numbers recomputed from the wheel's table match the committed file."""
    shipped = json.loads(PREVALENCE_FILE.read_text())["models"]["densenet121-res224-nih"]
    recounted = counts()[0]["nih"]
    for label, (positives, images) in recounted.items():
        assert shipped[label]["prevalence"] == round(positives / images, 5)
        assert shipped[label]["images"] == images


def test_a_lateral_view_is_refused_by_a_frontal_chest_model(xrv_server: ServedFolder, tmp_path: Path) -> None:
    import numpy as np

    from sahay.errors import OutOfDomain
    from tests.factories import write_dicom

    pull(ALL, reload_settings())
    lateral = write_dicom(tmp_path / "lat.dcm", np.zeros((64, 64), dtype=np.uint16), view_position="LL")
    with pytest.raises(OutOfDomain, match="view position is LL"):
        analyze(lateral, model=ALL)


def _output(result: tuple[int, str, str]) -> tuple[int, str]:
    code, stdout, stderr = result
    return code, stdout + stderr
