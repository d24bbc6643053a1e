"""Benchmark the explanation methods: wall time per image at 224 px, and the faithfulness scoring.

Run on demand (never as a test):

    .venv/bin/python -m bench.bench_explain [--repeats 3] [--write docs/benchmarks.md]

Bundles as in ``bench_analyze``: the demonstration EfficientNet-Lite0 and a TorchXRayVision
DenseNet121 with random weights (the real chest model's network and cost). Each method explains
three findings of one 1024 x 1024 image with its default budget; "faithfulness" is the
deletion/insertion scoring of those three maps.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bench.bench_analyze import _median_ms, _replace_section, _xrv_bundle


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, help="replace the 'explain' section of this markdown file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sahay-bench-"))
    os.environ["SAHAY_HOME"] = str(work / "home")
    from sahay.config import reload_settings
    from sahay.explain.faithfulness import DEFAULT_STEPS, deletion_insertion, evaluations_needed
    from sahay.explain.methods import METHODS, MethodInput
    from sahay.models.bundle import load_bundle
    from sahay.models.calibration import probabilities
    from sahay.models.predictor import Predictor
    from sahay.models.providers import get_provider
    from sahay.services.demo import build_demo_bundle

    settings = reload_settings()
    pixels = np.random.default_rng(0).random((1024, 1024)).astype(np.float32)
    bundles = {
        "efficientnet-lite0 (demo)": build_demo_bundle(settings.models_dir / "sahay-demo-synthetic").path,
        "xrv-densenet121": _xrv_bundle(work),
    }
    header = ["Method", *bundles]
    rows: dict[str, list[str]] = {}
    for folder in bundles.values():
        bundle = load_bundle(folder)
        predictor = Predictor(bundle)
        prediction = predictor.predict([pixels])[0]
        layer = get_provider(bundle.manifest.architecture).cam_layer
        targets = [0, 1, 2][: len(bundle.manifest.labels)]
        maps = None
        for method in METHODS.values():
            request = MethodInput(predictor.model, prediction.input_tensor, targets, layer)
            seconds = _median_ms(lambda m=method, r=request: m.run(r), args.repeats) / 1000
            result = method.run(request)
            maps = maps or result.maps
            rows.setdefault(method.title, []).append(f"{seconds:.2f} s ({result.evaluations})")
        manifest = bundle.manifest
        to_probability = partial(
            probabilities, temperature=manifest.calibration.temperature, task=manifest.task
        )
        score = partial(
            deletion_insertion, predictor.model, prediction.input_tensor, targets, maps or [], to_probability
        )
        seconds = _median_ms(score, args.repeats) / 1000
        needed = evaluations_needed(len(targets), DEFAULT_STEPS)
        rows.setdefault("Faithfulness scoring of those maps", []).append(f"{seconds:.2f} s ({needed})")
    lines = [
        "## explain",
        "",
        f"`python -m bench.bench_explain --repeats {args.repeats}`; median wall time to explain the "
        f"findings of one image at 224 px with the default budget (3 findings; the demo model has 2), "
        f"with the forward passes made in brackets, on {platform.machine()} with {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU only.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(bundles),
        *[f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        _replace_section(args.write, "## explain", text)


if __name__ == "__main__":
    main()
