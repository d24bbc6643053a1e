from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sahay.errors import BadInput, IntegrityError, ModelUnavailable
from sahay.models.bundle import MANIFEST_NAME, Bundle, load_bundle, save_bundle


def test_saved_bundle_round_trips_and_records_the_weights_sha256(demo_bundle: Bundle, tmp_path: Path) -> None:
    model = demo_bundle.load_model()
    copy = save_bundle(tmp_path / "copy", demo_bundle.manifest, model.state_dict())
    reloaded = load_bundle(copy.path)
    assert reloaded.manifest == copy.manifest
    import hashlib

    assert reloaded.manifest.weights.sha256 == hashlib.sha256(reloaded.weights_path.read_bytes()).hexdigest()
    again = reloaded.load_model()
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[key]), key


def test_tampered_weights_are_refused(demo_bundle_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    shutil.copytree(demo_bundle_dir, folder)
    weights = folder / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        load_bundle(folder).load_model()


def test_weights_that_do_not_fit_the_architecture_are_refused(demo_bundle_dir: Path, tmp_path: Path) -> None:
    bundle = load_bundle(demo_bundle_dir)
    wrong = save_bundle(tmp_path / "wrong", bundle.manifest, {"not_a_layer": torch.zeros(3)})
    with pytest.raises(IntegrityError, match="does not fit"):
        wrong.load_model()


def _write_manifest(folder: Path, demo_bundle_dir: Path, **changes: object) -> None:
    shutil.copytree(demo_bundle_dir, folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest.update(changes)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"thresholds": {"synthetic_disc": 0.5}}, "thresholds must cover exactly the labels"),
        ({"thresholds": {"synthetic_disc": 0.5, "synthetic_stripes": 1.5}}, "thresholds must lie in"),
        ({"task": "segmentation"}, "task"),
        ({"labels": []}, "labels"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_manifest_names_the_problem(
    demo_bundle_dir: Path, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    folder = tmp_path / "bad"
    _write_manifest(folder, demo_bundle_dir, **changes)
    with pytest.raises(BadInput, match=message):
        load_bundle(folder)


def test_manifest_that_is_not_json_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(BadInput, match=r"bundle\.json"):
        load_bundle(tmp_path)


def test_newer_bundle_format_asks_for_an_upgrade(demo_bundle_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "future"
    _write_manifest(folder, demo_bundle_dir, format_version=99)
    with pytest.raises(BadInput, match="Upgrade Sahay"):
        load_bundle(folder)


def test_folder_without_manifest_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"no bundle\.json"):
        load_bundle(tmp_path)


@pytest.mark.parametrize("weights_file", ["/tmp/elsewhere.pt", "../outside.pt", "sub/weights.pt"])
def test_weights_file_must_stay_inside_the_bundle(
    demo_bundle_dir: Path, tmp_path: Path, weights_file: str
) -> None:
    folder = tmp_path / "escape"
    shutil.copytree(demo_bundle_dir, folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["weights"]["file"] = weights_file
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match=r"weights\.file"):
        load_bundle(folder)


def test_channels_must_match_the_architecture(demo_bundle_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "grey"
    shutil.copytree(demo_bundle_dir, folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["input"].update(channels=1, mean=None, std=None)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="takes 3-channel input"):
        load_bundle(folder)


def test_a_manifest_that_is_not_utf8_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_bytes(b'{"name": "\xff\xfe"}')
    with pytest.raises(BadInput, match="not a valid bundle manifest"):
        load_bundle(tmp_path)
