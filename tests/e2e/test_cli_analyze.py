"""`sahay analyze` and `sahay models` end to end, through the real command-line entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from sahay.analysis import Analysis
from sahay.cli import main
from sahay.cli.analyze import print_analysis
from sahay.config import Settings, reload_settings
from tests.factories import write_dicom, write_jpeg, write_png
from tests.servers import ServedFolder

DEMO = "sahay-demo-synthetic"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def _testdata(name: str) -> Path:
    return Path(get_testdata_file(name, download=False))


def _generated_png(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    return write_png(folder / "grey.png", (rng.random((180, 300)) * 255).astype(np.uint8))


def _generated_jpeg(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    return write_jpeg(folder / "colour.jpg", (rng.random((240, 160, 3)) * 255).astype(np.uint8))


def _generated_chest_dicom(folder: Path) -> Path:
    rng = np.random.default_rng(2)
    return write_dicom(
        folder / "chest.dcm", (rng.random((256, 200)) * 4000).astype(np.uint16), bits_stored=12
    )


IMAGES = {
    "ct": lambda folder: _testdata("CT_small.dcm"),
    "mr": lambda folder: _testdata("MR_small.dcm"),
    "cr": lambda folder: _testdata("dicomdirtests/77654033/CR1/6154"),
    "png": _generated_png,
    "jpeg": _generated_jpeg,
    "dicom-written": _generated_chest_dicom,
}


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_analyze_writes_findings_and_heatmaps(
    kind: str, demo_installed: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # None of these is the demo model's kind of image, so each must be forced through.
    image = IMAGES[kind](tmp_path)
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "analyze", image, "--model", DEMO, "--out", out)
    assert code == 2 and "does not look like an image this model was made for" in stderr
    assert "--force" in stderr and "force=true" not in stderr  # the command line's own hint
    assert not out.exists()
    code, stdout, stderr = run_cli(
        capsys, "analyze", image, "--model", DEMO, "--out", out, "--force", "--side-by-side", "--faithfulness"
    )
    assert code == 0, stderr

    analysis = Analysis.from_json_file(out / "analysis.json")
    assert analysis.schema_version == "2.3"
    assert analysis.quality is not None and analysis.quality.forced and not analysis.quality.in_domain
    assert any(w.startswith("Analysed at the user's request") for w in analysis.warnings)
    assert analysis.model.name == DEMO and analysis.model.demonstration
    assert "no clinical meaning" in (analysis.demonstration_notice or "")
    assert analysis.image.identifiers is None
    assert len(analysis.image.sha256) == 64
    assert {f.label for f in analysis.findings} == {"synthetic_disc", "synthetic_stripes"}
    with_heatmaps = [f for f in analysis.findings if f.explanation]
    expected = [f for f in analysis.findings if f.positive] or analysis.findings
    assert {f.label for f in with_heatmaps} == {f.label for f in expected}
    for finding in with_heatmaps:
        explanation = finding.explanation
        assert explanation is not None and explanation.method == "cam"
        assert explanation.side_by_side_png is not None
        side_by_side = Image.open(out / explanation.side_by_side_png)
        assert side_by_side.width > 2 * analysis.image.columns
        array = explanation.load_map(out)
        assert array.shape == tuple(explanation.array_shape)
        ratio = analysis.image.columns / analysis.image.rows
        assert array.shape[1] / array.shape[0] == pytest.approx(ratio, rel=0.02)
        assert array.dtype == np.float32 and array.min() >= 0.0 and array.max() <= 1.0
        assert (explanation.faithfulness is not None) == bool(array.max() > 0)
    assert "DEMONSTRATION" in stdout and "synthetic_disc" in stdout
    assert stdout.count("DEMONSTRATION MODEL") == 1  # the notice once, before the table
    scored = [f for f in analysis.findings if f.explanation and f.explanation.faithfulness]
    for finding in scored:  # a score that rounds to zero prints as +0.00, never "-0.00"
        assert finding.explanation is not None and finding.explanation.faithfulness is not None
        finding.explanation.faithfulness.score = -0.003
        finding.explanation.faithfulness.informative = True  # "not informative" is tested in tests/explain
    print_analysis(analysis, None)
    printed = capsys.readouterr().out
    assert "-0.00" not in printed and printed.count("faithfulness +0.00") == len(scored)
    assert "decision-support tool, not a diagnosis" in stdout
    assert not list(out.glob(".staging-*"))


def test_json_flag_prints_only_the_analysis(demo_installed: Settings, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        capsys, "analyze", _testdata("CT_small.dcm"), "--model", DEMO, "--out", out, "--json", "--force"
    )
    assert code == 0
    printed = json.loads(stdout)
    assert printed == json.loads((out / "analysis.json").read_text())
    assert printed["image"]["modality"] == "CT"
    assert printed["disclaimer"].startswith("Sahay is a decision-support tool")


def test_no_heatmaps_flag(demo_installed: Settings, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code, _, _ = run_cli(
        capsys, "analyze", _generated_png(tmp_path), "-m", DEMO, "-o", out, "--no-heatmaps", "--force"
    )
    assert code == 0
    assert not (out / "heatmaps").exists()
    assert all(f.explanation is None for f in Analysis.from_json_file(out / "analysis.json").findings)


def test_identifiers_are_kept_only_on_request(demo_installed: Settings, tmp_path: Path, capsys) -> None:
    image = _generated_chest_dicom(tmp_path)
    code, stdout, _ = run_cli(capsys, "analyze", image, "-m", DEMO, "-o", tmp_path / "a", "--json", "--force")
    assert code == 0 and json.loads(stdout)["image"]["identifiers"] is None
    assert "Doe" not in (tmp_path / "a" / "analysis.json").read_text()
    code, stdout, _ = run_cli(
        capsys, "analyze", image, "-m", DEMO, "-o", tmp_path / "b", "--json", "--keep-identifiers", "--force"
    )
    assert code == 0
    assert json.loads(stdout)["image"]["identifiers"]["PatientName"] == "Doe^Jane"
    saved = Analysis.from_json_file(tmp_path / "b" / "analysis.json")
    assert saved.image.identifiers is not None and saved.image.identifiers["PatientID"] == "12345"


def _empty(folder: Path) -> Path:
    path = folder / "empty.dcm"
    path.write_bytes(b"")
    return path


def _text_named_dcm(folder: Path) -> Path:
    path = folder / "notes.dcm"
    path.write_text("Patient is a 64 year old male with cough.\n")
    return path


def _truncated_png(folder: Path) -> Path:
    path = _generated_png(folder)
    path.write_bytes(path.read_bytes()[:300])
    return path


def _truncated_dicom(folder: Path) -> Path:
    path = _generated_chest_dicom(folder)
    path.write_bytes(path.read_bytes()[:-5000])
    return path


def _unsupported_photometric(folder: Path) -> Path:
    return write_dicom(folder / "hsv.dcm", np.zeros((8, 8), dtype=np.uint16), photometric="HSV")


BAD_INPUTS = {
    "empty": (_empty, "empty"),
    "text-named-dcm": (_text_named_dcm, "is not a DICOM, PNG, JPEG or TIFF file"),
    "truncated-png": (_truncated_png, "truncated or corrupt"),
    "truncated-dicom": (_truncated_dicom, "truncated or corrupt"),
    "no-pixel-data": (lambda folder: _testdata("rtplan.dcm"), "no pixel data"),
    "unsupported-photometric": (_unsupported_photometric, "HSV"),
    "missing-file": (lambda folder: folder / "absent.png", "does not exist"),
    "directory": (lambda folder: folder, "is not a file"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_clear_error_with_exit_2_and_nothing_written(
    case: str, demo_installed: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = BAD_INPUTS[case]
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "analyze", make(tmp_path), "--model", DEMO, "--out", out)
    assert code == 2
    assert stderr.startswith("error:") and message in stderr
    assert "Traceback" not in stderr + stdout
    assert not out.exists()


def test_limits_refuse_big_files_before_reading(
    demo_installed: Settings, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _generated_png(tmp_path)
    monkeypatch.setenv("SAHAY_MAX_PIXELS", "1000")
    reload_settings()
    code, _, stderr = run_cli(capsys, "analyze", image, "--model", DEMO, "--out", tmp_path / "out")
    assert code == 2 and "SAHAY_MAX_PIXELS" in stderr
    monkeypatch.setenv("SAHAY_MAX_FILE_MB", "0.001")
    reload_settings()
    code, _, stderr = run_cli(capsys, "analyze", image, "--model", DEMO, "--out", tmp_path / "out")
    assert code == 2 and "SAHAY_MAX_FILE_MB" in stderr
    assert not (tmp_path / "out").exists()


def test_unknown_model_is_exit_2(settings: Settings, tmp_path: Path, capsys) -> None:
    code, _, stderr = run_cli(capsys, "analyze", _generated_png(tmp_path), "--model", "no-such-model")
    assert code == 2 and "no installed model named 'no-such-model'" in stderr


def test_offline_first_run_names_the_command_that_fixes_it(
    settings: Settings, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, "analyze", _generated_chest_dicom(tmp_path), "--out", out)
    assert code == 2
    assert "sahay models import nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def test_first_chest_analysis_pulls_the_default_model(
    xrv_server: ServedFolder, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        capsys, "analyze", _generated_chest_dicom(tmp_path), "--out", out, "--json"
    )
    assert code == 0, stderr
    analysis = Analysis.model_validate_json(stdout)
    assert analysis.model.name == "xrv-densenet121-res224-all"
    assert len(analysis.findings) == 18
    assert analysis.demonstration_notice is None
    assert any("no fitted calibration" in w for w in analysis.warnings)
    assert [f for f in analysis.findings if f.explanation]
    # The second run uses the cached bundle: no new download.
    requests = len(xrv_server.requests)
    code, _, _ = run_cli(capsys, "analyze", _generated_chest_dicom(tmp_path), "--out", out, "--json")
    assert code == 0 and len(xrv_server.requests) == requests


def test_a_chest_model_refuses_a_head_ct_unless_forced(
    xrv_server: ServedFolder, tmp_path: Path, capsys
) -> None:
    ct = _testdata("CT_small.dcm")
    code, _, stderr = run_cli(
        capsys, "analyze", ct, "--model", "xrv-densenet121-res224-all", "--out", tmp_path / "o"
    )
    assert code == 2 and "its modality is CT" in stderr and "--force" in stderr
    assert not (tmp_path / "o").exists()
    code, stdout, _ = run_cli(
        capsys, "analyze", ct, "--model", "xrv-densenet121-res224-all", "--json", "--no-heatmaps", "--force"
    )
    assert code == 0
    analysis = json.loads(stdout)
    assert analysis["quality"]["forced"] is True
    assert any("modality is CT" in w for w in analysis["warnings"])


def test_models_commands(settings: Settings, demo_bundle_dir: Path, capsys) -> None:
    code, stdout, _ = run_cli(capsys, "models", "list")
    assert code == 0 and "No models installed" in stdout
    code, stdout, _ = run_cli(capsys, "models", "import", demo_bundle_dir)
    assert code == 0 and DEMO in stdout
    code, stdout, _ = run_cli(capsys, "models", "list")
    assert code == 0 and DEMO in stdout and "(demo)" in stdout
    code, stdout, _ = run_cli(capsys, "models", "info", DEMO, "--json")
    assert code == 0
    card = json.loads(stdout)
    assert card["demonstration"] is True and card["calibration"]["method"] == "temperature-scaling"
    code, stdout, _ = run_cli(capsys, "models", "info", DEMO)
    assert code == 0 and "(demonstration)" in stdout and "Intended use: Demonstration" in stdout
    assert "Calibration: temperature" in stdout and "Weights: trained by Sahay" in stdout
    code, stdout, _ = run_cli(capsys, "models", "list", "--available")
    assert code == 0 and "xrv-densenet121-res224-all" in stdout
    code, _, stderr = run_cli(capsys, "models", "info", "absent")
    assert code == 2 and "no installed model named 'absent'" in stderr
    code, _, _ = run_cli(capsys, "models", "remove", DEMO)
    assert code == 0 and not (settings.models_dir / DEMO).exists()


def test_models_pull_from_a_local_server(xrv_server: ServedFolder, capsys) -> None:
    code, stdout, stderr = run_cli(capsys, "models", "pull", "xrv-densenet121-res224-nih")
    assert code == 0, stderr
    assert "Installed xrv-densenet121-res224-nih" in stdout


def test_the_installed_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    text = _text_named_dcm(tmp_path)
    sahay = Path(sys.executable).parent / "sahay"
    result = subprocess.run([str(sahay), "analyze", str(text)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    usage = subprocess.run([str(sahay), "analyze"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


@pytest.mark.slow
def test_demo_command_trains_and_analyses_offline(settings: Settings, tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    code, stdout, stderr = run_cli(capsys, "demo", "--out", out)
    assert code == 0, stderr
    analysis = Analysis.from_json_file(out / "analysis" / "analysis.json")
    assert analysis.model.demonstration
    disc = next(f for f in analysis.findings if f.label == "synthetic_disc")
    assert disc.positive and disc.explanation is not None  # the example has a disc drawn on it
    assert "DEMONSTRATION" in stdout
    assert (settings.models_dir / DEMO / "bundle.json").is_file()


def test_a_bundle_with_bad_json_is_exit_2(settings: Settings, tmp_path: Path, capsys) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{oops")
    code, _, stderr = run_cli(capsys, "analyze", _generated_png(tmp_path), "--model", bundle)
    assert code == 2 and "not a valid bundle manifest" in stderr


def test_a_model_name_that_is_a_path_is_exit_2(settings: Settings, tmp_path: Path, capsys) -> None:
    code, _, stderr = run_cli(capsys, "models", "remove", "../../etc")
    assert code == 2 and "is not a model name" in stderr


def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHAY_MAX_PIXELS", "lots")
    from sahay.config import get_settings

    get_settings.cache_clear()  # the next call reads the bad value; reload_settings() would raise here
    code, _, stderr = run_cli(capsys, "analyze", _generated_png(tmp_path))
    assert code == 2
    assert "invalid setting SAHAY_MAX_PIXELS" in stderr and len(stderr.strip().splitlines()) == 1


def test_an_unexpected_error_is_exit_1_without_a_traceback(
    demo_installed: Settings, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sahay.imaging

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(sahay.imaging, "read_image", explode)
    code, _, stderr = run_cli(capsys, "analyze", _generated_png(tmp_path), "--model", DEMO)
    assert code == 1
    assert "internal error: RuntimeError: something nobody expected" in stderr
    assert "sahay --debug" in stderr and "Traceback" not in stderr
    with pytest.raises(RuntimeError):
        main(["--debug", "analyze", str(_generated_png(tmp_path)), "--model", DEMO])


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_dicom_text_is_not_read_as_markup(demo_installed: Settings, tmp_path: Path, capsys) -> None:
    image = write_dicom(tmp_path / "odd.dcm", np.zeros((32, 32), dtype=np.uint16) + 7, body_part="[/]")
    code, stdout, stderr = run_cli(
        capsys, "analyze", image, "--model", DEMO, "--out", tmp_path / "out", "--force"
    )
    assert code == 0, stderr
    assert "[/]" in stdout


def test_an_image_of_the_models_own_kind_is_in_domain(
    demo_installed: Settings, tmp_path: Path, capsys
) -> None:
    from sahay.services.demo import write_example_image

    example = tmp_path / "example.png"
    write_example_image(example)
    code, stdout, stderr = run_cli(capsys, "analyze", example, "--model", DEMO, "--json", "--no-heatmaps")
    assert code == 0, stderr
    quality = json.loads(stdout)["quality"]
    assert quality["in_domain"] is True and quality["checks"] == []
    assert quality["ood_score"] <= quality["ood_threshold"]
