"""What runs a bundle's network: ONNX Runtime (torch-free) or torch, with the same four outputs.

``SAHAY_RUNTIME`` chooses: ``onnx``, ``torch``, or ``auto`` (the default): ONNX Runtime when it is
installed and the bundle has an ONNX export of its current weights (``sahay models export-onnx``),
torch otherwise. Both take a (N, C, H, W) float32 NumPy batch and return ``NetworkOutput``
(see ``sahay.models.network`` for what each output is). Nothing here imports torch at module level.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from sahay.errors import ModelUnavailable
from sahay.models.bundle import Bundle

if TYPE_CHECKING:
    from torch import nn

Runtime = Literal["torch", "onnx"]
RUNTIME_CHOICES = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class NetworkOutput:
    logits: np.ndarray
    feature_map: np.ndarray
    features: np.ndarray
    class_maps: np.ndarray


class Engine(Protocol):
    runtime: Runtime

    def run(self, batch: np.ndarray) -> NetworkOutput: ...


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_export_installed() -> bool:
    """Both halves of ``sahay models export-onnx``: onnx writes the file, ONNX Runtime checks it."""
    return onnxruntime_installed() and importlib.util.find_spec("onnx") is not None


def choose_runtime(bundle: Bundle, requested: str) -> Runtime:
    """The runtime ``requested`` (auto, torch, onnx) means for this bundle; a forced one that cannot
    run is refused with what to do."""
    if requested not in RUNTIME_CHOICES:
        raise ModelUnavailable(
            f"unknown runtime {requested!r}; SAHAY_RUNTIME is one of {', '.join(RUNTIME_CHOICES)}"
        )
    if requested == "torch":
        return "torch"
    usable = bundle.onnx_path is not None and onnxruntime_installed()
    if requested == "onnx" and not usable:
        why = (
            "ONNX Runtime is not installed (pip install 'sahay[onnx]')"
            if not onnxruntime_installed()
            else f"it has no ONNX export of its weights (run `sahay models export-onnx {bundle.name}`)"
        )
        raise ModelUnavailable(
            f"SAHAY_RUNTIME=onnx, but model {bundle.name} cannot run on ONNX Runtime: {why}."
        )
    return "onnx" if usable else "torch"


def open_engine(bundle: Bundle, runtime: Runtime, device: str = "cpu", threads: int | None = None) -> Engine:
    if runtime == "onnx":
        return OnnxEngine(bundle, threads)
    return TorchEngine(bundle, device)


class OnnxEngine:
    runtime: Runtime = "onnx"

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = bundle.verify_onnx()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        if threads:  # ONNX Runtime ignores OMP_NUM_THREADS: a Ray actor's CPU share is set here
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> NetworkOutput:
        values = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        named = dict(zip(self.output_names, values, strict=True))
        return NetworkOutput(**{name: np.asarray(named[name]) for name in NetworkOutput.__dataclass_fields__})


class TorchEngine:
    runtime: Runtime = "torch"

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        import torch

        from sahay.models.network import OnePassNetwork
        from sahay.models.providers import get_provider

        self.device = torch.device(device)
        self.model: nn.Module = bundle.load_model().to(self.device)
        self.network = OnePassNetwork(self.model, get_provider(bundle.manifest.architecture)).eval()

    def run(self, batch: np.ndarray) -> NetworkOutput:
        import torch

        with torch.no_grad():
            outputs = self.network(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        logits, feature_map, features, class_maps = (o.float().cpu().numpy() for o in outputs)
        return NetworkOutput(logits, feature_map, features, class_maps)
