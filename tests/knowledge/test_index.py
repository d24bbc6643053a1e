"""Indexing (incremental, by content hash), user documents, and hybrid retrieval."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib
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
    assert kb.index.count(kb.collection) == sum(d.chunks for d in documents.values())


def test_reopening_embeds_nothing_again(kb: KnowledgeBase, home: Path) -> None:
    kb.close()  # embedded Qdrant: one client per folder
    with KnowledgeBase(Settings(home=home)) as again:
        again.ensure()
        assert again.last_sync["embedded"] == 0
        assert again.search("pleural effusion", k=1)
    kb._index = None  # the fixture's base reopens its index on next use


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
    page = kb.search("physiotherapy bronchiectasis", k=3)
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
