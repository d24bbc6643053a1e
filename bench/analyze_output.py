"""What `sahay analyze` costs on a 2k film: the old default (every positive finding explained, overlays
and side-by-side pictures at full resolution, faithfulness scored, torch) against the new one (top 3,
overlays at display size, no score, ONNX Runtime as exported at install), paired in one run.

TorchXRayVision's DenseNet121 with random weights (imported as the NIH release) on a generated
2048 x 2048 12-bit CR DICOM, `--force` (random weights make it look out of domain), best of 3
whole-process runs each, peak RSS from /usr/bin/time.

    .venv/bin/python -m bench.analyze_output [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np


def _film(path: Path) -> Path:
    import cv2

    from tests.factories import write_dicom

    coarse = np.random.default_rng(0).normal(0, 1, (8, 8)).astype(np.float32)
    smooth = cv2.resize(coarse, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    return write_dicom(
        path, ((smooth - smooth.min()) / np.ptp(smooth) * 3000).astype(np.uint16), bits_stored=12
    )


def _run(
    sahay: str, film: Path, model: str, out: Path, args: list[str], runtime: str
) -> tuple[float, float, float, int]:
    best = (float("inf"), 0.0)
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%M",
                sahay,
                "analyze",
                str(film),
                "--model",
                model,
                "--out",
                str(out),
                "--force",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "SAHAY_RUNTIME": runtime},
        )
        seconds = time.perf_counter() - start
        best = min(best, (seconds, int(done.stderr.strip().splitlines()[-1]) / 1024))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    overlays = len([p for p in (out / "heatmaps").glob("*.png") if ".side-by-side" not in p.name])
    return best[0], best[1], size, overlays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="replace the 'analyze output' section of this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sahay-bench-output-"))
    os.environ["SAHAY_HOME"] = str(work / "home")
    from bench.bench_analyze import _replace_section, _xrv_bundle

    model = _xrv_bundle(work).name
    film = _film(work / "cr.dcm")
    sahay = str(Path(sys.executable).parent / "sahay")
    old_flags = ["--full-resolution", "--top-k", "18", "--faithfulness", "--side-by-side"]
    old = _run(sahay, film, model, work / "old", old_flags, "torch")
    new = _run(sahay, film, model, work / "new", [], "auto")
    lines = [
        "## analyze output",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Date: {date.today().isoformat()}.",
        "Command: `.venv/bin/python -m bench.analyze_output`",
        "",
        "A generated 2048 x 2048 CR DICOM, TorchXRayVision DenseNet121 (random weights), best of 3.",
        "",
        "| | the old default: every positive, full resolution, scored, side by side, torch "
        "| now: top 3, display size, ONNX Runtime | ratio |",
        "|---|---|---|---|",
        f"| whole process | {old[0]:.1f} s | {new[0]:.1f} s | {old[0] / new[0]:.2f}x |",
        f"| peak memory | {old[1]:.0f} MB | {new[1]:.0f} MB | {old[1] / new[1]:.2f}x |",
        f"| output on disk | {old[2]:.1f} MB | {new[2]:.1f} MB | {old[2] / new[2]:.1f}x |",
        f"| overlays | {old[3]} | {new[3]} | |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        _replace_section(args.write, "## analyze output", text)


if __name__ == "__main__":
    main()
