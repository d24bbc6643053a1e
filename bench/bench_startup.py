"""Benchmark start-up: how long `sahay --help` and a missing-file `sahay analyze` take, as whole processes.

The yardstick is what a TorchXRayVision script pays before it can look at its first path: starting
Python and importing torchxrayvision (and so torch). The floor is Python itself.

.venv/bin/python -m bench.bench_startup [--repeats 7] [--write docs/benchmarks.md]
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
    args = parser.parse_args()

    from bench.bench_analyze import _replace_section

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
