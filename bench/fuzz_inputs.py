"""Fuzz the image reader and the upload API with thousands of broken files, and count the outcomes.

Run on demand (never as a test; tests/fuzz runs a few dozen of the same cases in CI):

    .venv/bin/python -m bench.fuzz_inputs [--cases 10000] [--seed 0] [--timeout 10] [--targets reader,api]

Case ``i`` is ``make_case(random.Random(f"{seed}:{i}"))`` from tests/fuzz/inputs.py (a valid DICOM,
PNG, JPEG or TIFF file through bit flips, truncation, corrupt lengths, huge dimensions, odd DICOM
attributes, deflate bombs or deep nesting), so ``--only i`` replays one. Each case goes to
``read_image`` and to ``POST /api/v1/analyses`` (a FastAPI TestClient on a temporary SAHAY_HOME
with the demonstration model, ``force`` set so that decodable images are analysed and explained).
A worker process runs them; a case past ``--timeout`` seconds is a hang: the worker is killed and
restarted. Printed: per target, the count of each outcome (ok; BadInput and kin, or 4xx by
status; uncaught exceptions by type; 5xx; hangs; crashes), the rate, and the slowest cases. The
inputs behind failures are saved under ``--save`` (default test-artifacts/fuzz/).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import sys
import tempfile
import time
import traceback
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAILURES = ("uncaught", "5xx", "hang", "crash")


def _case(seed: int, index: int) -> Any:
    from tests.fuzz.inputs import make_case

    return make_case(random.Random(f"{seed}:{index}"))


# --- the worker --------------------------------------------------------------------------------------


class _Targets:
    """What the worker holds: settings for the reader, and a running app with a signed-in user."""

    def __init__(self, bundle: Path, limits: dict[str, Any], targets: tuple[str, ...]) -> None:
        from sahay.config import Settings

        self.reader_settings = Settings(**limits)
        self.folder = Path(tempfile.mkdtemp(prefix="sahay-fuzz-"))
        self.client: Any = None
        if "api" in targets:
            self._start_api(bundle, limits)

    def _start_api(self, bundle: Path, limits: dict[str, Any]) -> None:
        from fastapi.testclient import TestClient

        from sahay.api.app import create_app
        from sahay.config import Settings
        from sahay.models.registry import import_path
        from sahay.store.accounts import create_user
        from sahay.store.db import session_scope

        settings = Settings(
            home=self.folder / "home",
            **limits,
            model_mirror="http://127.0.0.1:9/unreachable",
            database_url=None,
            qdrant_url=None,
            llm="grounded",
            web_search_url=None,
            secret_key=None,
        )
        import_path(bundle, settings)
        self.client = TestClient(create_app(settings), raise_server_exceptions=False)
        self.client.__enter__()
        with session_scope(settings) as session:
            create_user(session, "fuzzer", "fuzzing the uploads 1", "clinician")
        self._sign_in()
        self.model = bundle.name

    def _sign_in(self) -> None:
        token = self.client.post(
            "/api/v1/auth/token", data={"username": "fuzzer", "password": "fuzzing the uploads 1"}
        )
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def reader(self, name: str, data: bytes) -> tuple[str, str]:
        from sahay.errors import SahayError
        from sahay.imaging import read_image

        path = self.folder / name
        path.write_bytes(data)
        try:
            read_image(path, settings=self.reader_settings)
        except SahayError as exc:
            return type(exc).__name__, ""
        except Exception as exc:
            return f"uncaught {type(exc).__name__}", "".join(traceback.format_exception(exc)[-3:])[-1500:]
        finally:
            path.unlink(missing_ok=True)
        return "ok", ""

    def api(self, name: str, data: bytes) -> tuple[str, str]:
        response = self._upload(name, data)
        if response.status_code == 401:  # the access token outlived its 15 minutes: sign in again
            self._sign_in()
            response = self._upload(name, data)
        status = response.status_code
        if status in (201, 202):
            return "ok", ""
        if 400 <= status < 500:
            return f"4xx {status}", ""
        return f"5xx {status}", response.text[:1500]

    def _upload(self, name: str, data: bytes) -> Any:
        return self.client.post(
            "/api/v1/analyses",
            files={"image": (name, data, "application/octet-stream")},
            data={"model": self.model, "force": "true"},
            headers=self.headers,
        )


def _worker(connection: Connection, bundle: str, limits: dict[str, Any], targets: tuple[str, ...]) -> None:
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)
    held = _Targets(Path(bundle), limits, targets)
    connection.send(("ready",))
    while True:
        message = connection.recv()
        if message is None:
            return
        index, name, data = message
        for target in targets:
            connection.send(("start", index, target))
            started = time.perf_counter()
            outcome, detail = getattr(held, target)(name, data)
            connection.send(("done", index, target, outcome, detail, time.perf_counter() - started))


class _Worker:
    def __init__(self, bundle: Path, limits: dict[str, Any], targets: tuple[str, ...]) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_worker, args=(child, str(bundle), limits, targets), daemon=True
        )
        self.process.start()
        if not self.connection.poll(600) or self.connection.recv() != ("ready",):
            raise RuntimeError("the fuzz worker did not start")

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


# --- the run ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first case index (to continue a run)")
    parser.add_argument("--only", type=int, action="append", help="run only this case index (repeatable)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a case may take per target")
    parser.add_argument("--targets", default="reader,api", help="comma-separated: reader, api")
    parser.add_argument("--max-file-mb", type=float, default=8.0, help="SAHAY_MAX_FILE_MB for both targets")
    parser.add_argument("--max-pixels", type=int, default=4_000_000, help="SAHAY_MAX_PIXELS for both targets")
    parser.add_argument("--save", type=Path, default=ROOT / "test-artifacts" / "fuzz")
    parser.add_argument("--progress", type=int, default=500, help="print counts every N cases")
    args = parser.parse_args()
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    if set(targets) - {"reader", "api"}:
        parser.error(f"unknown target in {args.targets!r}; use reader and/or api")
    indices = args.only or list(range(args.start, args.start + args.cases))

    from sahay.services.demo import build_demo_bundle

    scratch = Path(tempfile.mkdtemp(prefix="sahay-fuzz-bench-"))
    bundle = scratch / "sahay-demo-synthetic"
    if "api" in targets:
        print(f"training the demonstration bundle in {bundle} ...", flush=True)
        build_demo_bundle(bundle, train_images=96, val_images=48, seed=0)
    # The limits of tests/fuzz: bombs meet them quickly; an image within them is analysed in seconds.
    limits = {"max_file_mb": args.max_file_mb, "max_pixels": args.max_pixels}
    worker = _Worker(bundle, limits, targets)
    counts: dict[str, collections.Counter[str]] = {t: collections.Counter() for t in targets}
    slowest: list[tuple[float, str, int, str]] = []
    failures: list[tuple[int, str, str, str, str]] = []
    started = time.perf_counter()
    try:
        for done, index in enumerate(indices, start=1):
            case = _case(args.seed, index)
            worker.connection.send((index, case.name, case.data))
            for target in targets:
                outcome, detail, seconds = _await(worker, target, args.timeout)
                if outcome in ("hang", "crash"):
                    worker.stop()
                    worker = _Worker(bundle, limits, targets)
                    for skipped in targets[targets.index(target) + 1 :]:
                        counts[skipped]["not run (worker restarted)"] += 1
                counts[target][outcome] += 1
                slowest = sorted([*slowest, (seconds, target, index, case.recipe)], reverse=True)[:10]
                if outcome.split()[0] in FAILURES:
                    failures.append((index, target, outcome, case.recipe, detail))
                    _save(args.save, args.seed, index, case)
                if outcome in ("hang", "crash"):
                    break
            if args.progress and done % args.progress == 0:
                _report(counts, done, time.perf_counter() - started, final=False)
    finally:
        worker.connection.send(None)
        worker.stop()
    _report(counts, len(indices), time.perf_counter() - started, final=True)
    print("\nslowest cases (seconds, target, index, recipe):")
    for seconds, target, index, recipe in slowest:
        print(f"  {seconds:7.2f}  {target:6}  {index:6}  {recipe}")
    if failures:
        print(f"\nfailures ({len(failures)}; inputs saved under {args.save}):")
        for index, target, outcome, recipe, detail in failures[:30]:
            print(f"  case {index} {target}: {outcome} [{recipe}]")
            if detail:
                print("    " + detail.strip().replace("\n", "\n    ")[-800:])
    sys.exit(1 if failures else 0)


def _await(worker: _Worker, target: str, timeout: float) -> tuple[str, str, float]:
    """The outcome of ``target`` for the case in flight: ("hang", ...) past the timeout."""
    deadline = time.perf_counter() + timeout
    while True:
        left = deadline - time.perf_counter()
        try:
            if left <= 0 or not worker.connection.poll(left):
                return "hang", f"no answer within {timeout:g} s", timeout
            message = worker.connection.recv()
        except (EOFError, OSError):
            return "crash", f"the worker died (exit code {worker.process.exitcode})", 0.0
        if message[0] == "done" and message[2] == target:
            _, _, _, outcome, detail, seconds = message
            return outcome, detail, seconds


def _save(folder: Path, seed: int, index: int, case: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed{seed}-case{index}{Path(case.name).suffix}").write_bytes(case.data)


def _report(counts: dict[str, collections.Counter[str]], cases: int, seconds: float, *, final: bool) -> None:
    when = "final" if final else "so far"
    print(f"\n{when}: {cases:,} cases in {seconds:,.0f} s ({cases / max(seconds, 1e-9):.1f} cases/s)")
    for target, counter in counts.items():
        failures = sum(n for outcome, n in counter.items() if outcome.split()[0] in FAILURES)
        print(f"  {target}: {failures} failures")
        for outcome, number in sorted(counter.items(), key=lambda item: (-item[1], item[0])):
            print(f"    {number:7,}  {outcome}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
