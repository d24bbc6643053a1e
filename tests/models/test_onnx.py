"""ONNX export and ONNX Runtime: parity with torch, the manifest record, the runtime choice, int8,
and analyses that never import torch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom.data import get_testdata_file

from sahay.config import Settings
from sahay.errors import ModelUnavailable
from sahay.models.bundle import MANIFEST_NAME, Bundle, load_bundle, save_bundle
from sahay.models.catalog import catalog
from sahay.models.network import OnePassNetwork
from sahay.models.onnx_export import PARITY_TOLERANCE, export_onnx, generated_images
from sahay.models.predictor import Predictor, logits_and_features
from sahay.models.providers import get_provider
from sahay.models.providers.xrv_weights import load_xrv_state_dict

CR = get_testdata_file("dicomdirtests/77654033/CR1/6154", download=False)
NIH = "xrv-densenet121-res224-nih"


@pytest.fixture(scope="module")
def xrv_onnx(xrv_release_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TorchXRayVision's DenseNet121 (random weights) as a bundle, exported to ONNX once."""
    entry = catalog()[NIH]
    folder = tmp_path_factory.mktemp("xrv-onnx") / NIH
    state = entry.convert(load_xrv_state_dict(xrv_release_dir / entry.filename))
    export_onnx(save_bundle(folder, entry.manifest(source_sha256="0" * 64), state))
    return folder


@pytest.fixture(scope="module")
def demo_onnx(demo_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo-onnx") / "demo"
    shutil.copytree(demo_bundle_dir, folder)
    export_onnx(load_bundle(folder))
    return folder


def _images(side: int) -> list[np.ndarray]:
    from sahay.imaging import read_image

    return [*generated_images(3, side, seed=1), read_image(CR).pixels]


@pytest.mark.parametrize("bundle_fixture", ["xrv_onnx", "demo_onnx"])
def test_onnx_runtime_matches_torch_within_1e_4(bundle_fixture: str, request: pytest.FixtureRequest) -> None:
    bundle = load_bundle(request.getfixturevalue(bundle_fixture))
    images = _images(bundle.manifest.input.size + 40)
    on_torch = Predictor(bundle, runtime="torch").predict(images)
    on_onnx = Predictor(bundle, runtime="onnx").predict(images)
    for a, b in zip(on_torch, on_onnx, strict=True):
        torch_p = np.array([f.probability for f in a.findings])
        onnx_p = np.array([f.probability for f in b.findings])
        assert np.abs(torch_p - onnx_p).max() <= PARITY_TOLERANCE
        assert [f.positive for f in a.findings] == [f.positive for f in b.findings]
        np.testing.assert_allclose(b.features, a.features, rtol=1e-3, atol=1e-4)
        assert a.class_maps is not None and b.class_maps is not None
        np.testing.assert_allclose(b.class_maps, a.class_maps, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("architecture", ["xrv-densenet121", "efficientnet-lite0", "torchvision-resnet18"])
def test_one_pass_network_gives_the_model_s_own_logits_and_features(architecture: str) -> None:
    provider = get_provider(architecture)
    torch.manual_seed(0)
    model = provider.build(5).eval()
    batch = torch.randn(2, provider.in_channels, 224, 224) * (500.0 if provider.in_channels == 1 else 1.0)
    logits, feature_map, features, class_maps = OnePassNetwork(model, provider).eval()(batch)
    expected_logits, expected_features = logits_and_features(model, provider.cam_layer, batch)
    assert torch.allclose(logits, expected_logits, rtol=1e-4, atol=1e-4)
    # The out-of-domain references were fitted on these features: they must not change.
    assert torch.allclose(features, expected_features, rtol=1e-4, atol=1e-5)
    # The class maps average to the logits less the bias: CAM of a GAP-plus-linear head.
    bias = model.get_submodule(provider.head).bias
    assert torch.allclose(class_maps.mean(dim=(2, 3)) + bias, logits, rtol=1e-4, atol=1e-4)
    assert feature_map.shape[0] == 2 and class_maps.shape[1] == 5


def test_export_is_recorded_and_leaves_the_rest_of_the_bundle_alone(
    demo_bundle_dir: Path, demo_onnx: Path
) -> None:
    before = json.loads((demo_bundle_dir / MANIFEST_NAME).read_text())
    after = json.loads((demo_onnx / MANIFEST_NAME).read_text())
    record = after.pop("onnx")
    assert before.get("onnx") is None and {k: v for k, v in before.items() if k != "onnx"} == after
    bundle = load_bundle(demo_onnx)
    assert record["precision"] == "fp32" and record["weights_sha256"] == bundle.manifest.weights.sha256
    assert (demo_onnx / record["file"]).is_file() and record["file"] in bundle.files()
    assert not [p.name for p in demo_onnx.iterdir() if p.name.startswith(".onnx-")]  # no staging left


def test_auto_runtime_prefers_onnx_and_the_setting_forces_torch(
    demo_onnx: Path, demo_bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sahay.config import reload_settings

    assert Predictor(load_bundle(demo_onnx)).runtime == "onnx"
    assert Predictor(demo_bundle).runtime == "torch"  # no export: torch
    monkeypatch.setenv("SAHAY_RUNTIME", "torch")
    reload_settings()
    assert Predictor(load_bundle(demo_onnx)).runtime == "torch"
    with pytest.raises(ModelUnavailable, match="export-onnx"):
        Predictor(demo_bundle, runtime="onnx")


def test_an_installed_model_is_exported_and_runs_torch_free_from_its_first_analysis(
    xrv_release_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sahay.config import reload_settings
    from sahay.models.registry import import_path

    weights = xrv_release_dir / catalog()[NIH].filename
    monkeypatch.setenv("SAHAY_ONNX_ON_INSTALL", "true")  # the default; conftest turns it off for speed
    settings = reload_settings()
    bundle = import_path(weights, settings)
    assert bundle.onnx_path is not None and bundle.verify_onnx().is_file()
    assert Predictor(bundle).runtime == "onnx"
    assert not [p for p in settings.models_dir.iterdir() if p.name.startswith(".")]  # no staging left
    out = tmp_path / "out"
    stdout, stderr = _sahay(
        ["analyze", str(CR), "--model", NIH, "--out", str(out), "--force"], settings.home_dir
    )
    assert ("EXIT None" in stdout or "EXIT 0" in stdout) and "'torch'" not in stdout, stderr

    monkeypatch.setenv("SAHAY_ONNX_ON_INSTALL", "false")
    assert import_path(weights, reload_settings(), force=True).onnx_path is None


def test_a_failed_export_at_install_leaves_the_model_installed_on_torch(
    demo_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The export at install is an optimisation: torch's exporter failing on an unusual network
    (any exception, not only Sahay's own) must not fail the import."""
    from sahay.config import reload_settings
    from sahay.models import onnx_export
    from sahay.models.registry import import_path

    def exporter_fails(bundle: Bundle, **_: object) -> Bundle:
        raise RuntimeError("Exporting the operator 'aten::unsupported' to ONNX opset 17 is not supported")

    monkeypatch.setattr(onnx_export, "export_onnx", exporter_fails)
    monkeypatch.setenv("SAHAY_ONNX_ON_INSTALL", "true")
    bundle = import_path(demo_bundle_dir, reload_settings())
    assert bundle.onnx_path is None
    assert Predictor(bundle).runtime == "torch"
    assert "runs on torch: its ONNX export failed" in caplog.text and "aten::unsupported" in caplog.text


def test_a_thread_cap_reaches_onnx_runtime_and_changes_no_probability(demo_onnx: Path) -> None:
    from sahay.models.runtimes import OnnxEngine

    bundle = load_bundle(demo_onnx)
    capped = Predictor(bundle, threads=1)
    assert isinstance(capped.engine, OnnxEngine)
    assert capped.engine.session.get_session_options().intra_op_num_threads == 1
    images = _images(bundle.manifest.input.size)
    for a, b in zip(capped.predict(images), Predictor(bundle).predict(images), strict=True):
        assert [f.probability for f in a.findings] == pytest.approx(
            [f.probability for f in b.findings], abs=1e-6
        )


def test_an_export_of_other_weights_is_not_used(demo_onnx: Path, tmp_path: Path) -> None:
    bundle = load_bundle(demo_onnx)
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in bundle.load_model().state_dict().items()}
    manifest = bundle.manifest.model_copy(update={"ood": None})  # only the weights and the export matter
    retrained = save_bundle(tmp_path / "retrained", manifest, state)
    shutil.copy(demo_onnx / "model.onnx", tmp_path / "retrained" / "model.onnx")
    assert retrained.onnx_path is None
    assert Predictor(retrained).runtime == "torch"


def test_int8_export_records_its_measured_accuracy_change(demo_onnx: Path, tmp_path: Path) -> None:
    folder = tmp_path / "int8"
    shutil.copytree(demo_onnx, folder)
    bundle = export_onnx(load_bundle(folder), int8=True)
    spec = bundle.manifest.onnx
    assert spec is not None and spec.precision == "int8" and spec.int8 is not None
    assert not (folder / "model.onnx").exists()  # the manifest names one file; the old one is gone
    images = _images(224)
    fp32 = [[f.probability for f in p.findings] for p in Predictor(bundle, runtime="torch").predict(images)]
    int8 = [[f.probability for f in p.findings] for p in Predictor(bundle, runtime="onnx").predict(images)]
    measured = float(np.abs(np.array(fp32) - np.array(int8)).max())
    assert 0.0 < spec.int8.max_abs_probability_difference < 0.2
    assert measured < 0.2


_WATCH = """
import sys
from sahay.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    print("EXIT", exc.code)
print("LOADED", sorted(m for m in ("torch", "pytorch_grad_cam", "pydicom", "numpy") if m in sys.modules))
"""


def _sahay(args: list[str], home: Path) -> tuple[str, str]:
    env = {**os.environ, "SAHAY_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", _WATCH, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return done.stdout, done.stderr


def test_an_onnx_analysis_never_imports_torch(xrv_onnx: Path, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stdout, stderr = _sahay(
        ["analyze", str(CR), "--model", str(xrv_onnx), "--out", str(out), "--force"], settings.home_dir
    )
    assert "EXIT None" in stdout or "EXIT 0" in stdout, stderr
    assert "'torch'" not in stdout and "pytorch_grad_cam" not in stdout
    analysis = json.loads((out / "analysis.json").read_text())
    explained = [f["explanation"] for f in analysis["findings"] if f.get("explanation")]
    assert explained and all(e["method"] == "cam" for e in explained)


@pytest.mark.parametrize("content", [None, b"plain text, not an image\n"])
def test_a_missing_or_non_image_file_fails_before_anything_heavy_loads(
    content: bytes | None, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "scan.dcm"
    if content is not None:
        path.write_bytes(content)
    stdout, stderr = _sahay(["analyze", str(path)], settings.home_dir)
    assert "EXIT 2" in stdout
    assert ("does not exist" if content is None else "is not a DICOM, PNG, JPEG or TIFF file") in stderr
    assert "torch" not in stdout and "pydicom" not in stdout


def test_an_onnx_batch_never_imports_torch(xrv_onnx: Path, settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "films"
    folder.mkdir()
    shutil.copy(CR, folder / "cr.dcm")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    results = tmp_path / "results.csv"
    stdout, stderr = _sahay(
        ["batch", str(folder), "--out", str(results), "--model", str(xrv_onnx), "--force"], settings.home_dir
    )
    assert "EXIT None" in stdout or "EXIT 0" in stdout, stderr
    assert "'torch'" not in stdout and "pytorch_grad_cam" not in stdout
    rows = results.read_text().splitlines()
    assert len(rows) == 3  # the header, the film, and the broken file as a row with its error


_FORK_WHILE_A_WORKER_HOLDS_A_MODEL = """
import subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sahay.models.bundle import load_bundle
from sahay.models.predictor import PredictorCache
from sahay.models.runtimes import OnnxEngine

bundle = load_bundle(sys.argv[1])
size = bundle.manifest.input.size
cache = PredictorCache()
worker = ThreadPoolExecutor(1)  # as the web service's inference pool: the thread outlives the call


def classify() -> bool:
    predictor = cache(bundle)
    predictor.predict([np.full((size, size), 0.5, np.float32)] * 2)
    return isinstance(predictor.engine, OnnxEngine)


assert worker.submit(classify).result()
time.sleep(1)  # ONNX Runtime's pool threads go to sleep on their condition variable
subprocess.run(["true"], preexec_fn=lambda: None, check=True)  # Python runs in the child, as under Ray
"""


def test_a_fork_that_runs_python_never_frees_a_worker_s_cached_onnx_model(demo_onnx: Path) -> None:
    """A fork's child drops the other threads' state; a model held there would be freed and hang."""
    command = [sys.executable, "-c", _FORK_WHILE_A_WORKER_HOLDS_A_MODEL, str(demo_onnx)]
    process = subprocess.Popen(command, start_new_session=True)
    try:
        assert process.wait(timeout=120) == 0
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the hung fork too: it shares the group
        process.wait()
        pytest.fail("the forked child hung freeing an ONNX Runtime session")
