"""Every provider builds its network, names real layers, and finds pretrained weights only locally."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torchvision

from sahay.config import Settings
from sahay.errors import ModelUnavailable
from sahay.models.providers import get_provider, known_architectures
from sahay.training.train import initial_network, train
from tests.factories import write_shapes_dataset
from tests.training.conftest import FAST


@pytest.mark.parametrize("architecture", known_architectures())
def test_providers_build_networks_with_the_named_layers(architecture: str) -> None:
    provider = get_provider(architecture)
    model = provider.build(3).eval()
    model.get_submodule(provider.cam_layer)
    head = model.get_submodule(provider.head)
    assert isinstance(head, torch.nn.Linear) and head.out_features == 3
    with torch.no_grad():
        assert model(torch.zeros(1, provider.in_channels, 64, 64)).shape == (1, 3)


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # never pick up a real hub cache
    return tmp_path / "torch"


def test_missing_torchvision_weights_name_where_to_put_them(settings: Settings, torch_home: Path) -> None:
    with pytest.raises(ModelUnavailable) as caught:
        get_provider("torchvision-resnet18").pretrained(2)  # type: ignore[misc]
    message = str(caught.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(settings.home_dir / "backbones") in message


def test_local_torchvision_weights_are_loaded_and_used_for_training(
    settings: Settings, torch_home: Path, tmp_path: Path
) -> None:
    torch.manual_seed(1)
    imagenet = torchvision.models.resnet18(weights=None)
    weights = settings.home_dir / "backbones" / "resnet18-f37072fd.pth"
    weights.parent.mkdir(parents=True)
    torch.save(imagenet.state_dict(), weights)

    model = get_provider("torchvision-resnet18").pretrained(2)  # type: ignore[misc]
    assert torch.equal(model.state_dict()["conv1.weight"], imagenet.state_dict()["conv1.weight"])
    assert model.fc.out_features == 2

    data = write_shapes_dataset(tmp_path / "data", train=12, test=4)
    result = train(
        data, tmp_path / "resnet", replace(FAST, backbone="torchvision-resnet18", epochs=1), settings=settings
    )
    assert result.bundle.manifest.architecture == "torchvision-resnet18"


def test_xrv_fine_tuning_starts_from_the_installed_chest_model(
    settings: Settings, tmp_path: Path, request
) -> None:
    with pytest.raises(ModelUnavailable, match="sahay models pull xrv-densenet121-res224-all"):
        initial_network(get_provider("xrv-densenet121"), 2, settings)
    request.getfixturevalue("xrv_server")
    from sahay.config import reload_settings
    from sahay.models.registry import pull

    source = pull("xrv-densenet121-res224-all", reload_settings()).load_model()
    model = initial_network(get_provider("xrv-densenet121"), 2, reload_settings())
    assert torch.equal(
        model.state_dict()["features.conv0.weight"], source.state_dict()["features.conv0.weight"]
    )
    assert model.get_submodule("classifier").out_features == 2
