"""`sahay batch` against the loop a researcher would write with TorchXRayVision, on the same images.

Both run TorchXRayVision's DenseNet121 (random weights, imported as the NIH release) over the same
generated greyscale PNGs, without heatmaps. The yardstick is xrv's own recipe: skimage reads,
`xrv.datasets.normalize`, `XRayCenterCrop`, `XRayResizer(224)`, batches of 8 under `torch.no_grad`.
Both are timed as whole processes (imports and model load included) and per image after start-up.

    .venv/bin/python -m bench.batch_throughput [--images 200] [--size 1024] [--write docs/benchmarks.md]
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

XRV_LOOP = r"""
import sys, time
t0 = time.perf_counter()
from pathlib import Path
import numpy as np, skimage.io, torch, torchvision, torchxrayvision as xrv
torch.manual_seed(0)
model = xrv.models.DenseNet(weights=None).eval()
transform = torchvision.transforms.Compose([xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)])
paths = sorted(Path(sys.argv[1]).glob("*.png"))
t1 = time.perf_counter()
rows = 0
with torch.no_grad():
    for start in range(0, len(paths), 8):
        batch = []
        for path in paths[start:start + 8]:
            img = xrv.datasets.normalize(skimage.io.imread(path), 255)
            batch.append(torch.from_numpy(transform(img[None, ...])))
        rows += len(model(torch.stack(batch)))
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {rows}")
"""


def _images(folder: Path, count: int, size: int) -> None:
    import cv2
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):
        coarse = rng.normal(0, 1, (8, 8)).astype(np.float32)
        smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        pixels = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-6) * 0.7 + rng.normal(0, 0.02, (size, size))
        Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(folder / f"img-{index:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--write", type=Path, help="replace the 'batch' section of this markdown file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sahay-bench-batch-"))
    env = {**os.environ, "SAHAY_HOME": str(work / "home")}
    os.environ.update(env)
    from bench.bench_analyze import _replace_section, _xrv_bundle

    bundle = _xrv_bundle(work)
    images = work / "images"
    _images(images, args.images, args.size)

    sahay = str(Path(sys.executable).parent / "sahay")
    start = time.perf_counter()
    done = subprocess.run(
        [sahay, "batch", str(images), "--out", str(work / "r.csv"), "--model", bundle.name, "--force"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    sahay_total = time.perf_counter() - start
    rate = (
        next(part for part in done.stdout.split(";") if "images/s" in part).split("images/s")[0].split()[-1]
    )
    sahay_rate = float(rate)

    start = time.perf_counter()
    loop = subprocess.run(
        [sys.executable, "-c", XRV_LOOP, str(images)], capture_output=True, text=True, check=True
    )
    xrv_total = time.perf_counter() - start
    _startup, run, rows = loop.stdout.split()
    xrv_rate = int(rows) / float(run)

    lines = [
        "## batch",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Date: {date.today().isoformat()}.",
        f"Command: `.venv/bin/python -m bench.batch_throughput --images {args.images} --size {args.size}`",
        "",
        f"{args.images} generated {args.size} x {args.size} 8-bit PNGs; TorchXRayVision DenseNet121 (random "
        "weights) in both; no heatmaps.",
        "",
        "| | xrv batch-8 loop | `sahay batch` | ratio (>1: Sahay faster) |",
        "|---|---|---|---|",
        f"| whole process | {xrv_total:.1f} s | {sahay_total:.1f} s | {xrv_total / sahay_total:.2f}x |",
        f"| images/s after start-up | {xrv_rate:.1f} | {sahay_rate:.1f} | {sahay_rate / xrv_rate:.2f}x |",
        "",
        "`sahay batch` also does what the loop does not: the per-image domain checks and out-of-domain "
        "score, calibrated probabilities and thresholds, one row per file with errors recorded, a resumable "
        "results file and the triage order.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        _replace_section(args.write, "## batch", text)


if __name__ == "__main__":
    main()
