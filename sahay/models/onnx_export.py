"""Export a bundle's network to ONNX for ONNX Runtime, optionally quantized to int8.

The exported graph is ``sahay.models.network.OnePassNetwork``: one input (N, C, size, size) and four
outputs (logits, feature map, pooled features, class activation maps), the batch size left free.
The file is written next to ``bundle.json`` and recorded in it (``onnx``), the manifest last and
both atomically, so a failed export leaves the bundle as it was.

Before it is recorded, the export is checked against torch on generated inputs: the probabilities
must agree within ``PARITY_TOLERANCE`` (fp32). An int8 export (ONNX Runtime's static quantization,
QDQ, per channel, calibrated on those inputs) is measured instead, and its change is recorded.

Example:
    >>> bundle = export_onnx(load_bundle("~/.sahay/models/my-model"))      # doctest: +SKIP
    >>> bundle.manifest.onnx.file                                          # doctest: +SKIP
    'model.onnx'
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sahay.errors import IntegrityError, ModelUnavailable
from sahay.fileio import sha256_file
from sahay.models.bundle import Bundle, Int8Accuracy, OnnxSpec, with_manifest
from sahay.models.preprocess import preprocess_array

ONNX_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"
OPSET = 17
PARITY_TOLERANCE = 1e-4
"""Largest probability difference accepted between the fp32 export and torch."""
CHECK_IMAGES = 16
SEED = 0


def generated_images(count: int, side: int, seed: int = SEED) -> list[np.ndarray]:
    """Smooth random greyscale images in [0, 1] (blobs the size of anatomy), as a model's inputs."""
    import cv2

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = rng.random((8, 8)).astype(np.float32)
        smooth = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)
        noisy = smooth + rng.normal(0.0, 0.05, (side, side)).astype(np.float32)
        images.append(np.clip(noisy, 0.0, 1.0))
    return images


def export_onnx(
    bundle: Bundle,
    *,
    int8: bool = False,
    images: list[np.ndarray] | None = None,
    labels: np.ndarray | None = None,
    measured_on: str | None = None,
) -> Bundle:
    """Export, check and record the ONNX file; return the bundle with its new manifest.

    ``images`` (each in [0, 1]) are the check and calibration inputs, and ``labels`` (N, K) of 0/1
    their truth, when the caller has validation data; otherwise ``CHECK_IMAGES`` generated images.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ModelUnavailable(
            "exporting to ONNX needs ONNX Runtime and onnx: pip install 'sahay[onnx]'"
        ) from None
    import onnx
    import torch

    from sahay.models.network import INPUT_NAME, OUTPUT_NAMES, OnePassNetwork
    from sahay.models.providers import get_provider

    manifest = bundle.manifest
    spec = manifest.input
    if images is None:
        images = generated_images(CHECK_IMAGES, spec.size)
        measured_on = f"{CHECK_IMAGES} generated images (smooth random greyscale; no labels)"
    batch = np.stack([preprocess_array(pixels, spec)[0] for pixels in images])
    network = OnePassNetwork(bundle.load_model(), get_provider(manifest.architecture)).eval()
    with torch.no_grad():
        reference = np.asarray(manifest.probabilities(network(torch.from_numpy(batch))[0].numpy()))

    with tempfile.TemporaryDirectory(dir=bundle.path, prefix=".onnx-") as tmp:
        fp32_path = Path(tmp) / ONNX_NAME
        torch.onnx.export(
            network,
            (torch.from_numpy(batch[:1]),),
            str(fp32_path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            opset_version=OPSET,
            dynamo=False,
        )
        onnx.checker.check_model(str(fp32_path))
        exported = _onnx_probabilities(bundle, fp32_path, batch)
        difference = float(np.abs(exported - reference).max())
        if difference > PARITY_TOLERANCE:
            raise IntegrityError(
                f"the ONNX export of {manifest.name} differs from torch by {difference:.2e} in probability "
                f"(tolerance {PARITY_TOLERANCE:g}); it was not recorded. Report this with the model's name."
            )
        chosen, accuracy = fp32_path, None
        if int8:
            chosen = Path(tmp) / INT8_NAME
            _quantize(fp32_path, chosen, batch)
            quantized = _onnx_probabilities(bundle, chosen, batch)
            accuracy = _accuracy_change(reference, quantized, labels, measured_on or "the given images")
        final = bundle.path / chosen.name
        chosen.replace(final)  # same folder, so an atomic rename; the manifest that names it comes last
    record = OnnxSpec(
        file=final.name,
        sha256=sha256_file(final),
        weights_sha256=manifest.weights.sha256,
        precision="int8" if int8 else "fp32",
        opset=OPSET,
        exported_with=f"torch {torch.__version__}, onnx {onnx.__version__}",
        int8=accuracy,
    )
    previous = manifest.onnx.file if manifest.onnx else None
    updated = with_manifest(bundle, manifest.model_copy(update={"onnx": record}))
    if previous and previous != final.name:
        (bundle.path / previous).unlink(missing_ok=True)  # the manifest no longer names it
    return updated


def _onnx_probabilities(bundle: Bundle, path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {session.get_inputs()[0].name: batch})[0]
    return np.asarray(bundle.manifest.probabilities(np.asarray(logits)))


def _quantize(source: Path, target: Path, batch: np.ndarray) -> None:
    """ONNX Runtime's static int8 quantization (QDQ, per-channel weights), calibrated on ``batch``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows: Iterator[dict[str, np.ndarray]] = iter({"input": row[None]} for row in batch)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rows, None)

    prepared = source.with_name("prepared.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def _accuracy_change(
    fp32: np.ndarray, int8: np.ndarray, labels: np.ndarray | None, measured_on: str
) -> Int8Accuracy:
    difference = np.abs(int8 - fp32)
    auroc_fp32 = auroc_int8 = None
    if labels is not None:
        auroc_fp32, auroc_int8 = _macro_auroc(labels, fp32), _macro_auroc(labels, int8)
    return Int8Accuracy(
        measured_on=measured_on,
        images=int(fp32.shape[0]),
        max_abs_probability_difference=float(difference.max()),
        mean_abs_probability_difference=float(difference.mean()),
        macro_auroc_fp32=auroc_fp32,
        macro_auroc_int8=auroc_int8,
    )


def _macro_auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    values = [
        roc_auc_score(labels[known, k], scores[known, k])
        for k in range(labels.shape[1])
        if len(set((known := ~np.isnan(labels[:, k])).nonzero()[0])) and len(np.unique(labels[known, k])) == 2
    ]
    return float(np.mean(values)) if values else None
