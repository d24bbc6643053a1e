"""A short soak: locust's simulated clinicians against a real `sahay serve` on 127.0.0.1.

The documented run (20 users, 5 minutes) is `python -m bench.soak_service`; this one runs the same
script small, so that it cannot rot and so that no request of a normal session fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHORT_RUN = [sys.executable, "-m", "bench.soak_service", "--users", "3", "--seconds", "40", "--no-chat"]


@pytest.mark.slow
def test_a_short_soak_has_no_failed_request(tmp_path: Path) -> None:
    env = {**os.environ, "SAHAY_HOME": str(tmp_path / "unused")}  # the script makes its own home
    done = subprocess.run(
        # 40 s is inside the warm-up minute, when models and indexes load: memory growth is judged
        # by the documented 5-minute run (docs/benchmarks.md), not here.
        [*SHORT_RUN, "--max-growth-mb", "4000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    total = next(line for line in done.stdout.splitlines() if line.startswith("| **all**"))
    requests, failures = (int(cell) for cell in total.split("|")[2:4])
    assert requests > 10 and failures == 0
