"""The knowledge index: chunks of every article and user document, searchable two ways.

* **BM25** (bm25s, English stop words, Snowball stemming) over the chunks' words;
* **dense**: all-MiniLM-L6-v2 embeddings in the vector index (collection ``knowledge-<model>``).

``KnowledgeBase.search`` fuses the two rankings by reciprocal rank (Cormack et al., 2009):
``score = sum(1 / (60 + rank))``. Chunks are about 120 words with 30 words of overlap, cut
within a section so that each keeps its heading. Re-indexing is incremental: a document is
chunked and embedded again only when its content hash changes.

Files under ``$SAHAY_HOME/knowledge``: ``documents.json`` (each document's metadata and hash),
``chunks.jsonl`` (chunk texts), ``user/`` (the text of documents added with ``sahay kb add``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sahay.config import Settings, get_settings
from sahay.errors import BadInput
from sahay.fileio import atomic_write_text
from sahay.knowledge.corpus import Article, ArticleSource, builtin_articles, parse_article
from sahay.knowledge.corpus import sentences as prose_sentences
from sahay.search.vectors import UsesVectorIndex, VectorIndex, collection_name

CHUNK_WORDS = 120
OVERLAP_WORDS = 30
RRF_K = 60
POOL = 50
SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".pdf")
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


class KnowledgeBase(UsesVectorIndex):
    """The curated corpus plus the user's documents, kept indexed under ``$SAHAY_HOME/knowledge``."""

    def __init__(self, settings: Settings | None = None, index: VectorIndex | None = None) -> None:
        self.settings = settings or get_settings()
        self.folder = self.settings.home_dir / "knowledge"
        self._index = index
        self._lock = threading.Lock()
        self._articles: dict[str, Article] = {}
        self._chunks: list[Chunk] = []
        self._by_id: dict[str, Chunk] = {}
        self._bm25: Any = None
        self._matrix: np.ndarray | None = None
        """Embedded mode: the chunks' vectors, one row per chunk of ``_chunks``, for exact search."""
        self._ready = False

    def embedder(self) -> Any:
        from sahay.search.embeddings import text_embedder  # loaded once per process, on first use

        return text_embedder(self.settings)

    @property
    def collection(self) -> str:
        return collection_name("knowledge", self.embedder().name)

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
        state = self._state()
        return [
            DocumentInfo(doc_id, info["title"], info["path"], info["builtin"], info["chunks"], info["sha256"])
            for doc_id, info in sorted(state.items())
        ]

    def article(self, document_id: str) -> Article:
        self.ensure()
        return self._articles[document_id]

    # Indexing -----------------------------------------------------------------------------

    def ensure(self) -> None:
        """Index on first use in this process (incrementally), then keep the index in memory."""
        with self._lock:
            if not self._ready:
                self._sync()
                self._ready = True

    def refresh(self) -> None:
        with self._lock:
            self._sync()
            self._ready = True

    def _sync(self) -> None:
        articles = {a.id: a for a in [*builtin_articles(), *self._user_articles()]}
        state = self._state()
        stored = self._stored_chunks()
        collection = self.collection
        self.index.ensure(collection, self.embedder().dimension)
        changed = [a for a in articles.values() if state.get(a.id, {}).get("sha256") != document_hash(a)]
        gone = [doc for doc in state if doc not in articles]
        stale = [c.id for c in stored if c.document in gone or c.document in {a.id for a in changed}]
        self.index.delete(collection, stale)
        kept = [c for c in stored if c.id not in set(stale)]
        fresh = [chunk for article in changed for chunk in chunk_article(article)]
        if fresh:
            vectors = self.embedder().embed([f"{c.title}. {c.section}. {c.text}" for c in fresh])
            self.index.upsert(
                collection, [c.id for c in fresh], vectors, [{"document": c.document} for c in fresh]
            )
        chunks = kept + fresh
        counts: dict[str, int] = {}
        for chunk in chunks:
            counts[chunk.document] = counts.get(chunk.document, 0) + 1
        new_state = {
            a.id: {
                "title": a.title,
                "path": a.path,
                "builtin": a.builtin,
                "sha256": document_hash(a),
                "chunks": counts.get(a.id, 0),
            }
            for a in articles.values()
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.folder / "chunks.jsonl", "".join(json.dumps(c.to_json()) + "\n" for c in chunks)
        )
        atomic_write_text(self.folder / "documents.json", json.dumps(new_state, indent=2) + "\n")
        self._articles, self._chunks = articles, chunks
        self._by_id = {c.id: c for c in chunks}
        self._bm25 = _bm25_index(chunks)
        self._matrix = self._load_matrix(collection, chunks) if self.index.embedded else None
        self.last_sync = {"embedded": len(fresh), "removed": len(stale), "documents": len(articles)}

    def _load_matrix(self, collection: str, chunks: list[Chunk]) -> np.ndarray:
        # Embedded Qdrant also scores every vector, but with per-point overhead: a matrix product
        # over the same vectors gives the same ranking in a fraction of the time.
        stored = self.index.vectors(collection, [c.id for c in chunks])
        matrix = np.zeros((len(chunks), self.embedder().dimension), dtype=np.float32)
        for row, chunk in enumerate(chunks):
            if chunk.id in stored:
                vector = stored[chunk.id]
                matrix[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return matrix

    def _dense(self, vector: np.ndarray) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest ``POOL`` chunks, best first."""
        if self._matrix is None:
            return [(hit.id, hit.score) for hit in self.index.search(self.collection, vector, POOL)]
        if not len(self._matrix):
            return []
        scores = self._matrix @ vector
        top = np.argpartition(-scores, min(POOL, len(scores)) - 1)[:POOL]
        top = top[np.argsort(-scores[top])]
        return [(self._chunks[int(i)].id, float(scores[i])) for i in top]

    def _state(self) -> dict[str, dict[str, Any]]:
        path = self.folder / "documents.json"
        if not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            return {}  # a damaged state file: everything is indexed again

    def _stored_chunks(self) -> list[Chunk]:
        path = self.folder / "chunks.jsonl"
        if not path.is_file():
            return []
        try:
            return [
                Chunk(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line
            ]
        except (ValueError, TypeError):
            return []

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
