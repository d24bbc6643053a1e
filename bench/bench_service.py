"""Benchmark reports and the web service: time per report format, and API latency under load.

Run on demand (never as a test):

    .venv/bin/python -m bench.bench_service [--repeats 5] [--requests 20] [--write docs/benchmarks.md]

It trains the demonstration model in a temporary SAHAY_HOME, analyses a synthetic in-domain DICOM,
then (1) renders that analysis in every report format ``--repeats`` times, and (2) serves the API
with uvicorn on 127.0.0.1 and measures sign-in, upload-and-analyse, and GET latency from another
thread, sequentially and with 4 clients at once (httpx).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.bench_analyze import _replace_section

PASSWORD = "timing the service 1"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--write", type=Path, help="replace the 'service' section of this markdown file")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sahay-bench-service-"))
    os.environ["SAHAY_HOME"] = str(home)
    from sahay.config import reload_settings
    from sahay.services.demo import install_demo_bundle

    settings = reload_settings()
    install_demo_bundle(settings)
    image = _synthetic_dicom(home / "image.dcm")

    report_rows = _bench_reports(image, home, args.repeats)
    api_rows = _bench_api(image, args.requests)

    cpus = os.cpu_count()
    lines = [
        "## service",
        "",
        f"`python -m bench.bench_service --repeats {args.repeats} --requests {args.requests}`, on "
        f"{platform.machine()} with {cpus} CPUs; the demonstration model (`sahay demo`) and a synthetic "
        "320x320 DICOM. Reports: one analysis rendered in each format, median of the repeats. Service: "
        "`sahay serve`'s app under uvicorn on 127.0.0.1 (1 inference worker), httpx clients in the same "
        "process; upload = POST /api/v1/analyses with heatmaps and faithfulness (the full analysis); "
        "chat = POST /api/v1/analyses/{id}/chat read to its end, grounded.",
        "",
        "| Report format | Median (ms) | Size (KB) |",
        "|---|---:|---:|",
        *[f"| {name} | {ms:.0f} | {kb:.0f} |" for name, ms, kb in report_rows],
        "",
        "| Request | Clients | Requests | p50 (ms) | p95 (ms) | Requests/s |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {name} | {clients} | {n} | {p50:.0f} | {p95:.0f} | {rate:.1f} |"
            for name, clients, n, p50, p95, rate in api_rows
        ],
        "",
        "Sign-in is dominated by Argon2 (argon2-cffi defaults: 64 MiB, 3 passes), on purpose. Uploads queue "
        "for the inference pool (`SAHAY_WORKERS`), so with one worker, four clients wait for each other; "
        "reads do not wait for it.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        _replace_section(args.write, "## service", text)


def _synthetic_dicom(path: Path) -> Path:
    from sahay.training.synthetic import make_image
    from tests.factories import write_dicom

    pixels = make_image(np.random.default_rng(3), 320, disc=True, stripes=False).pixels
    return write_dicom(path, np.rint(pixels * 4095).astype(np.uint16), bits_stored=12, modality="OT")


def _bench_reports(image: Path, home: Path, repeats: int) -> list[tuple[str, float, float]]:
    from sahay.reports import FORMATS
    from sahay.reports.export import export_report
    from sahay.services.analyze import analyze

    out = home / "analysis"
    analyze(image, model="sahay-demo-synthetic", out_dir=out, force=True)
    rows = []
    for name in FORMATS:
        times = []
        written: list[Path] = []
        for _ in range(repeats):
            started = time.perf_counter()
            written = export_report(out / "analysis.json", name, home / f"report-{name}", image=image)
            times.append((time.perf_counter() - started) * 1000)
        size = sum(p.stat().st_size for p in written) / 1024
        rows.append((name, statistics.median(times), size))
    return rows


def _bench_api(image: Path, requests: int) -> list[tuple[str, int, int, float, float, float]]:
    import httpx
    import uvicorn

    from sahay.api.app import create_app
    from sahay.store.accounts import create_user
    from sahay.store.db import session_scope

    with session_scope() as session:
        create_user(session, "bench", PASSWORD)
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/api/v1"
    data = image.read_bytes()

    def sign_in() -> str:
        response = httpx.post(f"{base}/auth/token", data={"username": "bench", "password": PASSWORD})
        response.raise_for_status()
        return str(response.json()["access_token"])

    headers = {"Authorization": f"Bearer {sign_in()}"}
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        client.post("/analyses", files={"image": ("warm.dcm", data)}, data={"model": "sahay-demo-synthetic"})

        def upload() -> None:
            response = client.post(
                "/analyses", files={"image": ("image.dcm", data)}, data={"model": "sahay-demo-synthetic"}
            )
            response.raise_for_status()

        first = client.get("/analyses").json()["items"][0]["id"]

        def read() -> None:
            client.get(f"/analyses/{first}").raise_for_status()

        questions = iter(
            ["What did the analysis find?", "What should we do next?", "What does BI-RADS 4 mean?"] * 1000
        )

        def ask() -> None:  # a grounded chat answer, streamed to its end (server-sent events)
            response = client.post(f"/analyses/{first}/chat", json={"question": next(questions)})
            response.raise_for_status()
            assert "event: done" in response.text

        client.post(f"/analyses/{first}/chat", json={"question": "Warm up: what is a nodule?"})  # the index

        rows = []
        for name, function, count in (
            ("sign in", sign_in, min(requests, 10)),
            ("upload and analyse", upload, requests),
            ("get analysis", read, requests * 5),
            ("chat answer (grounded)", ask, requests * 2),
        ):
            for clients in (1, 4):
                rows.append((name, clients, count, *_timed(function, count, clients)))
    server.should_exit = True
    thread.join(timeout=10)
    return rows


def _timed(function: object, count: int, clients: int) -> tuple[float, float, float]:
    def one(_: int) -> float:
        started = time.perf_counter()
        function()  # type: ignore[operator]
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        samples = list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    p50, p95 = _percentiles(samples)
    return p50, p95, count / elapsed


if __name__ == "__main__":
    main()
