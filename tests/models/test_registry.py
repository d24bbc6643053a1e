"""Pull, import and model choice, against a local HTTP server serving xrv-format test weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchxrayvision as xrv

from sahay.config import Settings, reload_settings
from sahay.errors import BadInput, IntegrityError, ModelUnavailable
from sahay.fileio import sha256_file
from sahay.models import catalog as catalog_module
from sahay.models.catalog import catalog
from sahay.models.predictor import Predictor
from sahay.models.registry import import_path, installed, pull, remove, resolve
from tests.factories import image_info
from tests.servers import ServedFolder

NIH = "xrv-densenet121-res224-nih"
ALL = "xrv-densenet121-res224-all"


def _models_dir_entries(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.models_dir.iterdir()) if settings.models_dir.exists() else []


def test_pull_converts_the_release_file_and_keeps_the_trained_outputs(
    xrv_server: ServedFolder, xrv_release_dir: Path
) -> None:
    settings = reload_settings()
    progress: list[tuple[int, int | None]] = []
    bundle = pull(NIH, settings, progress=lambda done, total: progress.append((done, total)))

    entry = catalog()[NIH]
    source = xrv_release_dir / entry.filename
    assert bundle.path == settings.models_dir / NIH
    assert bundle.manifest.weights.source_sha256 == sha256_file(source)
    # NIH weights were trained for 14 of xrv's 18 outputs; the bundle keeps exactly those.
    assert bundle.manifest.labels == [label for label in xrv.models.model_urls["nih"]["labels"] if label]
    assert bundle.manifest.thresholds["Atelectasis"] == pytest.approx(
        xrv.models.model_urls["nih"]["op_threshs"][0]
    )
    assert progress[-1][0] == source.stat().st_size
    assert any(path.endswith(entry.filename) for path in xrv_server.requests)

    original = torch.load(source, weights_only=False).eval()
    x = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        expected = original(x)[:, entry.kept_outputs]
        got = Predictor(bundle).model(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert _models_dir_entries(settings) == [NIH]


def test_pull_checks_the_known_sha256(xrv_server: ServedFolder, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = reload_settings()
    assert pull(ALL, settings).manifest.labels == xrv.models.model_urls["all"]["labels"]
    remove(ALL, settings)

    size = catalog_module._KNOWN_SHA256["densenet121-res224-all"][1]
    monkeypatch.setitem(catalog_module._KNOWN_SHA256, "densenet121-res224-all", ("ab" * 32, size))
    with pytest.raises(IntegrityError, match="sha256"):
        pull(ALL, settings)
    assert _models_dir_entries(settings) == []


def test_pull_without_network_names_the_import_command(settings: Settings) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        pull(ALL, settings)
    message = caught.value.for_door("cli")
    assert f"sahay models import {catalog()[ALL].filename}" in message
    assert "sahay demo" in message
    assert _models_dir_entries(settings) == []


def test_unknown_model_name_is_model_unavailable(settings: Settings) -> None:
    with pytest.raises(ModelUnavailable, match="no model named 'nope'"):
        pull("nope", settings)
    with pytest.raises(ModelUnavailable, match="no installed model named 'nope'"):
        resolve("nope", None, settings)


def test_import_of_a_weights_file_fetched_elsewhere(
    settings: Settings, xrv_release_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloaded = tmp_path / catalog()[NIH].filename
    shutil.copy(xrv_release_dir / downloaded.name, downloaded)
    bundle = import_path(downloaded, settings)
    assert bundle.name == NIH
    assert len(bundle.manifest.labels) == 14
    with pytest.raises(BadInput, match="already installed"):
        import_path(downloaded, settings)
    assert import_path(downloaded, settings, force=True).name == NIH


def test_import_refuses_a_file_whose_sha256_differs_from_the_known_one(
    settings: Settings, xrv_release_dir: Path, tmp_path: Path
) -> None:
    # The real "all" release has a known sha256; the test weights do not match it.
    downloaded = tmp_path / catalog()[ALL].filename
    shutil.copy(xrv_release_dir / downloaded.name, downloaded)
    with pytest.raises(IntegrityError, match="Download it again"):
        import_path(downloaded, settings)


def test_import_refuses_unknown_files(settings: Settings, tmp_path: Path) -> None:
    unknown = tmp_path / "mystery.pt"
    unknown.write_bytes(b"not weights")
    with pytest.raises(BadInput, match="neither a bundle folder nor a known weights file"):
        import_path(unknown, settings)
    with pytest.raises(BadInput, match="does not exist"):
        import_path(tmp_path / "absent.pt", settings)


def test_import_of_a_bundle_folder_copies_it(settings: Settings, demo_bundle_dir: Path) -> None:
    bundle = import_path(demo_bundle_dir, settings)
    assert bundle.path == settings.models_dir / "sahay-demo-synthetic"
    assert sha256_file(bundle.weights_path) == bundle.manifest.weights.sha256
    assert [b.name for b in installed(settings)] == ["sahay-demo-synthetic"]


def test_the_default_chest_model_is_pulled_on_first_use(xrv_server: ServedFolder) -> None:
    settings = reload_settings()
    bundle, notes = resolve(None, image_info(modality="CR", body_part="CHEST"), settings)
    assert bundle.name == ALL and notes == []
    bundle, notes = resolve(None, image_info(format="png"), settings)  # no metadata: assumed chest
    assert bundle.name == ALL
    assert "taken to be a chest radiograph" in notes[0]


def test_auto_pull_can_be_turned_off(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHAY_AUTO_PULL", "false")
    with pytest.raises(ModelUnavailable, match="no installed model fits this image") as caught:
        resolve(None, image_info(modality="DX"), reload_settings())
    # The message suits every door; each door's advice is its own hint.
    assert "sahay" not in str(caught.value) and "--" not in str(caught.value)
    assert f"sahay models pull {ALL}" in caught.value.for_door("cli")
    assert "docs/models.md" in caught.value.for_door("api")


def test_an_image_without_modality_gets_an_installed_chest_model_rather_than_a_download(
    settings: Settings, demo_bundle_dir: Path
) -> None:
    # Offline, with a chest radiograph model installed under another name than the default: a PNG
    # must be analysed with it, not fail on a download of the default model.
    import_path(demo_bundle_dir, settings)
    demo = installed(settings)[0]
    chest = demo.manifest.model_copy(
        update={
            "name": "site-chest",
            "modalities": ["DX", "CR"],
            "body_part": "CHEST",
            "demonstration": False,
        }
    )
    from sahay.models.bundle import save_bundle

    save_bundle(settings.models_dir / "site-chest", chest, demo.load_model().state_dict())
    bundle, notes = resolve(None, image_info(format="png"), settings)
    assert bundle.name == "site-chest"
    assert "model site-chest was chosen" in notes[0]


@pytest.mark.parametrize(("modality", "body_part"), [("CT", None), ("MR", "BRAIN"), ("CR", "CSPINE")])
def test_no_model_for_other_images_is_a_clear_error(
    settings: Settings, modality: str, body_part: str | None
) -> None:
    with pytest.raises(ModelUnavailable, match=f"no installed model is made for {modality}"):
        resolve(None, image_info(modality=modality, body_part=body_part), settings)


def test_an_installed_model_for_the_modality_is_chosen_and_demos_never_are(
    settings: Settings, demo_bundle_dir: Path
) -> None:
    import_path(demo_bundle_dir, settings)
    with pytest.raises(ModelUnavailable):  # the demonstration model is never picked by itself
        resolve(None, image_info(modality="CT"), settings)
    demo = installed(settings)[0]
    ct_manifest = demo.manifest.model_copy(
        update={"ood": None, "name": "ct-model", "modalities": ["CT"], "demonstration": False}
    )
    from sahay.models.bundle import save_bundle

    save_bundle(settings.models_dir / "ct-model", ct_manifest, demo.load_model().state_dict())
    bundle, _ = resolve(None, image_info(modality="CT"), settings)
    assert bundle.name == "ct-model"
    assert resolve(str(demo_bundle_dir), None, settings)[0].path == demo_bundle_dir
    with pytest.raises(ModelUnavailable, match=r"has no bundle\.json"):
        resolve(str(settings.home_dir), None, settings)


def test_removed_models_are_gone(settings: Settings, demo_bundle_dir: Path) -> None:
    import_path(demo_bundle_dir, settings)
    remove("sahay-demo-synthetic", settings)
    assert installed(settings) == []
    with pytest.raises(ModelUnavailable):
        remove("sahay-demo-synthetic", settings)


def test_predictions_from_a_pulled_model_on_a_real_cr(xrv_server: ServedFolder) -> None:
    from pydicom.data import get_testdata_file

    from sahay.imaging import read_image

    settings = reload_settings()
    image = read_image(get_testdata_file("dicomdirtests/77654033/CR1/6154", download=False))
    bundle, _ = resolve(ALL, image.info, settings)
    (prediction,) = Predictor(bundle).predict([image.pixels])
    assert [f.label for f in prediction.findings] == xrv.models.model_urls["all"]["labels"]
    assert all(0.0 <= f.probability <= 1.0 for f in prediction.findings)
    assert np.isfinite([f.probability for f in prediction.findings]).all()


@pytest.mark.parametrize("name", ["../outside", "/tmp/x", "a/b", ".hidden"])
def test_model_names_are_never_paths(settings: Settings, tmp_path: Path, name: str) -> None:
    victim = tmp_path / "outside"
    victim.mkdir()
    (victim / "bundle.json").write_text("{}")
    with pytest.raises(BadInput, match="is not a model name"):
        remove(name, settings)
    assert victim.exists()


def test_a_broken_bundle_is_reported_and_does_not_hide_the_others(
    settings: Settings, demo_bundle_dir: Path
) -> None:
    from sahay.models.registry import scan

    import_path(demo_bundle_dir, settings)
    broken_folder = settings.models_dir / "broken"
    broken_folder.mkdir()
    (broken_folder / "bundle.json").write_bytes(b"\xff not json")
    bundles, problems = scan(settings)
    assert [b.name for b in bundles] == ["sahay-demo-synthetic"]
    assert list(problems) == [broken_folder] and "not a valid bundle manifest" in problems[broken_folder]
