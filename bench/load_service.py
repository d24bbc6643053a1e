"""Load `sahay serve` with locust (headless, 127.0.0.1) at 1, 5 and 20 users, and compare its
throughput with `sahay batch` on the same machine, model and image.

    .venv/bin/python -m bench.load_service [--users 1 5 20] [--seconds 60] [--images 40] \
        [--write docs/benchmarks.md]

The server runs as its own process (bench/soak_service.py starts it: a temporary SAHAY_HOME, the
demonstration model, one account per user, 1 inference worker). Every user signs in before the
clock starts, then posts the same 320 x 320 synthetic PNG to POST /api/v1/analyses (a full analysis:
classification, the one-pass CAM of the top findings, overlays, stored) again and again with no pause, so
the server is never idle. Per level: analyse requests, p50 and p99, errors (a 429, the user's fair
share of the model, is counted apart), analyses per second, and the server's peak memory (its single
process holds the inference thread pool; VmRSS sampled every 0.5 s). `sahay batch` then classifies
the same image (copies) with the same model, with and without heatmaps, and the ratio is printed.
"""

from __future__ import annotations

# locust patches the standard library for gevent when imported: that must come before the rest.
import locust  # isort: skip

import argparse
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.soak_service import PASSWORD, _free_port, _png, _rss_mb, prepare_home, start_server

MODEL = "sahay-demo-synthetic"


@dataclass
class Level:
    users: int
    seconds: float
    requests: int
    analysed: int
    refused: int
    errors: int
    p50_ms: float
    p99_ms: float
    peak_mb: float

    @property
    def per_second(self) -> float:
        return self.analysed / self.seconds


def tokens(port: int, users: int) -> list[str]:
    """Sign every account in before the clock starts (Argon2 is slow on purpose)."""
    import httpx

    answers = [
        httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/token",
            data={"username": f"soak-{number}", "password": PASSWORD},
            timeout=60,
        )
        for number in range(users)
    ]
    return [answer.json()["access_token"] for answer in answers]


def run_level(port: int, bearer: list[str], users: int, seconds: float, server_pid: int) -> Level:
    import gevent
    from locust import HttpUser, constant, task
    from locust.env import Environment

    image = _png()
    handed = iter(bearer[:users])
    outcome = {"analysed": 0, "refused": 0}

    class Clinician(HttpUser):
        host = f"http://127.0.0.1:{port}"
        wait_time = constant(0)

        def on_start(self) -> None:
            self.client.headers["Authorization"] = f"Bearer {next(handed)}"

        @task
        def analyse(self) -> None:
            with self.client.post(
                "/api/v1/analyses",
                files={"image": ("load.png", image, "image/png")},
                data={"model": MODEL},
                name="analyse",
                catch_response=True,
            ) as answer:
                if answer.status_code == 429:  # this user's fair share is in use: counted apart
                    outcome["refused"] += 1
                    answer.success()
                elif answer.status_code == 201:
                    outcome["analysed"] += 1

    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb(server_pid))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    environment = Environment(user_classes=[Clinician])
    runner = environment.create_local_runner()
    sampler.start()
    started = time.monotonic()
    runner.start(users, spawn_rate=users)
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    entry = environment.stats.get("analyse", "POST")
    return Level(
        users=users,
        seconds=elapsed,
        requests=entry.num_requests,
        analysed=outcome["analysed"],
        refused=outcome["refused"],
        errors=entry.num_failures,
        p50_ms=entry.get_response_time_percentile(0.5) or 0.0,
        p99_ms=entry.get_response_time_percentile(0.99) or 0.0,
        peak_mb=peak[0],
    )


def batch_rate(home: Path, images: int, heatmaps: bool) -> float:
    """`sahay batch` images/s (its own summary figure) on copies of the uploaded image."""
    folder = home / "batch-images"
    if not folder.exists():
        folder.mkdir()
        image = _png()
        for number in range(images):
            (folder / f"image-{number:04d}.png").write_bytes(image)
    out = home / f"batch-{heatmaps}.csv"
    command = [str(Path(sys.executable).parent / "sahay"), "batch", str(folder), "--out", str(out)]
    command += ["--model", MODEL] + (["--heatmaps", str(home / "batch-maps")] if heatmaps else [])
    done = subprocess.run(
        command, env={**os.environ, "SAHAY_HOME": str(home)}, capture_output=True, text=True, check=True
    )
    out.unlink()
    shutil.rmtree(home / "batch-maps", ignore_errors=True)
    return float(done.stdout.split("images/s")[0].split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--images", type=int, default=40, help="images for the `sahay batch` yardstick")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    home = prepare_home(max(args.users))
    port = _free_port()
    server = start_server(home, port)
    try:
        bearer = tokens(port, max(args.users))
        run_level(port, bearer, 1, 10, server.pid)  # warm-up: the model loads, caches fill
        levels = [run_level(port, bearer, users, args.seconds, server.pid) for users in args.users]
    finally:
        server.send_signal(signal.SIGINT)  # it finishes the analyses still queued, then stops
        try:
            server.wait(timeout=180)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    plain = batch_rate(home, args.images, heatmaps=False)
    explained = batch_rate(home, args.images, heatmaps=True)

    rows = [
        f"| {lv.users} | {lv.requests} | {lv.analysed} | {lv.refused} | {lv.errors} | {lv.p50_ms:.0f} "
        f"| {lv.p99_ms:.0f} | {lv.per_second:.2f} | {lv.per_second / plain:.0%} "
        f"| {lv.per_second / explained:.0%} "
        f"| {lv.peak_mb:.0f} |"
        for lv in levels
    ]
    lines = [
        "## load",
        "",
        f"`python -m bench.load_service --users {' '.join(map(str, args.users))} --seconds {args.seconds:g} "
        f"--images {args.images}`; locust {locust.__version__} headless against `sahay serve` on 127.0.0.1 "
        f"({platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, "
        f"{datetime.date.today().isoformat()}); the demonstration model, 1 inference worker. Each user "
        "posts the same 320 x 320 PNG for a full analysis (overlays of the top 3 findings included, no "
        "faithfulness score: the API's defaults) with no pause.",
        "",
        "| Users | Requests | Analysed | 429 | Errors | p50 (ms) | p99 (ms) | Analyses/s "
        "| vs batch | vs batch with heatmaps | Server peak (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"`sahay batch` on {args.images} copies of the same image with the same model: {plain:.1f} images/s "
        f"without heatmaps, {explained:.1f} with `--heatmaps` (top 3), once its model is loaded. Each "
        'request makes heatmaps, so the like-for-like column is "vs batch with heatmaps". Target of '
        "issue 17: 0 errors at 20 users and at least 80 % of `sahay batch`'s throughput. A 429 answers "
        "a user whose fair share of "
        "the model is in use; it is not an error.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        from bench.bench_analyze import _replace_section

        _replace_section(args.write, "## load", report)
    sys.exit(1 if any(level.errors for level in levels) else 0)


if __name__ == "__main__":
    main()
