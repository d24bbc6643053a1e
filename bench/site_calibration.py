"""Site recalibration against doing nothing (a model's own probabilities and thresholds, as a
TorchXRayVision user keeps its op_threshs), on generated data with a known fault.

The demonstration model is made overconfident (its temperature divided by 8) and the site's
labels carry 15 % noise, so the model's near-0/1 probabilities are wrong at this site. Each method
of `sahay models calibrate` is fitted on 70 % of the patients and measured on the held-back 30 %.
A second part runs `sahay models check-site` on a site where one finding never occurs.

    .venv/bin/python -m bench.site_calibration [--images 1000] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np


def _write_site(root: Path, count: int, noise: float, seed: int, stripes: bool | None = None) -> Path:
    from PIL import Image

    from sahay.training.synthetic import LABELS, make_image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        stripe = bool((index // 2) % 2) if stripes is None else stripes
        image = make_image(rng, 224, disc=bool(index % 2), stripes=stripe)
        name = f"img-{index:04d}.png"
        Image.fromarray(np.round(image.pixels * 255).astype(np.uint8)).save(root / "images" / name)
        labels = np.where(rng.random(len(LABELS)) < noise, 1 - image.targets, image.targets)
        rows.append(
            {
                "path": f"images/{name}",
                "patient_id": f"p{index // 2}",
                **dict(zip(LABELS, labels.astype(int), strict=True)),
            }
        )
    with (root / "site.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "site.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=0.15)
    parser.add_argument("--write", type=Path, help="replace the 'site calibration' section of this file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sahay-bench-site-"))
    os.environ["SAHAY_HOME"] = str(work / "home")
    from sahay.config import reload_settings
    from sahay.models.bundle import MANIFEST_NAME
    from sahay.services.demo import install_demo_bundle
    from sahay.training.recalibrate import calibrate
    from sahay.training.site_check import check_site

    settings = reload_settings()
    demo = install_demo_bundle(settings)
    folder = settings.models_dir / "overconfident"
    shutil.copytree(demo.path, folder)
    calibration = demo.manifest.calibration.model_copy(
        update={"temperature": demo.manifest.calibration.temperature / 8}
    )
    faulty = demo.manifest.model_copy(update={"name": "overconfident", "calibration": calibration})
    (folder / MANIFEST_NAME).write_text(faulty.model_dump_json(indent=2))
    data = _write_site(work / "site", args.images, args.noise, seed=3)

    lines = [
        "## site calibration",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Date: {date.today().isoformat()}.",
        f"Command: `.venv/bin/python -m bench.site_calibration --images {args.images}`",
        "",
        f"{args.images} generated site images, labels with {args.noise:.0%} noise, the demonstration model "
        'made overconfident (temperature / 8). Held-back part: 30 % of patients. "As installed" is the '
        "yardstick: the model's own probabilities and thresholds, as a TorchXRayVision user keeps "
        "op_threshs.",
        "",
        "| method | ECE as installed | ECE after | Brier as installed | Brier after "
        "| sensitivity / specificity after (mean) | fit time |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in ("temperature", "platt", "isotonic"):
        start = time.perf_counter()
        report = calibrate(
            "overconfident",
            data,
            as_name=f"site-{method}",
            method=method,
            settings=settings,
        )  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        s = report.summary
        sens = np.mean([e["after"]["sensitivity"] for e in report.per_label.values()])
        spec = np.mean([e["after"]["specificity"] for e in report.per_label.values()])
        lines.append(
            f"| {method} | {s['ece_before']:.3f} | {s['ece_after']:.3f} | {s['brier_before']:.3f} | "
            f"{s['brier_after']:.3f} | {sens:.2f} / {spec:.2f} | {seconds:.1f} s |"
        )
    before = [e["before"] for e in report.per_label.values()]
    lines += [
        "",
        f"As installed, the mean sensitivity / specificity at the model's own thresholds was "
        f"{np.mean([b['sensitivity'] for b in before]):.2f} / "
        f"{np.mean([b['specificity'] for b in before]):.2f}; "
        "the recalibrated thresholds maximise Youden's J on the fitting part (the default). "
        "With 15 % label noise no threshold reaches much above 0.85 for both.",
    ]
    shifted = work / "shifted"
    _write_site(shifted, 60, 0.0, seed=5, stripes=False)
    start = time.perf_counter()
    checked = check_site("overconfident", shifted / "images", out=work / "check", settings=settings)
    seconds = time.perf_counter() - start
    rates = "; ".join(
        f"{r.label} {r.predicted_rate:.0%} here against {r.reference_prevalence:.0%} in training"
        + (" (flagged)" if r.flagged else "")
        for r in checked.rates
    )
    lines += ["", f"Site check of 60 images where stripes never occur ({seconds:.1f} s): {rates}.", ""]
    text = "\n".join(lines)
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    if args.write:
        from bench.bench_analyze import _replace_section

        _replace_section(args.write, "## site calibration", text)


if __name__ == "__main__":
    main()
