"""Benchmark `sahay analyze`: reading, prediction, Grad-CAM and the whole flow, per model architecture.

Run on demand (never as a test):

    .venv/bin/python -m bench.bench_analyze [--repeats 5] [--write docs/benchmarks.md]

It builds its bundles in a temporary SAHAY_HOME: the demonstration EfficientNet-Lite0 bundle,
and a TorchXRayVision DenseNet121 bundle with random weights (the same network and cost as the
real chest model, with no download). Inputs are a generated 2048 x 2048 16-bit chest DICOM and
a 1024 x 1024 PNG.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _xrv_bundle(folder: Path) -> Path:
    import torchxrayvision as xrv

    from sahay.config import reload_settings
    from sahay.models.catalog import catalog
    from sahay.models.registry import import_path

    entry = catalog()["xrv-densenet121-res224-nih"]
    torch.manual_seed(0)
    weights = folder / entry.filename
    torch.save(xrv.models.DenseNet(weights=None), weights)
    return import_path(weights, reload_settings()).path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path, help="replace the 'analyze' section of this markdown file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sahay-bench-"))
    os.environ["SAHAY_HOME"] = str(work / "home")
    from sahay.config import reload_settings
    from sahay.explain.methods import MethodInput, get_method
    from sahay.imaging import read_image
    from sahay.models.bundle import load_bundle
    from sahay.models.predictor import Predictor
    from sahay.models.providers import get_provider
    from sahay.services.analyze import analyze
    from sahay.services.demo import build_demo_bundle
    from tests.factories import write_dicom, write_png

    settings = reload_settings()
    rng = np.random.default_rng(0)
    dicom = write_dicom(
        work / "chest.dcm", (rng.random((2048, 2048)) * 4095).astype(np.uint16), bits_stored=12
    )
    png = write_png(work / "image.png", (rng.random((1024, 1024)) * 255).astype(np.uint8))

    start = time.perf_counter()
    demo_dir = build_demo_bundle(settings.models_dir / "sahay-demo-synthetic").path
    demo_build_s = time.perf_counter() - start
    bundles = {"efficientnet-lite0 (demo)": demo_dir, "xrv-densenet121": _xrv_bundle(work)}

    rows = [
        ("read 2048² 16-bit DICOM", _median_ms(lambda: read_image(dicom), args.repeats)),
        ("read 1024² PNG", _median_ms(lambda: read_image(png), args.repeats)),
    ]
    image = read_image(dicom)
    for model_name, folder in bundles.items():
        bundle = load_bundle(folder)
        # The imported xrv model is exported to ONNX at install (onnx extra); the trained demo is not.
        name = f"{model_name} on {Predictor(bundle).runtime}"
        rows.append((f"{name}: load model", _median_ms(lambda b=bundle: Predictor(b), args.repeats)))
        predictor = Predictor(bundle)
        rows.append(
            (
                f"{name}: predict 1 image",
                _median_ms(lambda p=predictor: p.predict([image.pixels]), args.repeats),
            )
        )
        batch = [image.pixels] * 8
        rows.append(
            (
                f"{name}: predict 8 images (per image)",
                _median_ms(lambda p=predictor, b=batch: p.predict(b), args.repeats) / 8,
            )
        )
        prediction = predictor.predict([image.pixels])[0]
        layer = get_provider(bundle.manifest.architecture).cam_layer
        targets = list(range(min(3, len(bundle.manifest.labels))))
        cam_ms = _median_ms(
            lambda p=predictor, pr=prediction, la=layer, t=targets: get_method("gradcam").run(
                MethodInput(p.model, pr.input_tensor, t, la)
            ),
            args.repeats,
        )
        rows.append((f"{name}: Grad-CAM (per finding, {len(targets)} in one batch)", cam_ms / len(targets)))
        rows.append(
            (
                f"{name}: analyze end to end (model loaded)",
                _median_ms(
                    lambda p=predictor, b=bundle: analyze(
                        dicom,
                        model=str(b.path),
                        out_dir=work / "out",
                        settings=settings,
                        force=True,
                        load_predictor=lambda _bundle: p,
                    ),
                    args.repeats,
                ),
            )
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "## analyze",
        "",
        f"`python -m bench.bench_analyze --repeats {args.repeats}`; median of {args.repeats} runs "
        f"after a warm-up, on {platform.machine()} with {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU only.",
        "",
        "| Step | Median (ms) |",
        "|---|---:|",
        *[f"| {step} | {ms:.1f} |" for step, ms in rows],
        "",
        f"Training the demonstration bundle took {demo_build_s:.1f} s. Peak resident memory of the "
        f"benchmark process: {peak_mb:.0f} MB.",
        "",
        "End to end (forced past the out-of-domain check, as the image is random noise) is `analyze` with "
        "its defaults: reading, prediction, and for the 3 most probable positive findings (`--top-k`) the "
        "one-pass CAM, regions and an overlay at display size (long side 1024 px), and writing the files. "
        "The DenseNet bundle has random weights, so all of its 14 findings come out positive; only 3 are "
        "explained. Faithfulness scoring (`--faithfulness`, 8 forward passes a finding plus 2) and the "
        "side-by-side pictures (`--side-by-side`) are asked for, and not in these figures.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        _replace_section(args.write, "## analyze", report)


def _replace_section(path: Path, heading: str, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if heading in text:
        before, _, rest = text.partition(heading)
        following = rest.find("\n## ")
        text = before + body + (rest[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text)


if __name__ == "__main__":
    main()
