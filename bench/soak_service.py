"""Soak the web service: many users for minutes with locust (headless, 127.0.0.1 only), and watch
the server's memory from start to end.

    .venv/bin/python -m bench.soak_service [--users 20] [--seconds 300] [--no-chat] \
        [--write docs/benchmarks.md]

It starts `sahay serve` as its own process on a free port of 127.0.0.1 with a temporary SAHAY_HOME
(the demonstration model installed, one account per simulated user), then runs locust's users in
this process. Each user signs in once, then loops over: upload and analyse a synthetic image, read
the analysis, list analyses, look for similar cases, ask a chat question (SSE) and download the
HTML report. The server's resident memory (VmRSS) is sampled every 5 s. Exit code 1 when any
request failed (a 4xx other than 429, or any 5xx) or memory at the end exceeds the start by more
than ``--max-growth-mb`` after the warm-up minute.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# locust patches the standard library for gevent when imported: that must come before the rest.
import locust
import numpy as np

PASSWORD = "soaking the service 1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _png() -> bytes:
    from PIL import Image

    from sahay.training.synthetic import make_image

    pixels = make_image(np.random.default_rng(7), 320, disc=True, stripes=False).pixels
    buffer = io.BytesIO()
    Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def prepare_home(users: int) -> Path:
    """A SAHAY_HOME with the demonstration model and one account per simulated user."""
    home = Path(tempfile.mkdtemp(prefix="sahay-soak-"))
    os.environ["SAHAY_HOME"] = str(home)
    from sahay.config import reload_settings
    from sahay.services.accounts import create_user
    from sahay.services.demo import install_demo_bundle

    settings = reload_settings()
    install_demo_bundle(settings)
    for number in range(users):
        create_user(f"soak-{number}", PASSWORD, "clinician", settings=settings)
    return home


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SAHAY_HOME": str(home)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "sahay"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not start within 120 s")


def run_soak(port: int, users: int, seconds: float, chat: bool) -> Any:
    """Run locust's users against the server; returns locust's stats."""
    import gevent
    from locust import HttpUser, between, task
    from locust.env import Environment

    image = _png()
    numbers = iter(range(users))

    class Clinician(HttpUser):
        host = f"http://127.0.0.1:{port}"
        wait_time = between(0.5, 2.0)

        def on_start(self) -> None:
            name = f"soak-{next(numbers)}"
            answer = self.client.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
            self.client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
            self.analysis_id: str | None = None

        @task(3)
        def analyse(self) -> None:
            with self.client.post(
                "/api/v1/analyses",
                files={"image": ("soak.png", image, "image/png")},
                data={"model": "sahay-demo-synthetic"},
                name="/analyses",
                catch_response=True,
            ) as answer:
                if answer.status_code == 429:  # this user's fair share is full: expected, not an error
                    answer.success()
                elif answer.status_code == 201:
                    self.analysis_id = answer.json()["id"]

        @task(3)
        def read(self) -> None:
            if self.analysis_id:
                self.client.get(f"/api/v1/analyses/{self.analysis_id}", name="/analyses/{id}")
            self.client.get("/api/v1/analyses?limit=20", name="/analyses")

        @task(2)
        def similar(self) -> None:
            if self.analysis_id:
                with self.client.get(
                    f"/api/v1/analyses/{self.analysis_id}/similar",
                    name="/analyses/{id}/similar",
                    catch_response=True,
                ) as answer:
                    if answer.status_code == 429:
                        answer.success()

        @task(1)
        def ask(self) -> None:
            if chat and self.analysis_id:
                self.client.post(
                    f"/api/v1/analyses/{self.analysis_id}/chat",
                    json={"question": "What does the heatmap show?"},
                    name="/analyses/{id}/chat",
                )

        @task(1)
        def report(self) -> None:
            if self.analysis_id:
                self.client.get(
                    f"/api/v1/analyses/{self.analysis_id}/reports/html",
                    name="/analyses/{id}/reports/html",
                )

    environment = Environment(user_classes=[Clinician])
    runner = environment.create_local_runner()
    runner.start(users, spawn_rate=max(1, users / 10))
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    return environment.stats


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--no-chat", dest="chat", action="store_false")
    parser.add_argument("--max-growth-mb", type=float, default=200.0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    home = prepare_home(args.users)
    port = _free_port()
    server = start_server(home, port)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            samples.append((time.monotonic() - started, _rss_mb(server.pid)))
            stop.wait(5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stats = run_soak(port, args.users, args.seconds, args.chat)
    finally:
        stop.set()
        sampler.join()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)

    warm = [rss for at, rss in samples if at >= min(60.0, args.seconds / 5)] or [s[1] for s in samples]
    start_mb, end_mb, peak_mb = warm[0], warm[-1], max(rss for _, rss in samples)
    rows = []
    for entry in sorted(stats.entries.values(), key=lambda e: e.name):
        p50, p95 = (entry.get_response_time_percentile(q) for q in (0.5, 0.95))
        rows.append(
            f"| {entry.method} {entry.name} | {entry.num_requests} | {entry.num_failures} "
            f"| {p50:.0f} | {p95:.0f} |"
        )
    total = stats.total
    lines = [
        "## soak",
        "",
        f"`python -m bench.soak_service --users {args.users} --seconds {args.seconds:g}"
        f"{'' if args.chat else ' --no-chat'}`; locust {locust.__version__} headless against "
        f"`sahay serve` on 127.0.0.1 ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"{datetime.date.today().isoformat()}); the demonstration model, 1 inference worker.",
        "",
        "| Request | Requests | Failures | p50 (ms) | p95 (ms) |",
        "|---|---:|---:|---:|---:|",
        *rows,
        f"| **all** | {total.num_requests} | {total.num_failures} | "
        f"{total.get_response_time_percentile(0.5):.0f} | {total.get_response_time_percentile(0.95):.0f} |",
        "",
        f"Server memory (VmRSS) after the warm-up: {start_mb:.0f} MB, at the end {end_mb:.0f} MB "
        f"(median {statistics.median(warm):.0f} MB, peak {peak_mb:.0f} MB over the run). A 429 (a user's "
        "fair share of the model in use) counts as expected, not as a failure.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        from bench.bench_analyze import _replace_section

        _replace_section(args.write, "## soak", report)
    failed = total.num_failures > 0 or end_mb - start_mb > args.max_growth_mb
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
