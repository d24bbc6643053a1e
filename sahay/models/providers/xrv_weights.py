"""Read TorchXRayVision DenseNet121 weights files without running code from them.

TorchXRayVision releases its weights as whole pickled models (``torch.save(model)``), which
``xrv`` itself opens with a full, arbitrary-code unpickler. Here the pickle may only name the
handful of classes such a model is made of, so a tampered or mistaken file is refused before
any of its code could run, and what comes out is a plain state dict.

Two file formats exist. Zip files (``torch.save`` since PyTorch 1.6) are read with
``torch.load(weights_only=True)`` and those classes allowed. The older format, which PyTorch
< 1.6 wrote and the original releases most likely use (xrv patches them for pytorch#42242, a
1.5-to-1.6 break), stores every module class as a persistent id that torch's weights-only
unpickler refuses outright; it is read by torch's legacy loader through an unpickler that
allows the same classes and nothing else.
"""

from __future__ import annotations

import pickle
import re
import tarfile
import threading
import warnings
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import torch
import torchxrayvision as xrv
from torch import nn
from torch.nn.backends import thnn
from torch.serialization import SourceChangeWarning
from torchxrayvision.models import DenseNet, _DenseBlock, _DenseLayer, _Transition

from sahay.errors import IntegrityError, ModelUnavailable

# Everything a pickled xrv DenseNet names beyond what torch's weights-only unpickler allows by
# default (OrderedDict, set, storages, torch._utils._rebuild_tensor_v2/_rebuild_parameter).
XRV_DENSENET_SAFE_GLOBALS: list[Any] = [
    DenseNet,
    _DenseBlock,
    _DenseLayer,
    _Transition,
    nn.Sequential,
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.Linear,
    # Modules pickled by early PyTorch 1.x carry a ``_backend`` that unpickles through this
    # no-op, which torch keeps for exactly that purpose.
    thnn._get_thnn_function_backend,
]

# The same list plus torch's defaults, by pickled name, for the legacy-format unpickler.
_LEGACY_ALLOWED_GLOBALS: dict[str, Any] = {
    f"{obj.__module__}.{obj.__qualname__}": obj
    for obj in [
        *XRV_DENSENET_SAFE_GLOBALS,
        OrderedDict,
        set,
        torch._utils._rebuild_tensor_v2,
        torch._utils._rebuild_parameter,
    ]
}

_ZIP_MAGIC = b"PK\x03\x04"

# Outputs' operating thresholds are kept in the bundle, not in the weights.
_DROPPED_KEYS = ("op_threshs",)

# torch's safe_globals() edits a process-wide allowlist; one load at a time keeps it consistent.
_LOAD_LOCK = threading.Lock()


def load_xrv_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read an xrv DenseNet checkpoint safely and return a plain state dict.

    ``path`` holds either a whole pickled ``torchxrayvision.models.DenseNet`` (the release
    format, zip or legacy) or a plain state dict. The result loads with ``strict=True`` into
    ``torchxrayvision.models.DenseNet(weights=None)``; the ``op_threshs`` buffer is dropped.
    Raises ``IntegrityError`` for anything else: not a torch file, a pickle that needs other
    classes or functions, or weights of another architecture or shape; ``ModelUnavailable`` when
    the file cannot be read at all.
    """
    loaded = _load_restricted(path)
    state = _state_dict_of(path, loaded)
    for key in _DROPPED_KEYS:
        state.pop(key, None)
    _check_fits_densenet121(path, state)
    return state


def _not_xrv(path: Path, reason: str) -> IntegrityError:
    return IntegrityError(f"{path} is not a TorchXRayVision DenseNet121 checkpoint: {reason}")


def _load_restricted(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            is_zip = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    except OSError as exc:
        raise ModelUnavailable(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    try:
        with _LOAD_LOCK, warnings.catch_warnings():
            # Legacy files embed their classes' source; a mismatch is expected and irrelevant here.
            warnings.simplefilter("ignore", SourceChangeWarning)
            # A TorchScript archive is refused below; torch's note that it looks like one is noise.
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
            return _load_zip(path) if is_zip else _load_legacy(path)
    except Exception as exc:  # torch raises many types for a file that is not what it should be
        raise _not_xrv(path, _short_reason(exc)) from None


def _load_zip(path: Path) -> Any:
    with torch.serialization.safe_globals(XRV_DENSENET_SAFE_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True)


def _load_legacy(path: Path) -> Any:
    if tarfile.is_tarfile(path):
        # torch would unpack this pre-1.0 format into a temporary folder; no release uses it.
        raise _UnsupportedFormat("it is in PyTorch's pre-1.0 tar format, which Sahay does not read")
    # torch's weights-only unpickler cannot read this format at all. weights_only=False here
    # only selects torch's legacy reader; every global the pickle names still goes through
    # _RestrictedUnpickler.find_class, which allows the same classes as _load_zip.
    return torch.load(path, map_location="cpu", pickle_module=_RestrictedPickle, weights_only=False)


class _UnsupportedFormat(Exception):
    """A torch file format refused on purpose; its message is the whole reason."""


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals an xrv DenseNet pickle needs."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 era pickles say __builtin__ where Python 3 says builtins.
        module = "builtins" if module == "__builtin__" else module
        allowed = _LEGACY_ALLOWED_GLOBALS.get(f"{module}.{name}")
        if allowed is None:
            raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name} is not allowed")
        return allowed


class _RestrictedPickle:
    """Stands in for the ``pickle`` module in ``torch.load(pickle_module=...)``."""

    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(file: IO[bytes], **kwargs: Any) -> Any:
        return _RestrictedUnpickler(file, **kwargs).load()


def _short_reason(exc: Exception) -> str:
    """A short reason from torch's often page-long errors: the refused global, or a first sentence."""
    text = str(exc)
    if isinstance(exc, _UnsupportedFormat):
        return text
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return f"it needs {refused.group(1)}, which is not allowed in a weights file"
    if "Weights only load failed" in text:
        detail = re.search(r"WeightsUnpickler error: (.+)", text)
        return detail.group(1).strip() if detail else "its pickle uses constructs a weights file should not"
    first_sentence = re.split(r"(?<=\.)\s|\n", text.strip(), maxsplit=1)[0] if text.strip() else ""
    return f"not a readable torch file ({first_sentence or type(exc).__name__})"


def _state_dict_of(path: Path, loaded: Any) -> dict[str, torch.Tensor]:
    if type(loaded) is DenseNet:
        return _module_state_dict(path, loaded)
    if isinstance(loaded, dict):
        return _plain_state_dict(path, loaded)
    raise _not_xrv(path, f"it holds a {type(loaded).__name__}, not a DenseNet or a state dict")


def _module_state_dict(path: Path, model: DenseNet) -> dict[str, torch.Tensor]:
    try:
        for module in model.modules():
            # Modules pickled before PyTorch 1.6 lack this attribute (pytorch/pytorch#42242).
            if not hasattr(module, "_non_persistent_buffers_set"):
                module._non_persistent_buffers_set = set()
        return dict(model.state_dict())
    except Exception as exc:  # a malformed module pickle
        raise _not_xrv(path, f"its model cannot be read ({type(exc).__name__}: {exc})") from None


def _plain_state_dict(path: Path, loaded: dict[Any, Any]) -> dict[str, torch.Tensor]:
    if not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()):
        raise _not_xrv(path, "it is a dict, but not one of names to tensors")
    return {key: value.detach() for key, value in loaded.items()}


@lru_cache(maxsize=1)
def _densenet121_shapes() -> dict[str, torch.Size]:
    # On the meta device the reference costs no memory and no weight initialisation.
    with torch.device("meta"):
        reference = xrv.models.DenseNet(weights=None)
    return {key: value.shape for key, value in reference.state_dict().items()}


def _check_fits_densenet121(path: Path, state: dict[str, torch.Tensor]) -> None:
    expected = _densenet121_shapes()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise _not_xrv(path, _key_mismatch(missing, unexpected, len(expected)))
    for key, shape in expected.items():
        if state[key].shape != shape:
            raise _not_xrv(path, f"{key} has shape {tuple(state[key].shape)}, expected {tuple(shape)}")


def _key_mismatch(missing: list[str], unexpected: list[str], expected_count: int) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {expected_count} tensors are missing (first: {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} tensors are not DenseNet121's (first: {unexpected[0]})")
    return "; ".join(parts)
