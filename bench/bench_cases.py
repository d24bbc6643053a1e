"""Benchmark the case library's vector search in embedded Qdrant: adding, searching, reopening.

Run on demand (never as a test):

    .venv/bin/python -m bench.bench_cases [--sizes 10000,100000] [--queries 200] [--write docs/benchmarks.md]

Each case has the three vectors the case search blends: an image vector of 1024 values (the
pooled features of TorchXRayVision's DenseNet121), a text vector of 384 (all-MiniLM-L6-v2) and
a findings vector of 18 probabilities, all random unit vectors from a seeded generator. Every
size runs in fresh processes with its own temporary SAHAY_HOME: one adds the cases with
``VectorIndex.upsert`` and times ``rank`` (k=5), a second times reopening the index (open and
first search), as a new ``sahay`` command does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

DIMENSIONS = {"image": 1024, "text": 384, "findings": 18}
MODEL_SPACE = "xrv-densenet121-res224-all@1"
TEXT_SPACE = "all-MiniLM-L6-v2"
CHUNK = 1024
"""Cases generated and upserted at a time (``VectorIndex.upsert`` sends them in batches of 256)."""
WARM_UP = 5
MEMORY_SIZE = 5000
"""Cases added to an in-memory index, for comparison with the persistent one."""


def _unit(rng: np.random.Generator, rows: int, dimension: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dimension), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(phase: str, size: int, queries: int) -> dict[str, float]:
    """Runs in a fresh process whose SAHAY_HOME is set: ``add`` (then search), ``reopen`` or ``memory``."""
    warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)
    from sahay.cases.search import QueryVectors, rank, signal_collection
    from sahay.config import reload_settings
    from sahay.search.vectors import VectorIndex

    settings = reload_settings()
    base_rss_mb = _peak_rss_mb()

    def query(rng: np.random.Generator) -> QueryVectors:
        image, text, findings = (_unit(rng, 1, d)[0] for d in DIMENSIONS.values())
        return QueryVectors(image, findings, text, MODEL_SPACE, TEXT_SPACE)

    if phase == "reopen":
        start = time.perf_counter()
        with VectorIndex.open(settings) as index:
            rank(index, query(np.random.default_rng(2)), k=5)
            seconds = time.perf_counter() - start
        return {"reopen_s": seconds, "reopen_rss_mb": _peak_rss_mb(), "base_rss_mb": base_rss_mb}

    def add(index: VectorIndex) -> float:
        """Vectors per second."""
        rng = np.random.default_rng(0)
        payload = {"modality": "CR", "model": MODEL_SPACE}
        collections = {s: signal_collection(s, MODEL_SPACE, TEXT_SPACE) for s in DIMENSIONS}  # type: ignore[arg-type]
        for signal, dimension in DIMENSIONS.items():
            index.ensure(collections[signal], dimension)
        spent = 0.0
        for first in range(0, size, CHUNK):
            ids = [f"{i:032x}" for i in range(first, min(first + CHUNK, size))]
            for signal, dimension in DIMENSIONS.items():
                vectors = _unit(rng, len(ids), dimension)
                start = time.perf_counter()
                index.upsert(collections[signal], ids, vectors, [payload] * len(ids))
                spent += time.perf_counter() - start
        return len(DIMENSIONS) * size / spent

    if phase == "memory":
        with VectorIndex.in_memory() as index:
            return {"memory_add_vectors_per_s": add(index)}

    result: dict[str, float] = {}
    with VectorIndex.open(settings) as index:
        result["add_vectors_per_s"] = add(index)
        result["add_rss_mb"] = _peak_rss_mb()
        queries_rng = np.random.default_rng(1)
        for mode in ("blend", "image"):
            times = []
            for n in range(WARM_UP + queries):
                q = query(queries_rng)
                start = time.perf_counter()
                rank(index, q, k=5, mode=mode)  # type: ignore[arg-type]
                if n >= WARM_UP:
                    times.append((time.perf_counter() - start) * 1000)
            result[f"{mode}_p50_ms"] = float(np.percentile(times, 50))
            result[f"{mode}_p99_ms"] = float(np.percentile(times, 99))
    return result


def _run_child(phase: str, size: int, queries: int, home: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.bench_cases", "--child", phase, str(size), str(queries)]
    done = subprocess.run(
        command, env={**os.environ, "SAHAY_HOME": str(home)}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{phase} at {size} cases failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated numbers of cases")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per mode and size")
    parser.add_argument("--write", type=Path, help="replace the 'cases' section of this markdown file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, size, queries = args.child
        print(json.dumps(_child(phase, int(size), int(queries))))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows: list[dict[str, Any]] = []
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix="sahay-bench-"))
        try:
            start = time.perf_counter()
            row: dict[str, Any] = {"size": size, **_run_child("add", size, args.queries, work / "home")}
            row |= _run_child("reopen", size, args.queries, work / "home")
            print(f"{size} cases: {row} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
            rows.append(row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    in_memory_size = min(MEMORY_SIZE, max(sizes))
    home = Path(tempfile.mkdtemp(prefix="sahay-bench-"))
    try:
        memory_rate = _run_child("memory", in_memory_size, 0, home)["memory_add_vectors_per_s"]
    finally:
        shutil.rmtree(home, ignore_errors=True)

    dims = ", ".join(f"{signal} {d}" for signal, d in DIMENSIONS.items())
    small, large = min(rows, key=lambda r: r["size"]), max(rows, key=lambda r: r["size"])
    adding_s = len(DIMENSIONS) * large["size"] / large["add_vectors_per_s"]
    adding = f"{adding_s / 60:.0f} minutes" if adding_s >= 120 else f"{adding_s:.0f} s"
    growth = (
        f"From {small['size']:,} to {large['size']:,} cases the image-only median search took "
        f"{large['image_p50_ms'] / small['image_p50_ms']:.1f} times as long, reopening "
        f"{large['reopen_s'] / small['reopen_s']:.1f} times as long, and the reopened process needed "
        f"{large['reopen_rss_mb'] / small['reopen_rss_mb']:.1f} times the memory. "
        if large is not small
        else ""
    )
    lines = [
        "## cases",
        "",
        f"`python -m bench.bench_cases --sizes {','.join(map(str, sizes))} --queries {args.queries}`; "
        f"random unit vectors ({dims} values per case), on {platform.machine()} with {os.cpu_count()} "
        f"CPUs, embedded Qdrant (local mode), qdrant-client {version('qdrant-client')}. Add: "
        f"`VectorIndex.upsert` into the three collections, vectors per second. Search: `rank` with "
        f"k=5 and a query with all three signals (blend) or the image alone, latency percentiles of "
        f"{args.queries} queries after {WARM_UP} warm-up queries. Reopen: a new process opens the index "
        f"and answers its first search. Peak resident memory of the process that added and searched, "
        f"and of the one that reopened; before opening the index such a process holds "
        f"{min(r['base_rss_mb'] for r in rows):.0f} MB (Python, numpy and Sahay's search modules).",
        "",
        "| Cases | Add (vectors/s) | Blend p50 / p99 (ms) | Image only p50 / p99 (ms) | Reopen (s) "
        "| Peak RSS, adding (MB) | Peak RSS, reopened (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {r['size']:,} | {r['add_vectors_per_s']:,.0f} | {r['blend_p50_ms']:.0f} / "
            f"{r['blend_p99_ms']:.0f} | {r['image_p50_ms']:.0f} / {r['image_p99_ms']:.0f} "
            f"| {r['reopen_s']:.1f} | {r['add_rss_mb']:,.0f} | {r['reopen_rss_mb']:,.0f} |"
            for r in rows
        ],
        "",
        "Random vectors are a worst case for the blend: the three signals' candidate pools (50 cases "
        "each) hardly overlap, so nearly every candidate is also fetched from the other two collections. "
        "Adding is bound by writing to disk: the embedded index commits each point to its SQLite file "
        f"in a transaction of its own; the same upserts of {in_memory_size:,} cases into an in-memory "
        f"index (`VectorIndex.in_memory()`) ran at {memory_rate:,.0f} vectors/s. {growth}Adding "
        f"{large['size']:,} cases to the embedded index took {adding}.",
        "",
        "**Beyond one machine.** Qdrant's documentation presents local mode as meant for development, "
        "prototyping and testing, and says to switch to a server to scale. Local mode keeps every "
        "vector of every collection in memory (loading them all when the index is opened) and scores "
        "a query against each of them, a brute-force exact search, so search time, opening time and "
        "memory grow with the library; it suits libraries up to about the sizes measured here, and "
        "qdrant-client warns when a local collection holds more than 20,000 points (the warning is "
        "silenced in this benchmark). A Qdrant server searches an HNSW index instead. For millions "
        "of cases: run a Qdrant server, for example the official container `qdrant/qdrant`; set "
        "`SAHAY_QDRANT_URL` to its address (and `SAHAY_QDRANT_API_KEY` if it requires a key); then "
        "run `sahay cases reindex`, which re-embeds every case of the library (from its stored image "
        "and fields) into the server, which starts empty.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        from bench.bench_analyze import _replace_section  # imports torch: not in the measured processes

        _replace_section(args.write, "## cases", text)


if __name__ == "__main__":
    main()
