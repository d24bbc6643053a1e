"""The knowledge index: chunks of every article and user document, searchable two ways.

* **BM25** (bm25s, English stop words, Snowball stemming) over the chunks' words;
* **dense**: all-MiniLM-L6-v2 embeddings (``sahay.search.embeddings``: ONNX Runtime, or
  sentence-transformers as the fallback), searched exactly by a matrix product; with a Qdrant
  server (``SAHAY_QDRANT_URL``) also stored there, in collection ``knowledge-<model>``, and searched there.

``KnowledgeBase.search`` fuses the two rankings by reciprocal rank (Cormack et al., 2009):
``score = sum(1 / (60 + rank))``. Chunks are about 120 words with 30 words of overlap, cut
within a section so that each keeps its heading.

The index is built once (``sahay kb build``; the first search builds it when nothing has) into
``$SAHAY_HOME/knowledge/index-<key>/``, where the key is a hash of everything the index is made
from: the curated corpus's files, the user's documents, the code under ``sahay/knowledge``, Sahay's
version and the embedding model's fingerprint. Opening an index whose key matches reads its files
(articles, chunks, vectors, the BM25 index) and loads no model until a query needs embedding.
Building again is incremental: a document is chunked and embedded again only when its content hash
changes (or the model's fingerprint does). The user's documents live in ``$SAHAY_HOME/knowledge/user``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from sahay.about import __version__
from sahay.config import Settings, get_settings
from sahay.errors import BadInput
from sahay.fileio import atomic_write_text
from sahay.knowledge.corpus import Article, ArticleSource, builtin_articles, parse_article
from sahay.knowledge.corpus import sentences as prose_sentences
from sahay.progress import Progress, report
from sahay.search.vectors import UsesVectorIndex, VectorIndex, collection_name

if TYPE_CHECKING:
    from sahay.search.embeddings import TextEmbedder

CHUNK_WORDS = 120
OVERLAP_WORDS = 30
RRF_K = 60
POOL = 50
SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".pdf")
EMBED_BATCH = 64
KNOWLEDGE_CODE = Path(__file__).parent
"""The corpus and the code that chunks it: every file here is part of the index key."""
_NAMESPACE = uuid.UUID("5d8f3b5e-4c39-4a8e-9d5e-0f6f6c1f2a10")


@dataclass(frozen=True)
class Chunk:
    id: str
    document: str
    title: str
    section: str
    text: str
    audience: str

    def to_json(self) -> dict[str, str]:
        return dict(vars(self))


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its document's citation details."""

    chunk: Chunk
    score: float
    bm25_rank: int | None
    dense_rank: int | None
    sources: list[ArticleSource]
    path: str
    dense_similarity: float | None = None
    """Cosine similarity of the chunk's embedding to the query's, when the dense search found it."""

    def cited_sources(self) -> list[ArticleSource]:
        """The sources the chunk's own markers cite, or all of its document's when it cites none."""
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", self.chunk.text)}
        cited = [s for s in self.sources if s.id in numbers]
        return cited or self.sources


@dataclass(frozen=True)
class DocumentInfo:
    id: str
    title: str
    path: str
    builtin: bool
    chunks: int
    sha256: str


def chunk_article(article: Article) -> list[Chunk]:
    """Section-aware chunks of whole sentences: about ``CHUNK_WORDS`` words, the next chunk starting
    with the last sentences (at least ``OVERLAP_WORDS`` words) of the one before."""
    chunks: list[Chunk] = []
    for section, text in _sections(article.body):
        sentences = [_as_sentence(s) for s in prose_sentences(text)]
        start = 0
        while start < len(sentences):
            end, words = start, 0
            while end < len(sentences) and (words < CHUNK_WORDS or end == start):
                words += len(sentences[end].split())
                end += 1
            piece = " ".join(sentences[start:end])
            chunk_id = uuid.uuid5(_NAMESPACE, f"{article.id}/{len(chunks)}/{piece}").hex
            chunks.append(Chunk(chunk_id, article.id, article.title, section, piece, article.audience))
            if end >= len(sentences):
                break
            back, overlap = end, 0
            while back > start + 1 and overlap < OVERLAP_WORDS:
                back -= 1
                overlap += len(sentences[back].split())
            start = back
    return chunks


def _sections(body: str) -> list[tuple[str, str]]:
    """(heading, markdown text) of each ``##`` section; text before the first heading has heading ''."""
    sections: list[tuple[str, str]] = []
    heading = ""
    lines: list[str] = []
    for line in [*body.splitlines(), "## "]:
        if line.startswith("## "):
            if "\n".join(lines).strip():
                sections.append((heading, "\n".join(lines)))
            heading, lines = line[3:].strip(), []
        elif not line.startswith("# "):
            lines.append(line)
    return sections


def _as_sentence(text: str) -> str:
    """A list item reads as a sentence of its own in a chunk."""
    if re.search(r"[.!?](\s*\[\d+\])*$", text.rstrip()):
        return text
    return text.rstrip() + "."


CHUNKING = f"sentences-{CHUNK_WORDS}-{OVERLAP_WORDS}"
"""Part of every document's hash: changing how documents are cut re-indexes them all."""


def document_hash(article: Article) -> str:
    return hashlib.sha256(f"{CHUNKING}\n{article.model_dump_json()}".encode()).hexdigest()


INDEX_FORMAT = 2
"""Part of the index key: changing what an index folder holds builds every index again."""


class KnowledgeBase(UsesVectorIndex):
    """The curated corpus plus the user's documents, kept indexed under ``$SAHAY_HOME/knowledge``."""

    def __init__(
        self,
        settings: Settings | None = None,
        index: VectorIndex | None = None,
        embedder: TextEmbedder | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.folder = self.settings.home_dir / "knowledge"
        self._index = index
        self._on_server = not index.embedded if index is not None else bool(self.settings.qdrant_url)
        """Vectors also live in a Qdrant server, which answers the dense search."""
        self._embedder = embedder
        self._lock = threading.Lock()
        self._articles: dict[str, Article] = {}
        self._chunks: list[Chunk] = []
        self._by_id: dict[str, Chunk] = {}
        self._documents: dict[str, dict[str, Any]] = {}
        self._bm25: Any = None
        self._matrix: np.ndarray = np.zeros((0, 0), dtype=np.float32)
        """The chunks' unit vectors, one row per chunk of ``_chunks``."""
        self._ready = False
        self.last_sync: dict[str, int] = {}

    def embedder(self) -> TextEmbedder:
        if self._embedder is not None:
            return self._embedder
        from sahay.search.embeddings import text_embedder  # loaded once per process, on first use

        return text_embedder(self.settings)

    def _model(self) -> tuple[str, str]:
        """The embedding model's name and fingerprint, without loading it."""
        if self._embedder is not None:
            return self._embedder.name, self._embedder.fingerprint
        from sahay.search.embeddings import model_identity

        identity = model_identity(self.settings)
        return identity.name, identity.fingerprint

    @property
    def collection(self) -> str:
        return collection_name("knowledge", self._model()[0])

    # Documents ----------------------------------------------------------------------------

    def add(self, paths: Sequence[Path]) -> list[DocumentInfo]:
        """Add the user's documents (markdown, text, PDF); a changed file replaces its earlier version."""
        if not paths:
            raise BadInput("give one or more files to add")
        prepared = [_read_user_document(Path(p)) for p in paths]  # every file is checked before any is stored
        user = self.folder / "user"
        user.mkdir(parents=True, exist_ok=True)
        for article in prepared:
            for old in user.glob("*.md"):
                if (
                    parse_article(old.read_text(encoding="utf-8"), old.name, builtin=False).path
                    == article.path
                ):
                    old.unlink()
            atomic_write_text(user / f"{article.id}.md", _to_markdown(article))
        self.refresh()
        added = {a.id for a in prepared}
        return [d for d in self.documents() if d.id in added]

    def remove(self, document_id: str) -> None:
        target = self.folder / "user" / f"{document_id}.md"
        if not re.fullmatch(r"[a-z0-9-]+", document_id) or not target.is_file():
            raise BadInput(
                f"no user document {document_id!r}; `sahay kb list` shows them (built-in articles stay)"
            )
        target.unlink()
        self.refresh()

    def documents(self) -> list[DocumentInfo]:
        self.ensure()
        return [
            DocumentInfo(doc_id, info["title"], info["path"], info["builtin"], info["chunks"], info["sha256"])
            for doc_id, info in sorted(self._documents.items())
        ]

    def article(self, document_id: str) -> Article:
        self.ensure()
        return self._articles[document_id]

    # Indexing -----------------------------------------------------------------------------

    def is_built(self) -> bool:
        """Whether an index of the current documents and model is on disk (opening it is quick)."""
        return (self._index_folder() / "manifest.json").is_file()

    def ensure(self, progress: Progress | None = None) -> None:
        """Open the index on first use in this process, building it (incrementally) if it is out of date."""
        with self._lock:
            if not self._ready:
                self._open_or_build(progress)

    def refresh(self, progress: Progress | None = None) -> None:
        """Check the index against the documents again (after documents were added or removed)."""
        with self._lock:
            self._open_or_build(progress)

    def build(self, progress: Progress | None = None) -> dict[str, int]:
        """What ``sahay kb build`` does: export the embedding model to ONNX (once), then bring the
        index up to date. Returns ``last_sync``: documents, chunks, and how many were embedded."""
        if self._embedder is None:
            from sahay.search.embeddings import export_onnx

            report(progress, "exporting the text embedding model to ONNX (once)")
            export_onnx(self.settings)
        self.refresh(progress)
        return self.last_sync

    def _open_or_build(self, progress: Progress | None) -> None:
        folder = self._index_folder()
        if not self._open(folder):
            with _build_lock(self.folder):
                if not self._open(folder):  # another process may have built it meanwhile
                    self._build(folder, progress)
        self._ready = True

    def _index_folder(self) -> Path:
        name, fingerprint = self._model()
        digest = hashlib.sha256(
            f"{INDEX_FORMAT}\n{CHUNKING}\n{__version__}\n{name}\n{fingerprint}\n".encode()
        )
        for root, label in ((KNOWLEDGE_CODE, "code"), (self.folder / "user", "user")):
            for path in sorted(root.rglob("*")) if root.is_dir() else []:
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(f"{label}/{path.relative_to(root)}\n".encode())
                    digest.update(path.read_bytes())
        return self.folder / f"index-{digest.hexdigest()[:24]}"

    def _open(self, folder: Path) -> bool:
        """Read a built index; False when it is missing or damaged (it is then built again)."""
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            articles = [
                Article.model_validate(a)
                for a in json.loads((folder / "articles.json").read_text(encoding="utf-8"))
            ]
            chunks = _read_chunks(folder / "chunks.jsonl")
            matrix = np.load(folder / "vectors.npy")
            documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
            bm25 = _load_bm25(folder / "bm25", chunks)
        except (OSError, ValueError, TypeError, KeyError):
            return False
        if manifest.get("chunks") != len(chunks) or matrix.shape[0] != len(chunks):
            return False
        self._install(articles, chunks, matrix, documents, bm25)
        self.last_sync = {"documents": len(articles), "chunks": len(chunks), "embedded": 0, "removed": 0}
        return True

    def _build(self, folder: Path, progress: Progress | None) -> None:
        articles = {a.id: a for a in [*builtin_articles(), *self._user_articles()]}
        name, fingerprint = self._model()
        previous, old_vectors, old_documents = self._previous_index(fingerprint)
        changed = {
            a.id for a in articles.values() if old_documents.get(a.id, {}).get("sha256") != document_hash(a)
        }
        kept = [c for c in previous if c.document in articles and c.document not in changed]
        fresh = [
            chunk
            for article in articles.values()
            if article.id in changed
            for chunk in chunk_article(article)
        ]
        stale = [c.id for c in previous if c.document not in articles or c.document in changed]
        if fresh and self._embedder is None:
            from sahay.search.embeddings import export_onnx

            report(progress, "preparing the text embedding model (once)")
            export_onnx(self.settings)  # a build embeds anyway: later queries then start fast
        embedder = self.embedder() if fresh or not kept else None
        dimension = embedder.dimension if embedder else next(iter(old_vectors.values())).shape[0]
        texts = [f"{c.title}. {c.section}. {c.text}" for c in fresh]
        new_vectors = np.zeros((0, dimension), dtype=np.float32)
        if fresh:
            assert embedder is not None
            batches = []
            for start in range(0, len(texts), EMBED_BATCH):
                report(progress, "embedding the knowledge base", start, len(texts), unit="passages")
                batches.append(embedder.embed(texts[start : start + EMBED_BATCH]))
            new_vectors = np.concatenate(batches).astype(np.float32)
        if self._on_server:
            collection = collection_name("knowledge", name)
            self.index.ensure(collection, dimension)
            self.index.delete(collection, stale)
            self.index.upsert(
                collection, [c.id for c in fresh], new_vectors, [{"document": c.document} for c in fresh]
            )
        chunks = kept + fresh
        matrix = np.concatenate(
            [np.stack([old_vectors[c.id] for c in kept]).astype(np.float32), new_vectors]
            if kept
            else [new_vectors]
        )
        matrix /= np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)
        counts: dict[str, int] = {}
        for chunk in chunks:
            counts[chunk.document] = counts.get(chunk.document, 0) + 1
        documents = {
            a.id: {
                "title": a.title,
                "path": a.path,
                "builtin": a.builtin,
                "sha256": document_hash(a),
                "chunks": counts.get(a.id, 0),
            }
            for a in articles.values()
        }
        bm25 = _bm25_index(chunks)
        self._write(folder, list(articles.values()), chunks, matrix, documents, bm25, (name, fingerprint))
        self._install(list(articles.values()), chunks, matrix, documents, bm25)
        self.last_sync = {
            "documents": len(articles),
            "chunks": len(chunks),
            "embedded": len(fresh),
            "removed": len(stale),
        }

    def _previous_index(
        self, fingerprint: str
    ) -> tuple[list[Chunk], dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """The newest earlier index made with the same model: its chunks, vectors by chunk id, and
        documents (nothing when there is none, so every document is embedded)."""
        earlier = sorted(
            self.folder.glob("index-*/manifest.json"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for manifest_path in earlier:
            folder = manifest_path.parent
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                if manifest.get("model", {}).get("fingerprint") != fingerprint:
                    continue
                chunks = _read_chunks(folder / "chunks.jsonl")
                matrix = np.load(folder / "vectors.npy")
                documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
            except (OSError, ValueError, TypeError, KeyError):
                continue
            if matrix.shape[0] == len(chunks):
                return chunks, {c.id: matrix[row] for row, c in enumerate(chunks)}, documents
        return [], {}, {}

    def _write(
        self,
        folder: Path,
        articles: list[Article],
        chunks: list[Chunk],
        matrix: np.ndarray,
        documents: dict[str, dict[str, Any]],
        bm25: Any,
        model: tuple[str, str],
    ) -> None:
        """Write the index into a scratch folder and rename it into place: whole or absent."""
        self.folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=self.folder))
        try:
            (scratch / "articles.json").write_text(
                json.dumps([a.model_dump(mode="json") for a in articles]), encoding="utf-8"
            )
            (scratch / "chunks.jsonl").write_text(
                "".join(json.dumps(c.to_json()) + "\n" for c in chunks), encoding="utf-8"
            )
            np.save(scratch / "vectors.npy", matrix.astype(np.float32))
            (scratch / "documents.json").write_text(json.dumps(documents, indent=2) + "\n", encoding="utf-8")
            if chunks:
                bm25.save(str(scratch / "bm25"))
            manifest = {
                "format": INDEX_FORMAT,
                "sahay": __version__,
                "chunking": CHUNKING,
                "model": {"name": model[0], "fingerprint": model[1], "dimension": int(matrix.shape[1])},
                "chunks": len(chunks),
                "documents": len(articles),
            }
            (scratch / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)
            scratch.rename(folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for old in self.folder.glob("index-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
        for legacy in ("documents.json", "chunks.jsonl"):  # format 1 kept its state here
            (self.folder / legacy).unlink(missing_ok=True)

    def _install(
        self,
        articles: list[Article],
        chunks: list[Chunk],
        matrix: np.ndarray,
        documents: dict[str, dict[str, Any]],
        bm25: Any,
    ) -> None:
        self._articles = {a.id: a for a in articles}
        self._chunks, self._by_id = chunks, {c.id: c for c in chunks}
        self._matrix, self._documents, self._bm25 = matrix, documents, bm25

    def _dense(self, vector: np.ndarray) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest ``POOL`` chunks, best first."""
        if self._on_server:
            return [(hit.id, hit.score) for hit in self.index.search(self.collection, vector, POOL)]
        if not len(self._chunks):
            return []
        scores = self._matrix @ vector
        top = np.argpartition(-scores, min(POOL, len(scores)) - 1)[:POOL]
        top = top[np.argsort(-scores[top])]
        return [(self._chunks[int(i)].id, float(scores[i])) for i in top]

    def _user_articles(self) -> list[Article]:
        folder = self.folder / "user"
        return [
            parse_article(f.read_text(encoding="utf-8"), f.name, builtin=False)
            for f in sorted(folder.glob("*.md"))
        ]

    def articles_for_finding(self, label: str) -> list[Article]:
        """Curated articles that explain a model label (front matter ``findings``), finding articles first."""
        self.ensure()
        wanted = label.lower()
        found = [a for a in self._articles.values() if wanted in {f.lower() for f in a.findings}]
        return sorted(found, key=lambda a: (not a.path.startswith("findings/"), a.id))

    def document_passages(self, document_id: str) -> list[Passage]:
        """Every chunk of one document, in order, as passages."""
        self.ensure()
        article = self._articles.get(document_id)
        if article is None:
            return []
        return [
            Passage(chunk, 0.0, None, None, article.sources, article.path)
            for chunk in self._chunks
            if chunk.document == document_id
        ]

    def section_passages(self, document_id: str, section: str) -> list[Passage]:
        """The chunks of one section of a document (case-insensitive heading match), as passages."""
        return [p for p in self.document_passages(document_id) if p.chunk.section.lower() == section.lower()]

    # Searching ----------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, audience: str | None = None) -> list[Passage]:
        """The ``k`` best passages for ``query`` by reciprocal-rank fusion of BM25 and dense ranks."""
        if not query.strip():
            raise BadInput("the search query is empty")
        if k < 1:
            raise BadInput(f"k must be at least 1, got {k}")
        self.ensure()
        import bm25s

        bm25_ranks: dict[str, int] = {}
        if self._chunks:
            tokens = bm25s.tokenize([query], stopwords="en", stemmer=_stemmer(), show_progress=False)
            if tokens.vocab:
                pool = min(POOL, len(self._chunks))
                found, scores = self._bm25.retrieve(tokens, k=pool, show_progress=False)
                for rank, (position, score) in enumerate(zip(found[0], scores[0], strict=True), start=1):
                    if score > 0:
                        bm25_ranks[self._chunks[int(position)].id] = rank
        nearest = self._dense(self.embedder().embed([query])[0])
        dense_ranks = {chunk_id: rank for rank, (chunk_id, _) in enumerate(nearest, start=1)}
        similarity = dict(nearest)
        by_id = self._by_id
        fused: dict[str, float] = {}
        for ranks in (bm25_ranks, dense_ranks):
            for chunk_id, rank in ranks.items():
                if chunk_id in by_id:
                    fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
        ordered = sorted(fused, key=lambda c: fused[c], reverse=True)
        passages = []
        for chunk_id in ordered:
            chunk = by_id[chunk_id]
            if audience and chunk.audience not in (audience, "both"):
                continue
            article = self._articles[chunk.document]
            passages.append(
                Passage(
                    chunk,
                    fused[chunk_id],
                    bm25_ranks.get(chunk_id),
                    dense_ranks.get(chunk_id),
                    article.sources,
                    article.path,
                    similarity.get(chunk_id),
                )
            )
            if len(passages) == k:
                break
        return passages


def _bm25_index(chunks: list[Chunk]) -> Any:
    import bm25s

    retriever = bm25s.BM25()
    if chunks:
        corpus = [f"{c.title} {c.section} {c.text}" for c in chunks]
        retriever.index(
            bm25s.tokenize(corpus, stopwords="en", stemmer=_stemmer(), show_progress=False),
            show_progress=False,
        )
    return retriever


def _load_bm25(folder: Path, chunks: list[Chunk]) -> Any:
    if not chunks:
        return _bm25_index(chunks)
    import bm25s

    return bm25s.BM25.load(str(folder))


def _read_chunks(path: Path) -> list[Chunk]:
    return [Chunk(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """One process builds at a time (the server and a CLI command may start together)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".build.lock").open("a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: builds write to scratch folders and rename, still whole
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def _read_user_document(path: Path) -> Article:
    if not path.is_file():
        raise BadInput(f"{path} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise BadInput(f"{path} is not a supported document; give {', '.join(SUPPORTED_SUFFIXES)} files")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    doc_id = f"user-{re.sub(r'[^a-z0-9]+', '-', path.stem.lower()).strip('-') or 'document'}-{digest[:8]}"
    if suffix == ".pdf":
        body, title = _pdf_text(path, data), path.stem
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        if text.startswith("---"):
            parsed = parse_article(text, path.name, builtin=False)
            body, title = parsed.body, parsed.title
        else:
            body = text
            heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
            title = heading.group(1).strip() if heading else path.stem
    if not body.strip():
        raise BadInput(f"{path} holds no text to index (a scanned PDF needs OCR first)")
    source = ArticleSource(id=1, title=title, publisher="user document", url=f"file:{path.name}")
    return Article(
        id=doc_id, title=title, audience="both", sources=[source], body=body, path=path.name, builtin=False
    )


def _pdf_text(path: Path, data: bytes) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise BadInput(f"{path} is not a readable PDF ({type(exc).__name__}: {exc})") from exc
    # One section per page, so that a passage can be cited with its page.
    return "\n".join(f"## Page {n}\n{text}" for n, text in enumerate(pages, start=1) if text.strip())


def _to_markdown(article: Article) -> str:
    meta = {
        "id": article.id,
        "path": article.path,
        "title": article.title,
        "audience": article.audience,
        "sources": [s.model_dump() for s in article.sources],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + article.body + "\n"
