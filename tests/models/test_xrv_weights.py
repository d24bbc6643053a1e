"""load_xrv_state_dict: release-format pickles load, everything else is refused without running."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
import torchxrayvision as xrv
from torch.nn.backends import thnn

from sahay.errors import IntegrityError, ModelUnavailable
from sahay.models.providers.xrv_weights import load_xrv_state_dict

NOT_XRV = "is not a TorchXRayVision DenseNet121 checkpoint"
MISSING = object()


@pytest.fixture(scope="module")
def model() -> xrv.models.DenseNet:
    """A DenseNet121 whose every tensor differs from its initialisation, reproducibly."""
    net = xrv.models.DenseNet(weights=None)
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
            else:
                tensor.fill_(7)  # num_batches_tracked
    return net.eval()


def _assert_same_tensors(state: dict[str, torch.Tensor], net: torch.nn.Module) -> None:
    expected = net.state_dict()
    assert list(state) == list(expected)
    for key, tensor in expected.items():
        assert state[key].dtype == tensor.dtype, key
        assert torch.equal(state[key], tensor), key


def _save(obj: Any, path: Path, *, legacy: bool = False) -> Path:
    # legacy=True writes the pre-1.6 format that the original xrv releases use.
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


@contextmanager
def _module_attribute(net: torch.nn.Module, name: str, value: Any) -> Iterator[None]:
    """Give every module of the shared ``net`` an attribute (MISSING: remove it), then restore.

    Cheaper than a deep copy of DenseNet121, which takes longer than saving and loading it.
    """
    saved = {module: module.__dict__.get(name, MISSING) for module in net.modules()}
    try:
        for module in saved:
            _set_or_delete(module, name, value)
        yield
    finally:
        for module, old in saved.items():
            _set_or_delete(module, name, old)


def _set_or_delete(module: torch.nn.Module, name: str, value: Any) -> None:
    if value is MISSING:
        module.__dict__.pop(name, None)
    else:
        module.__dict__[name] = value


class _OldBackend:
    """Pickles like the ``_backend`` attribute modules carried before PyTorch 1.4."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (thnn._get_thnn_function_backend, ())


class _CreatesMarker:
    """Unpickling this creates ``marker``: proof that the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


class _NotAModel:
    pass


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_whole_pickled_model_gives_its_exact_tensors(
    model: torch.nn.Module, tmp_path: Path, legacy: bool
) -> None:
    path = _save(model, tmp_path / "release.pt", legacy=legacy)

    _assert_same_tensors(load_xrv_state_dict(path), model)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickle_from_before_non_persistent_buffers(
    model: torch.nn.Module, tmp_path: Path, legacy: bool
) -> None:
    with _module_attribute(model, "_non_persistent_buffers_set", MISSING):
        path = _save(model, tmp_path / "old.pt", legacy=legacy)

    _assert_same_tensors(load_xrv_state_dict(path), model)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickle_with_the_old_thnn_backend_attribute(
    model: torch.nn.Module, tmp_path: Path, legacy: bool
) -> None:
    with _module_attribute(model, "_backend", _OldBackend()):
        path = _save(model, tmp_path / "old.pt", legacy=legacy)

    _assert_same_tensors(load_xrv_state_dict(path), model)


def test_plain_state_dict(model: torch.nn.Module, tmp_path: Path) -> None:
    path = _save(model.state_dict(), tmp_path / "state.pt")

    _assert_same_tensors(load_xrv_state_dict(path), model)


def test_operating_thresholds_are_dropped_and_the_result_loads_strictly(
    model: torch.nn.Module, tmp_path: Path
) -> None:
    model.register_buffer("op_threshs", torch.full((18,), 0.5))  # what xrv sets after loading a release
    try:
        path = _save(model, tmp_path / "release.pt")
    finally:
        model.register_buffer("op_threshs", None)

    state = load_xrv_state_dict(path)

    assert "op_threshs" not in state
    fresh = xrv.models.DenseNet(weights=None)
    fresh.load_state_dict(state, strict=True)
    _assert_same_tensors(state, fresh)


def test_loading_leaves_torchs_allowlist_as_it_was(model: torch.nn.Module, tmp_path: Path) -> None:
    before = set(torch.serialization.get_safe_globals())

    load_xrv_state_dict(_save(model, tmp_path / "release.pt"))

    assert set(torch.serialization.get_safe_globals()) == before


def test_the_code_execution_payload_is_live(tmp_path: Path) -> None:
    # Guards the refusal tests below: this payload really does run when unpickled normally.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_CreatesMarker(marker), protocol=2)).close()
    assert marker.exists()


@pytest.mark.parametrize("container", ["zip", "legacy", "raw-pickle"])
def test_code_in_a_pickle_is_refused_without_running(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    payload = _CreatesMarker(marker)
    if container == "raw-pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        _save(payload, path, legacy=container == "legacy")

    with pytest.raises(IntegrityError) as caught:
        load_xrv_state_dict(path)

    assert not marker.exists()
    assert str(path) in str(caught.value)
    assert NOT_XRV in str(caught.value)
    assert "open" in str(caught.value)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_pickle_of_another_class_is_refused(tmp_path: Path, legacy: bool) -> None:
    path = _save(_NotAModel(), tmp_path / "other.pt", legacy=legacy)

    with pytest.raises(IntegrityError, match=f"{NOT_XRV}.*_NotAModel"):
        load_xrv_state_dict(path)


@pytest.mark.parametrize(
    "content", [os.urandom(4096), b"", b"not a checkpoint\n", b"PK\x03\x04 truncated zip"]
)
def test_a_file_that_is_not_a_torch_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(content)

    with pytest.raises(IntegrityError, match=NOT_XRV):
        load_xrv_state_dict(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_pickled_torchvision_resnet_is_refused(tmp_path: Path, legacy: bool) -> None:
    path = _save(torchvision.models.resnet18(weights=None), tmp_path / "resnet.pt", legacy=legacy)

    with pytest.raises(IntegrityError, match=f"{NOT_XRV}.*torchvision.models.resnet.ResNet"):
        load_xrv_state_dict(path)


def test_a_resnet_state_dict_is_refused(tmp_path: Path) -> None:
    path = _save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet.pt")

    with pytest.raises(IntegrityError, match=f"{NOT_XRV}.*missing"):
        load_xrv_state_dict(path)


def test_a_densenet_with_other_shapes_is_refused(tmp_path: Path) -> None:
    path = _save(xrv.models.DenseNet(weights=None, num_classes=14), tmp_path / "fourteen.pt")

    with pytest.raises(
        IntegrityError, match=r"classifier.weight has shape \(14, 1024\), expected \(18, 1024\)"
    ):
        load_xrv_state_dict(path)


@pytest.mark.parametrize(
    "obj",
    [[1, 2, 3], {"weights": "not a tensor"}, {1: torch.zeros(1)}],
    ids=["list", "dict-of-str", "int-keys"],
)
def test_other_torch_files_are_refused(tmp_path: Path, obj: Any) -> None:
    path = _save(obj, tmp_path / "other.pt")

    with pytest.raises(IntegrityError, match=NOT_XRV):
        load_xrv_state_dict(path)


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)

    with pytest.raises(IntegrityError, match=NOT_XRV):
        load_xrv_state_dict(path)


def test_a_missing_file_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"absent\.pt"):
        load_xrv_state_dict(tmp_path / "absent.pt")
