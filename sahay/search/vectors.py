"""Vector search over Qdrant: embedded (a folder under SAHAY_HOME) by default, a server when configured.

One collection holds one vector space: vectors made by one model (name and version) for one
purpose. Callers name collections with ``collection_name``, which puts the space in the name,
so vectors of different models are never compared.

Example:
    >>> index = VectorIndex.in_memory()
    >>> index.ensure("demo", 2)
    >>> index.upsert("demo", ["0" * 32], np.array([[1.0, 0.0]]), [{"modality": "CR"}])
    >>> [round(hit.score, 3) for hit in index.search("demo", np.array([1.0, 0.0]), limit=1)]
    [1.0]
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from sahay.config import Settings, get_settings
from sahay.errors import BadInput, ModelUnavailable

_INSTALL_HINT = "install the search extra: pip install 'sahay[search]'"


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    """Cosine similarity, in [-1, 1]."""
    payload: dict[str, Any]


def collection_name(purpose: str, space: str) -> str:
    """A collection name that carries its vector space, e.g. ``cases-image-xrv-densenet121-all-1``.

    >>> collection_name("cases-image", "sahay-demo-synthetic@1")
    'cases-image-sahay-demo-synthetic-1'
    """
    return f"{purpose}-{re.sub(r'[^a-z0-9]+', '-', space.lower()).strip('-')}"


class VectorIndex:
    def __init__(self, client: Any, description: str, embedded: bool = True) -> None:
        self.client = client
        self.description = description
        self.embedded = embedded
        """True for embedded (local-mode) Qdrant, which scores every vector of a collection exactly."""

    @classmethod
    def open(cls, settings: Settings | None = None) -> VectorIndex:
        """The configured index: ``SAHAY_QDRANT_URL``'s server, or embedded Qdrant in SAHAY_HOME/qdrant."""
        settings = settings or get_settings()
        QdrantClient = _client_class()
        if settings.qdrant_url:
            try:
                client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=10)
                client.get_collections()
            except Exception as exc:  # connection and HTTP errors come in many types
                raise BadInput(
                    f"cannot reach the Qdrant server at SAHAY_QDRANT_URL={settings.qdrant_url} "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            return cls(client, f"Qdrant server {settings.qdrant_url}", embedded=False)
        folder = settings.home_dir / "qdrant"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(folder))
        except RuntimeError as exc:  # embedded Qdrant allows one process per folder
            raise BadInput(
                f"the embedded vector index {folder} is in use by another Sahay process ({exc}); "
                "wait for it, or run a Qdrant server and set SAHAY_QDRANT_URL"
            ) from exc
        return cls(client, f"embedded Qdrant {folder}")

    @classmethod
    def in_memory(cls) -> VectorIndex:
        """A throw-away index (evaluation, tests)."""
        return cls(_client_class()(":memory:"), "in-memory Qdrant")

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def ensure(self, collection: str, dimension: int) -> None:
        """Create ``collection`` for cosine search over ``dimension``-long vectors, if it is missing."""
        from qdrant_client import models

        if self.client.collection_exists(collection):
            size = self.client.get_collection(collection).config.params.vectors.size
            if size != dimension:
                raise BadInput(
                    f"vector collection {collection} holds {size}-dimensional vectors, not {dimension}"
                )
            return
        self.client.create_collection(
            collection, vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE)
        )

    def exists(self, collection: str) -> bool:
        return bool(self.client.collection_exists(collection))

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[Mapping[str, Any]],
        batch_size: int = 256,
    ) -> None:
        from qdrant_client import models

        for start in range(0, len(ids), batch_size):
            points = [
                models.PointStruct(id=_point_id(i), vector=v.astype(np.float32).tolist(), payload=dict(p))
                for i, v, p in zip(
                    ids[start : start + batch_size],
                    vectors[start : start + batch_size],
                    payloads[start : start + batch_size],
                    strict=True,
                )
            ]
            self.client.upsert(collection, points=points, wait=True)

    def search(
        self,
        collection: str,
        vector: np.ndarray,
        limit: int,
        where: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[Hit]:
        """The ``limit`` nearest points by cosine similarity whose payload matches ``where`` exactly."""
        from qdrant_client import models

        if not self.exists(collection):
            return []
        must: list[Any] = [
            models.FieldCondition(key=key, match=models.MatchValue(value=value))
            for key, value in (where or {}).items()
        ]
        must_not: list[Any] = (
            [models.HasIdCondition(has_id=[_point_id(i) for i in exclude])] if exclude else []
        )
        response = self.client.query_points(
            collection,
            query=vector.astype(np.float32).tolist(),
            limit=limit,
            query_filter=models.Filter(must=must, must_not=must_not) if must or must_not else None,
            with_payload=True,
        )
        return [Hit(uuid.UUID(str(p.id)).hex, float(p.score), dict(p.payload or {})) for p in response.points]

    def vectors(self, collection: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by id; ids not in the collection are left out."""
        if not ids or not self.exists(collection):
            return {}
        records = self.client.retrieve(collection, ids=[_point_id(i) for i in ids], with_vectors=True)
        return {uuid.UUID(str(r.id)).hex: np.asarray(r.vector, dtype=np.float32) for r in records}

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        from qdrant_client import models

        if ids and self.exists(collection):
            selector = models.PointIdsList(points=[_point_id(i) for i in ids])
            self.client.delete(collection, points_selector=selector, wait=True)

    def count(self, collection: str) -> int:
        return int(self.client.count(collection).count) if self.exists(collection) else 0

    def collections(self, prefix: str = "") -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections if c.name.startswith(prefix))


class UsesVectorIndex:
    """Opens the configured vector index on first use and closes it with its owner (``with``)."""

    settings: Settings
    _index: VectorIndex | None = None

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = VectorIndex.open(self.settings)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _point_id(hex_id: str) -> str:
    """Qdrant ids are UUIDs; Sahay's ids are 32-character uuid4 hex strings."""
    try:
        return str(uuid.UUID(hex=hex_id))
    except ValueError as exc:
        raise BadInput(f"{hex_id!r} is not a Sahay id (32 hexadecimal characters)") from exc


def _client_class() -> Any:
    try:
        from qdrant_client import QdrantClient
    except ImportError as exc:
        raise ModelUnavailable(f"qdrant-client is not installed; {_INSTALL_HINT}") from exc
    return QdrantClient
