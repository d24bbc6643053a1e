"""Benchmark knowledge-base retrieval: hybrid search latency over about 10 000 chunks.

Run on demand (never as a test):

    .venv/bin/python -m bench.bench_knowledge [--chunks 10000] [--queries 200] [--write docs/benchmarks.md]
    .venv/bin/python -m bench.bench_knowledge --compare-embedders [--write docs/benchmarks.md]

The curated corpus is padded with synthetic user documents made of its own sentences, shuffled,
until the index holds the requested number of chunks. Queries are the retrieval-quality test's
questions, repeated; a query's time includes embedding it, BM25, the dense search (a matrix
product over the stored vectors), and the fusion.

``--compare-embedders`` builds the curated corpus's index twice, with all-MiniLM-L6-v2 run by
sentence-transformers and by ONNX Runtime, and compares build time, query time, retrieval
recall@5 on the chat development set (bench/chat_eval.py), hit@3 on the retrieval test's
questions, and how many of the top 5 passages the two rankings share.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.bench_analyze import _replace_section


def compare_embedders(queries: int) -> str:
    from bench.chat_eval import load_dev_set, retrieval
    from sahay.config import Settings
    from sahay.knowledge.index import KnowledgeBase
    from sahay.search.embeddings import export_onnx, text_embedder
    from tests.knowledge.test_retrieval import QUESTIONS

    dev = load_dev_set()
    questions = [item.question for item in dev if item.analysis is None]
    results = {}
    for backend in ("sentence-transformers", "onnx"):
        settings = Settings(home=Path(tempfile.mkdtemp(prefix=f"sahay-bench-{backend}-")))
        if backend == "onnx":
            start = time.perf_counter()
            export_onnx(settings)
            export_s = time.perf_counter() - start
        embedder = text_embedder(settings, backend=backend)  # type: ignore[arg-type]
        with KnowledgeBase(settings, embedder=embedder) as kb:
            start = time.perf_counter()
            kb.ensure()
            build_s = time.perf_counter() - start
            recall, _, asked = retrieval(dev, kb)
            hits = sum(
                bool(answers & {p.chunk.document for p in kb.search(q, k=3)}) for q, answers in QUESTIONS
            )
            tops = {q: [p.chunk.id for p in kb.search(q, k=5)] for q in questions}
            times = []
            for number in range(queries):
                start = time.perf_counter()
                kb.search(questions[number % len(questions)], k=5)
                times.append((time.perf_counter() - start) * 1000)
            results[backend] = {
                "chunks": kb.last_sync["chunks"],
                "build": build_s,
                "recall": recall,
                "asked": asked,
                "hit3": hits / len(QUESTIONS),
                "tops": tops,
                "p50": statistics.median(times),
            }
    st, onnx = results["sentence-transformers"], results["onnx"]
    overlap = statistics.mean(len(set(st["tops"][q]) & set(onnx["tops"][q])) / 5 for q in questions)
    same_order = sum(st["tops"][q] == onnx["tops"][q] for q in questions)
    rows = [
        ("Passages indexed", f"{st['chunks']}", f"{onnx['chunks']}"),
        ("Building the index (embedding every passage)", f"{st['build']:.1f} s", f"{onnx['build']:.1f} s"),
        ("Exporting the model to ONNX (once per install)", "-", f"{export_s:.1f} s"),
        ("Hybrid search p50 (in process, model loaded)", f"{st['p50']:.1f} ms", f"{onnx['p50']:.1f} ms"),
        (
            f"Retrieval recall@5, chat dev set ({st['asked']} questions)",
            f"{100 * st['recall']:.1f} %",
            f"{100 * onnx['recall']:.1f} %",
        ),
        (
            f"Hit@3, retrieval test ({len(QUESTIONS)} questions)",
            f"{100 * st['hit3']:.1f} %",
            f"{100 * onnx['hit3']:.1f} %",
        ),
    ]
    lines = [
        "## text embedders",
        "",
        f"`python -m bench.bench_knowledge --compare-embedders --queries {queries}` on {platform.machine()} "
        f"with {os.cpu_count()} CPUs, {datetime.date.today().isoformat()}: the curated corpus indexed "
        "twice, all-MiniLM-L6-v2 run by sentence-transformers (torch) and by ONNX Runtime (exported "
        "from the same weights).",
        "",
        "| Measure | sentence-transformers | ONNX Runtime |",
        "|---|---:|---:|",
        *[f"| {name} | {a} | {b} |" for name, a, b in rows],
        "",
        f"The two rankings share {100 * overlap:.1f} % of their top 5 passages on the {len(questions)} dev "
        f"questions, in the same order for {same_order} of them.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--write", type=Path, help="replace the 'knowledge' section of this markdown file")
    parser.add_argument(
        "--home", type=Path, help="reuse the SAHAY_HOME of an earlier run (its index is built)"
    )
    parser.add_argument(
        "--compare-embedders", action="store_true", help="sentence-transformers vs ONNX Runtime"
    )
    args = parser.parse_args()
    if args.compare_embedders:
        report = compare_embedders(args.queries)
        print(report)
        if args.write:
            _replace_section(args.write, "## text embedders", report)
        return

    home = args.home or Path(tempfile.mkdtemp(prefix="sahay-bench-kb-"))
    os.environ["SAHAY_HOME"] = str(home)
    from sahay.config import reload_settings
    from sahay.knowledge.corpus import builtin_articles, sentences
    from sahay.knowledge.index import KnowledgeBase
    from tests.knowledge.test_retrieval import QUESTIONS

    settings = reload_settings()
    pool = [s for article in builtin_articles() for s in sentences(article.body)]
    rng = random.Random(0)
    user = home / "knowledge" / "user"
    user.mkdir(parents=True, exist_ok=True)
    documents = 0 if args.home else max(0, (args.chunks - 300) // 7)  # about seven chunks per document
    for number in range(documents):
        sections = "\n".join(f"## Part {part}\n" + " ".join(rng.sample(pool, 12)) for part in range(3))
        user.joinpath(f"user-synthetic-{number:05d}.md").write_text(
            f"---\nid: user-synthetic-{number:05d}\ntitle: Synthetic {number}\nsources:\n"
            f"  - {{id: 1, title: Synthetic, publisher: bench, url: 'file:synthetic-{number}.md'}}\n---\n"
            f"# Synthetic {number}\n{sections}\n"
        )
    with KnowledgeBase(settings) as kb:
        start = time.perf_counter()
        kb.ensure()
        build_s = time.perf_counter() - start
        chunks = len(kb._chunks)
    print(f"index in {home}")
    with KnowledgeBase(settings) as kb:
        start = time.perf_counter()
        kb.ensure()
        reopen_s = time.perf_counter() - start
        questions = [q for q, _ in QUESTIONS]
        for question in questions[:5]:
            kb.search(question, k=5)  # warm-up
        times = []
        for number in range(args.queries):
            start = time.perf_counter()
            kb.search(questions[number % len(questions)], k=5)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    build_cell = (
        "not measured (built by an earlier run, reused with --home)" if args.home else f"{build_s:.1f} s"
    )
    p50, p99 = statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]
    text = "\n".join(
        [
            "## knowledge",
            "",
            f"`python -m bench.bench_knowledge --chunks {args.chunks} --queries {args.queries}` on "
            f"{platform.machine()} with {os.cpu_count()} CPUs, torch {torch.__version__}, CPU only: the "
            f"curated corpus padded with synthetic documents to {chunks} chunks, exact dense search.",
            "",
            "| Measure | Value |",
            "|---|---:|",
            f"| Chunks indexed | {chunks} |",
            f"| Building the index from nothing (embedding every chunk) | {build_cell} |",
            f"| Opening it again (nothing changed, nothing embedded) | {reopen_s:.1f} s |",
            f"| Hybrid search, p50 (query embedding, BM25, dense, fusion) | {p50:.1f} ms |",
            f"| Hybrid search, p99 | {p99:.1f} ms |",
            "",
        ]
    )
    print(text)
    if args.write:
        _replace_section(args.write, "## knowledge", text)


if __name__ == "__main__":
    main()
