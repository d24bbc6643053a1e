"""Shared fixtures. Every test gets its own SAHAY_HOME; nothing touches ~/.sahay or the network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sahay.config import Settings, get_settings, reload_settings
from sahay.models.bundle import Bundle, load_bundle
from sahay.models.registry import import_path
from sahay.services.demo import build_demo_bundle
from sahay.store import reset_engines
from tests.servers import ServedFolder, serve_folder


@pytest.fixture(scope="session", autouse=True)
def scratch_working_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session fixtures run before per-test ones: keep even them from writing into the checkout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("session-cwd"))
        yield


@pytest.fixture(autouse=True)
def sahay_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("sahay-home")
    # Default output folders (sahay-out/, sahay-demo/) land in a scratch folder, not the checkout.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("SAHAY_HOME", str(home))
    # A closed port: any accidental download fails fast instead of reaching the internet.
    monkeypatch.setenv("SAHAY_MODEL_MIRROR", "http://127.0.0.1:9/unreachable")
    # The export at install costs about 10 s a model; tests/models/test_onnx.py tests it switched on.
    monkeypatch.setenv("SAHAY_ONNX_ON_INSTALL", "false")
    reload_settings()
    yield home
    get_settings.cache_clear()  # the next test reads its own environment
    reset_engines()  # each test's database is its own


@pytest.fixture
def settings(sahay_home: Path) -> Settings:
    return reload_settings()


@pytest.fixture(scope="session")
def demo_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demonstration bundle trained in the test session on generated images (about 10 s)."""
    folder = tmp_path_factory.mktemp("bundles") / "sahay-demo-synthetic"
    build_demo_bundle(folder, train_images=96, val_images=48, seed=0)
    return folder


@pytest.fixture
def demo_bundle(demo_bundle_dir: Path) -> Bundle:
    return load_bundle(demo_bundle_dir)


@pytest.fixture
def demo_installed(settings: Settings, demo_bundle_dir: Path) -> Settings:
    """The demonstration bundle installed in this test's SAHAY_HOME."""
    import_path(demo_bundle_dir, settings)
    return settings


@pytest.fixture(scope="session")
def xrv_release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TorchXRayVision-format weights (a whole pickled DenseNet), named as the releases name them.

    The network is randomly initialised with a fixed seed: real plumbing, no real weights.
    """
    import torch
    import torchxrayvision as xrv

    from sahay.models.catalog import catalog

    folder = tmp_path_factory.mktemp("xrv-release")
    torch.manual_seed(0)
    network = xrv.models.DenseNet(weights=None)
    for name in ("xrv-densenet121-res224-all", "xrv-densenet121-res224-nih"):
        torch.save(network, folder / catalog()[name].filename)
    return folder


@pytest.fixture
def xrv_server(xrv_release_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedFolder]:
    """Serve the test weights on 127.0.0.1 and point SAHAY_MODEL_MIRROR at them.

    The catalogue's known sha256 of the real "all" model is replaced by the test file's, so
    that the check still runs, against the file actually served.
    """
    from sahay.fileio import sha256_file
    from sahay.models import catalog as catalog_module

    entry = catalog_module.catalog()["xrv-densenet121-res224-all"]
    test_file = xrv_release_dir / entry.filename
    monkeypatch.setitem(
        catalog_module._KNOWN_SHA256,
        "densenet121-res224-all",
        (sha256_file(test_file), test_file.stat().st_size),
    )
    with serve_folder(xrv_release_dir) as served:
        monkeypatch.setenv("SAHAY_MODEL_MIRROR", served.files_url)
        reload_settings()
        yield served
