"""Benchmark start-up: how long `sahay --help` and a missing-file `sahay analyze` take, as whole processes.

The yardstick is what a TorchXRayVision script pays before it can look at its first path: starting
Python and importing torchxrayvision (and so torch). The floor is Python itself.

``--section chat`` measures one-question ``sahay chat`` processes instead (wall time and peak
memory): the first question with no index built, ``sahay kb build`` (the install step), the first
question after it, and warm questions. Its yardstick is importing sentence-transformers, which the
chat paid on every question before the ONNX Runtime embedder.

.venv/bin/python -m bench.bench_startup [--section chat] [--repeats 7] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and the exit code."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    return time.perf_counter() - started, done.returncode


def _run_measured(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one whole process (it must succeed)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = process.stderr.read().decode() if process.stderr else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, for its resource usage
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {errors[-800:]}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def chat_section(repeats: int) -> str:
    import tempfile

    question = "What does BI-RADS 4 mean?"
    chat = [str(BIN / "sahay"), "chat", question]
    fresh, built = (Path(tempfile.mkdtemp(prefix=f"sahay-bench-chat-{n}-")) for n in ("fresh", "built"))
    env = {
        name: {**os.environ, "SAHAY_HOME": str(home)} for name, home in (("fresh", fresh), ("built", built))
    }
    rows: list[tuple[str, float, float]] = []
    rows.append(
        (
            "First question, no index built (builds it: export and embedding)",
            *_run_measured(chat, env["fresh"]),
        )
    )
    rows.append(
        (
            "`sahay kb build` (the install step)",
            *_run_measured([str(BIN / "sahay"), "kb", "build"], env["built"]),
        )
    )
    rows.append(("First question after `sahay kb build`", *_run_measured(chat, env["built"])))
    warm = [_run_measured(chat, env["built"]) for _ in range(repeats)]
    rows.append(
        (
            f"Warm question (median of {repeats})",
            statistics.median(w for w, _ in warm),
            max(m for _, m in warm),
        )
    )
    yardstick = [
        _run_measured([sys.executable, "-c", "import sentence_transformers"], env["built"])
        for _ in range(repeats)
    ]
    rows.append(
        (
            "Yardstick: python -c 'import sentence_transformers'",
            statistics.median(w for w, _ in yardstick),
            max(m for _, m in yardstick),
        )
    )
    base = rows[-1][1]
    lines = [
        "## fast chat start",
        "",
        f"`python -m bench.bench_startup --section chat --repeats {repeats}`: whole `sahay chat "
        f'"{question}"` processes (grounded backend), wall time and peak resident memory, on '
        f"{platform.machine()} with {os.cpu_count()} CPUs, {datetime.date.today().isoformat()}. "
        "Each row is its own process; the yardstick is what every question paid before the ONNX "
        "Runtime embedder, before it could embed anything.",
        "",
        "| Process | Wall (s) | vs. importing sentence-transformers | Peak memory (MB) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {wall:.2f} | {wall / base:.2f}x | {peak:.0f} |" for name, wall, peak in rows]
    lines += [
        "",
        "The question's process reads the prebuilt index (`$SAHAY_HOME/knowledge/index-<key>/`) and "
        "runs all-MiniLM-L6-v2 in ONNX Runtime: it imports neither torch, transformers, "
        "sentence-transformers nor Qdrant (`tests/knowledge/test_index.py` checks the imports).",
        "",
    ]
    return "\n".join(lines)


def _median(command: list[str], repeats: int) -> tuple[float, int]:
    _run(command)  # warm the file cache
    runs = [_run(command) for _ in range(repeats)]
    return statistics.median(wall for wall, _ in runs), runs[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--section", choices=("startup", "chat"), default="startup")
    args = parser.parse_args()

    from bench.bench_analyze import _replace_section

    if args.section == "chat":
        report = chat_section(args.repeats)
        print(report)
        if args.write:
            _replace_section(args.write, "## fast chat start", report)
        return

    missing = "/nonexistent/chest.dcm"
    commands = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "TorchXRayVision script start (import torchxrayvision)": [
            sys.executable,
            "-c",
            "import torchxrayvision",
        ],
        "sahay --help": [str(BIN / "sahay"), "--help"],
        "sahay analyze missing.dcm (exit 2)": [str(BIN / "sahay"), "analyze", missing],
    }
    results = {name: _median(command, args.repeats) for name, command in commands.items()}
    yardstick = results["TorchXRayVision script start (import torchxrayvision)"][0]
    lines = [
        "## startup",
        "",
        f"`python -m bench.bench_startup --repeats {args.repeats}`; median wall time of {args.repeats} "
        f"whole-process runs after a warm-up, on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"{datetime.date.today().isoformat()}.",
        "",
        "| Command | Median (s) | vs. the TorchXRayVision script's start | Exit code |",
        "|---|---:|---:|---:|",
    ]
    for name, (wall, code) in results.items():
        lines.append(f"| {name} | {wall:.3f} | {wall / yardstick:.2f}x | {code} |")
    lines += [
        "",
        "`sahay` loads torch, spaCy and the database layer only when a command needs them, so help "
        "and a wrong path answer before any of them loads (`tests/cli/test_structure.py` checks the "
        "imports; this benchmark measures the time).",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        _replace_section(args.write, "## startup", report)


if __name__ == "__main__":
    main()
