"""Sahay against the script a researcher would otherwise write, in one run, on the same film and model.

The yardstick is bench/xrv_script.py: TorchXRayVision's DICOM reader and preprocessing
(`read_xray_dcm`, `XRayCenterCrop`, `XRayResizer`), its DenseNet121 and pytorch-grad-cam's Grad-CAM
writing full-resolution overlays of the top 3 positive findings (the same number Sahay explains by
default). Sahay runs `sahay analyze` on the same weights (random, seed 0, imported with `sahay models
import` as the NIH release) with its defaults. Sahay runs with torch and, when the CLI has `sahay
models export-onnx`, again after exporting (ONNX Runtime).

Lines (a ratio >1 means Sahay is faster or smaller):
- `end-to-end:` whole processes (imports, model load, read, inference, heatmaps, files), paired runs
  taken in turn, medians; peak RSS from /usr/bin/time -v; output on disk.
- `in-process:` the same work with everything loaded, in one warm process each, medians.
- `inference only:` read, preprocess and classify, no heatmaps, warm.
- `heatmap overhead:` what heatmaps add to inference, in seconds and as a multiple of inference.
- `batch:` `sahay batch` images/s without heatmaps against TorchXRayVision's batch-8 loop
  (bench/batch_throughput.py's) on the same generated folder.

    .venv/bin/python -m bench.compare_xrv [--image RG1_UNCR.dcm] [--repeats 5] [--images 64] \
        [--write docs/benchmarks.md]

The film is the real 1955 x 1841 chest CR RG1_UNCR.dcm of pydicom-data (`pip install pydicom-data`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sahay.models.predictor import Prediction, PredictorCache

HERE = Path(__file__).resolve().parent
SAHAY = str(Path(sys.executable).parent / "sahay")
TARGETS = {
    "torch end-to-end": "at least 1.5x",
    "onnx end-to-end": "at least 3x",
    "heatmap cost": "at most 1.3x inference",
    "peak memory": "at most 1 GB",
    "output": "at most 5 MB",
    "batch": "at least 40 images/s (1.2x the xrv loop)",
}


def find_film() -> Path:
    """RG1_UNCR.dcm from pydicom-data, through pydicom's own lookup or the installed package."""
    import importlib.util
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns when it would have to download the file
        from pydicom.data import get_testdata_file

        found = get_testdata_file("RG1_UNCR.dcm")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("data_store")  # the pydicom-data package's module
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "data" / "RG1_UNCR.dcm").is_file():
            return Path(folder) / "data" / "RG1_UNCR.dcm"
    raise SystemExit("RG1_UNCR.dcm not found: pip install pydicom-data, or give --image PATH")


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one whole process, from /usr/bin/time -v."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    peak = next(
        int(line.split(":")[1]) for line in done.stderr.splitlines() if "Maximum resident set size" in line
    )
    return seconds, peak / 1024


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def has_onnx_export() -> bool:
    shown = subprocess.run([SAHAY, "models", "--help"], capture_output=True, text=True, check=False)
    return "export-onnx" in shown.stdout


def whole_process(film: Path, weights: Path, model: str, work: Path, repeats: int, tag: str) -> dict:
    """Script and `sahay analyze` in turn, ``repeats`` pairs (after one warm-up each)."""
    script, sahay = [], []
    for run in range(repeats + 1):
        script_out, sahay_out = work / f"{tag}-xrv-{run}", work / f"{tag}-sahay-{run}"
        xrv = timed([sys.executable, str(HERE / "xrv_script.py"), str(film), str(script_out), str(weights)])
        ours = timed([SAHAY, "analyze", str(film), "--model", model, "--out", str(sahay_out), "--force"])
        if run:  # the first pair warms the file cache
            script.append((*xrv, size_mb(script_out)))
            sahay.append((*ours, size_mb(sahay_out)))
    overlays = len([p for p in (sahay_out / "heatmaps").glob("*.png") if "side-by-side" not in p.name])
    return {
        "xrv_s": statistics.median(s for s, _, _ in script),
        "sahay_s": statistics.median(s for s, _, _ in sahay),
        "ratio": statistics.median(x[0] / s[0] for x, s in zip(script, sahay, strict=True)),
        "xrv_mb": statistics.median(m for _, m, _ in script),
        "sahay_mb": statistics.median(m for _, m, _ in sahay),
        "xrv_out": script[-1][2],
        "sahay_out": sahay[-1][2],
        "xrv_overlays": len(list(script_out.glob("*.png"))),
        "sahay_overlays": overlays,
    }


def in_process(which: str, film: Path, weights: Path, model: str, work: Path, repeats: int) -> dict:
    """Warm timings (median of ``repeats``) in a fresh process of their own, as JSON."""
    command = [sys.executable, "-m", "bench.compare_xrv", "--in-process", which, "--image", str(film)]
    command += ["--weights", str(weights), "--model", model, "--work", str(work), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=HERE.parent)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _median_seconds(action, repeats: int) -> float:  # type: ignore[no-untyped-def]
    action()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure_in_process(args: argparse.Namespace) -> None:
    work: Path = args.work
    counter = iter(range(10_000))
    if args.in_process == "xrv":
        from bench import xrv_script

        network = xrv_script.load(str(args.weights))
        full = _median_seconds(
            lambda: xrv_script.explain(network, str(args.image), _fresh(work, "xrv-ip", next(counter))),
            args.repeats,
        )
        inference = _median_seconds(lambda: xrv_script.predict(network, str(args.image)), args.repeats)
    else:
        from sahay.explain.options import ExplainOptions
        from sahay.models.predictor import PredictorCache
        from sahay.services.analyze import analyze

        cache = PredictorCache()

        def timed_analysis(**options: object) -> float:
            return _median_seconds(
                lambda: analyze(
                    args.image,
                    model=args.model,
                    out_dir=_fresh(work, "sahay-ip", next(counter)),
                    force=True,
                    load_predictor=cache,
                    **options,
                ),
                args.repeats,
            )

        full = timed_analysis()
        inference = timed_analysis(heatmaps=False)
        scored = timed_analysis(explain=ExplainOptions(faithfulness=True))  # the opt-in score
        model_s, maps_s = _model_work(args.image, args.model, cache, args.repeats)
        figures = {"full_s": full, "inference_s": inference, "scored_s": scored}
        print(json.dumps({**figures, "model_s": model_s, "maps_s": maps_s}))
        return
    print(json.dumps({"full_s": full, "inference_s": inference}))


def _model_work(image_path: Path, model: str, cache: PredictorCache, repeats: int) -> tuple[float, float]:
    """The heatmaps' own cost: classify a decoded image, then classify and make its maps (top 3,
    regions in words), with no files; what the issue's "heatmap cost" target compares."""
    from sahay.config import get_settings
    from sahay.explain.explainer import explain_prediction
    from sahay.imaging import read_image
    from sahay.models.registry import find_bundle
    from sahay.services.analyze import heatmap_targets

    predictor = cache(find_bundle(model, get_settings()))
    image = read_image(image_path)

    def classify() -> Prediction:
        return predictor.predict([image.pixels])[0]

    def classify_and_explain() -> None:
        prediction = classify()
        explain_prediction(predictor, prediction, image, heatmap_targets(prediction.findings))

    return _median_seconds(classify, repeats), _median_seconds(classify_and_explain, repeats)


def _fresh(work: Path, tag: str, number: int) -> Path:
    folder = work / f"{tag}-{number}"
    folder.mkdir(parents=True)
    return folder


def batch_rates(model: str, work: Path, images: int, tag: str) -> tuple[float, float]:
    """`sahay batch` images/s (as it reports them) and the xrv batch-8 loop's, on the same folder."""
    from bench.batch_throughput import XRV_LOOP, _images

    folder = work / "batch-images"
    if not folder.exists():
        _images(folder, images, 1024)
    done = subprocess.run(
        [SAHAY, "batch", str(folder), "--out", str(work / f"{tag}-batch.csv"), "--model", model, "--force"],
        capture_output=True,
        text=True,
        check=True,
    )
    ours = float(done.stdout.split("images/s")[0].split()[-1])
    loop = subprocess.run(
        [sys.executable, "-c", XRV_LOOP, str(folder)], capture_output=True, text=True, check=True
    )
    _startup, seconds, rows = loop.stdout.split()
    return ours, int(rows) / float(seconds)


def engine_lines(
    engine: str, e2e: dict, warm_xrv: dict, warm_sahay: dict, rates: tuple[float, float]
) -> list[str]:
    xrv_overhead = warm_xrv["full_s"] - warm_xrv["inference_s"]
    sahay_overhead = warm_sahay["full_s"] - warm_sahay["inference_s"]
    return [
        f"[sahay with {engine}]",
        f"end-to-end: {e2e['ratio']:.2f}x (xrv script {e2e['xrv_s']:.2f} s, "
        f"sahay analyze {e2e['sahay_s']:.2f} s, paired medians); "
        f"peak memory {e2e['xrv_mb']:.0f} MB vs {e2e['sahay_mb']:.0f} MB "
        f"({e2e['xrv_mb'] / e2e['sahay_mb']:.2f}x); "
        f"output {e2e['xrv_out']:.1f} MB vs {e2e['sahay_out']:.1f} MB "
        f"({e2e['xrv_out'] / e2e['sahay_out']:.1f}x); "
        f"overlays {e2e['xrv_overlays']} vs {e2e['sahay_overlays']}",
        f"in-process: {warm_xrv['full_s'] / warm_sahay['full_s']:.2f}x (xrv {warm_xrv['full_s']:.3f} s, "
        f"sahay {warm_sahay['full_s']:.3f} s, warm, with heatmaps)",
        f"inference only: {warm_xrv['inference_s'] / warm_sahay['inference_s']:.2f}x "
        f"(xrv {warm_xrv['inference_s']:.3f} s, sahay {warm_sahay['inference_s']:.3f} s, read + classify)",
        f"heatmap overhead: {xrv_overhead / sahay_overhead:.2f}x (xrv +{xrv_overhead:.3f} s = "
        f"{warm_xrv['full_s'] / warm_xrv['inference_s']:.2f}x its inference, sahay +{sahay_overhead:.3f} s = "
        f"{warm_sahay['full_s'] / warm_sahay['inference_s']:.2f}x its inference)",
        *_faithfulness_line(warm_sahay),
        f"batch: {rates[0] / rates[1]:.2f}x (sahay batch {rates[0]:.1f} images/s, xrv batch-8 loop "
        f"{rates[1]:.1f} images/s, no heatmaps)",
    ]


def _faithfulness_line(warm: dict) -> list[str]:
    """What the opt-in faithfulness score (``--faithfulness``) adds, when the run measured it."""
    if "scored_s" not in warm:
        return []
    faithfulness = warm["scored_s"] - warm["full_s"]
    return [
        f"with --faithfulness: sahay {warm['scored_s']:.3f} s; the score (deletion and insertion "
        f"curves) adds {faithfulness:.3f} s"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", type=Path, help="default: RG1_UNCR.dcm from pydicom-data")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=64, help="generated 1024 px PNGs for the batch part")
    parser.add_argument("--write", type=Path, help="replace the 'compare xrv' section of this markdown file")
    parser.add_argument("--in-process", choices=["xrv", "sahay"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        _measure_in_process(args)
        return

    film = args.image or find_film()
    work = Path(tempfile.mkdtemp(prefix="sahay-bench-xrv-"))
    os.environ["SAHAY_HOME"] = str(work / "home")
    from bench.bench_analyze import _replace_section, _xrv_bundle
    from sahay.models.catalog import catalog

    model = _xrv_bundle(work).name
    weights = work / catalog()["xrv-densenet121-res224-nih"].filename  # the file Sahay imported
    engines = ["torch"] + (["onnx"] if has_onnx_export() else [])
    printed: list[str] = []
    figures: dict[str, dict] = {}
    for engine in engines:
        os.environ["SAHAY_RUNTIME"] = engine  # every Sahay process below, and their in-process runs
        if engine == "onnx":  # the import exported it already when the onnx extra is there; make sure
            subprocess.run([SAHAY, "models", "export-onnx", model], check=True, capture_output=True)
        e2e = whole_process(film, weights, model, work, args.repeats, engine)
        warm_xrv = in_process("xrv", film, weights, model, work / f"{engine}-ip", args.repeats)
        warm_sahay = in_process("sahay", film, weights, model, work / f"{engine}-ip", args.repeats)
        rates = batch_rates(model, work, args.images, engine)
        lines = engine_lines(engine, e2e, warm_xrv, warm_sahay, rates)
        print("\n".join(lines), flush=True)
        printed += lines
        figures[engine] = {"e2e": e2e, "xrv": warm_xrv, "sahay": warm_sahay, "rates": rates}
    if not args.write:
        return
    _replace_section(args.write, "## compare xrv", section(film, args, figures))


def section(film: Path, args: argparse.Namespace, figures: dict[str, dict]) -> str:
    lines = [
        "## compare xrv",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, Python "
        f"{platform.python_version()}. Date: {date.today().isoformat()}.",
        f"Command: `.venv/bin/python -m bench.compare_xrv --repeats {args.repeats} --images {args.images}`",
        "",
        f"The real {film.name} (1955 x 1841 chest CR, pydicom-data); TorchXRayVision DenseNet121 with random "
        "weights (seed 0) in both. The yardstick is `bench/xrv_script.py` (TorchXRayVision's reader and "
        "transforms, pytorch-grad-cam Grad-CAM, full-resolution overlays of the top 3 positives); Sahay runs "
        "`sahay analyze --force` with its defaults (top 3, display-size overlays, no faithfulness score, "
        "no side-by-side pictures), under `SAHAY_RUNTIME=torch` and then `SAHAY_RUNTIME=onnx`. Ratios >1: "
        f"Sahay faster or smaller. Whole processes: {args.repeats} pairs in turn after a warm-up pair, "
        "medians.",
        "",
        "| | engine | TorchXRayVision script | Sahay | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for engine, f in figures.items():
        e2e, xrv, ours, rates = f["e2e"], f["xrv"], f["sahay"], f["rates"]
        lines += [
            f"| end to end (whole process) | {engine} | {e2e['xrv_s']:.2f} s | {e2e['sahay_s']:.2f} s "
            f"| {e2e['ratio']:.2f}x | {TARGETS[engine + ' end-to-end']} |",
            f"| in-process, with heatmaps | {engine} | {xrv['full_s']:.3f} s | {ours['full_s']:.3f} s "
            f"| {xrv['full_s'] / ours['full_s']:.2f}x | |",
            f"| inference only (read + classify) | {engine} | {xrv['inference_s']:.3f} s "
            f"| {ours['inference_s']:.3f} s | {xrv['inference_s'] / ours['inference_s']:.2f}x | |",
            f"| with heatmaps / inference only | {engine} | {xrv['full_s'] / xrv['inference_s']:.2f}x "
            f"| {ours['full_s'] / ours['inference_s']:.2f}x | | |",
            f"| maps / classification (model work, no files) | {engine} | | "
            f"{ours['maps_s'] / ours['model_s']:.2f}x ({ours['model_s'] * 1000:.0f} ms, "
            f"{ours['maps_s'] * 1000:.0f} ms) | | {TARGETS['heatmap cost']} |",
            f"| `--faithfulness` (opt-in) adds | {engine} | "
            f"| {ours['scored_s'] - ours['full_s']:.3f} s | | |",
            f"| peak memory | {engine} | {e2e['xrv_mb']:.0f} MB | {e2e['sahay_mb']:.0f} MB "
            f"| {e2e['xrv_mb'] / e2e['sahay_mb']:.2f}x | {TARGETS['peak memory']} |",
            f"| output on disk | {engine} | {e2e['xrv_out']:.1f} MB ({e2e['xrv_overlays']} overlays) "
            f"| {e2e['sahay_out']:.1f} MB ({e2e['sahay_overlays']} overlays) "
            f"| {e2e['xrv_out'] / e2e['sahay_out']:.1f}x | {TARGETS['output']} |",
            f"| batch, images/s, no heatmaps ({args.images} PNGs, 1024 px) | {engine} | {rates[1]:.1f} "
            f"(batch-8 loop) | {rates[0]:.1f} (`sahay batch`) | {rates[0] / rates[1]:.2f}x "
            f"| {TARGETS['batch']} |",
        ]
    if "onnx" not in figures:
        lines += ["", "No ONNX rows: this CLI has no `sahay models export-onnx` yet."]
    lines += [
        "",
        "The heatmap row is the time with heatmaps over inference only; the batch images/s are after "
        "start-up (Sahay's own summary figure; the loop's time after its model is built).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
