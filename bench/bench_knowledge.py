"""Benchmark knowledge-base retrieval: hybrid search latency over about 10 000 chunks.

Run on demand (never as a test):

    .venv/bin/python -m bench.bench_knowledge [--chunks 10000] [--queries 200] [--write docs/benchmarks.md]

The curated corpus is padded with synthetic user documents made of its own sentences, shuffled,
until the index holds the requested number of chunks. Queries are the retrieval-quality test's
questions, repeated; a query's time includes embedding it, BM25, the dense search in embedded
Qdrant, and the fusion.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.bench_analyze import _replace_section


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
    args = parser.parse_args()

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
            f"curated corpus padded with synthetic documents to {chunks} chunks, embedded Qdrant.",
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
