"""Indexing (incremental, by content hash), user documents, and hybrid retrieval."""

from __future__ import annotations

import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from sahay.config import Settings
from sahay.errors import BadInput
from sahay.knowledge.corpus import builtin_articles
from sahay.knowledge.index import CHUNK_WORDS, KnowledgeBase, chunk_article

matplotlib.use("Agg")


def write_pdf(path: Path, pages: list[str]) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        for text in pages:
            figure = plt.figure()
            figure.text(0.05, 0.5, text)
            pdf.savefig(figure)
            plt.close(figure)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kb-home")


@pytest.fixture(scope="module")
def kb(home: Path) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(Settings(home=home)) as kb:
        kb.ensure()
        yield kb


def test_chunks_keep_their_section_and_overlap() -> None:
    article = next(a for a in builtin_articles() if len(a.body.split()) > CHUNK_WORDS)
    chunks = chunk_article(article)
    # Whole sentences: a chunk stops at the first sentence end past CHUNK_WORDS words.
    assert all(len(c.text.split()) <= CHUNK_WORDS + 80 for c in chunks)
    assert all(not c.text[0].islower() and c.text.rstrip()[-1] in ".!?]" for c in chunks)
    assert all(c.section for c in chunks) and {c.document for c in chunks} == {article.id}
    assert len({c.id for c in chunks}) == len(chunks)


def test_every_article_is_indexed(kb: KnowledgeBase) -> None:
    documents = {d.id: d for d in kb.documents()}
    assert {a.id for a in builtin_articles()} <= set(documents)
    assert all(d.chunks >= 1 for d in documents.values())
    assert kb.last_sync["chunks"] == sum(d.chunks for d in documents.values())


def test_reopening_embeds_nothing_again(kb: KnowledgeBase, home: Path) -> None:
    with KnowledgeBase(Settings(home=home)) as again:
        assert again.is_built()
        again.ensure()
        assert again.last_sync["embedded"] == 0
        assert again.search("pleural effusion", k=1)


def test_a_built_index_answers_without_torch_transformers_or_qdrant(kb: KnowledgeBase, home: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sahay.config import Settings\n"
        "from sahay.knowledge.index import KnowledgeBase\n"
        f"kb = KnowledgeBase(Settings(home=Path({str(home)!r})))\n"
        "top = kb.search('What does BI-RADS 4 mean?', k=3)\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers', 'qdrant_client', 'spacy')\n"
        "print(kb.last_sync['embedded'], kb.embedder().runtime, top[0].chunk.document,"
        " sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 onnxruntime bi-rads []"


def test_build_exports_the_model_once_and_reports_what_it_did(kb: KnowledgeBase) -> None:
    summary = kb.build()
    assert summary["embedded"] == 0 and summary["chunks"] == len(kb._chunks)
    assert kb.embedder().runtime == "onnxruntime"


class WordHashEmbedder:
    """A stand-in model: words hashed into 64 dimensions (fast; the fingerprint is what matters here)."""

    name = "word-hash"
    dimension = 64
    runtime = "test"

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.embedded = 0

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        self.embedded += len(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, zlib.crc32(word.encode()) % self.dimension] += 1.0
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


def test_a_changed_model_embeds_everything_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = WordHashEmbedder("a" * 64)
    with KnowledgeBase(settings, embedder=first) as kb:
        assert not kb.is_built()
        kb.ensure()
        built = kb.last_sync["chunks"]
        assert first.embedded == built > 0
    same = WordHashEmbedder("a" * 64)
    with KnowledgeBase(settings, embedder=same) as kb:
        assert kb.is_built() and kb.search("pleural effusion", k=1)
        assert same.embedded == 1  # the query alone
    changed = WordHashEmbedder("b" * 64)
    with KnowledgeBase(settings, embedder=changed) as kb:
        assert not kb.is_built()
        kb.ensure()
        assert changed.embedded == built and kb.last_sync["embedded"] == built
    assert len(list((tmp_path / "knowledge").glob("index-*"))) == 1  # the old index is removed


def test_a_damaged_index_is_built_again(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with KnowledgeBase(settings, embedder=WordHashEmbedder("c" * 64)) as kb:
        kb.ensure()
        built = kb.last_sync["chunks"]
    (chunks,) = (tmp_path / "knowledge").glob("index-*/chunks.jsonl")
    chunks.write_text(chunks.read_text().splitlines()[0] + "\n")
    again = WordHashEmbedder("c" * 64)
    with KnowledgeBase(settings, embedder=again) as kb:
        assert kb.search("pleural effusion", k=1)
        assert kb.last_sync["chunks"] == built and again.embedded == built + 1


def test_user_documents_are_added_replaced_and_removed(kb: KnowledgeBase, tmp_path: Path) -> None:
    note = tmp_path / "protocol.md"
    note.write_text(
        "# Sarcoidosis clinic\n\nRefer suspected sarcoidosis to the interstitial lung disease clinic.\n"
    )
    pdf = write_pdf(tmp_path / "pathway.pdf", ["Bronchiectasis pathway page one", "Physiotherapy page two"])
    added = kb.add([note, pdf])
    assert {d.title for d in added} == {"Sarcoidosis clinic", "pathway"}
    assert kb.last_sync["embedded"] == sum(d.chunks for d in added)  # only the new documents
    top = kb.search("sarcoidosis referral clinic", k=1)[0]
    assert top.chunk.document.startswith("user-protocol-") and top.sources[0].url == "file:protocol.md"
    page = kb.search("physiotherapy bronchiectasis", k=10)
    assert any(p.chunk.section == "Page 2" for p in page)

    note.write_text("# Sarcoidosis clinic\n\nThe clinic moved: refer to the respiratory day unit.\n")
    (replaced,) = kb.add([note])
    ids = [d.id for d in kb.documents() if d.path == "protocol.md"]
    assert ids == [replaced.id]  # the old version is gone
    for document in ids + [d.id for d in added if d.path == "pathway.pdf"]:
        kb.remove(document)
    assert not [d for d in kb.documents() if not d.builtin]
    with pytest.raises(BadInput, match="no user document"):
        kb.remove("pleural-effusion")  # curated articles cannot be removed


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("scan.docx", b"PK\x03\x04", "not a supported document"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "not UTF-8 text"),
        ("empty.md", b"   \n", "holds no text"),
        ("broken.pdf", b"%PDF-1.4 not really", "not a readable PDF"),
    ],
)
def test_bad_documents_are_refused_and_nothing_is_stored(
    kb: KnowledgeBase, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    good = tmp_path / "good.md"
    good.write_text("# Good\n\nA perfectly fine document.\n")
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        kb.add([good, bad])
    assert not [d for d in kb.documents() if not d.builtin]


def test_bad_queries(kb: KnowledgeBase) -> None:
    with pytest.raises(BadInput, match="empty"):
        kb.search("   ")
    with pytest.raises(BadInput, match="k must be at least 1"):
        kb.search("effusion", k=0)


def test_audience_filter(kb: KnowledgeBase) -> None:
    for passage in kb.search("what does this mean for me", k=8, audience="patient"):
        assert passage.chunk.audience in ("patient", "both")
