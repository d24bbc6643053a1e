"""Fuzzing the three doors with broken image files (tests/fuzz/inputs.py makes them).

The properties, whatever the bytes:

- ``read_image`` returns or raises a SahayError (BadInput and its kin), nothing else;
- ``deidentify_path`` (DICOM only) writes or raises a SahayError;
- ``sahay analyze`` in-process exits 0 or 2, never 1 (an internal error) or with a traceback;
- ``POST /api/v1/analyses`` answers 201, 202 or a 4xx, never a 5xx;
- and no case takes longer than the deadline: 10 s (SAHAY_FUZZ_DEADLINE_S) to read or
  de-identify a file, twice that for a door, which also loads a model and analyses the image on
  what may be a busy CI machine. A hang fails the test through its pytest timeout.

CI runs a small count: SAHAY_FUZZ_EXAMPLES (default 60) examples in all, shared between the
targets. For a long run, raise it, or use ``bench/fuzz_inputs.py``, which runs thousands of cases
and counts the outcomes. A failure prints the case's recipe (seed and mutations) and a
``@reproduce_failure`` line that replays it exactly.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from sahay.cli import main
from sahay.config import Settings, reload_settings
from sahay.errors import SahayError
from sahay.imaging import read_image
from sahay.imaging.deid import deidentify_path
from tests.api.conftest import API, DEMO, Account, World
from tests.fuzz.conftest import FUZZ_MAX_FILE_MB, FUZZ_MAX_PIXELS
from tests.fuzz.inputs import Case, dicom_seed_names, make_case

TOTAL_EXAMPLES = int(os.environ.get("SAHAY_FUZZ_EXAMPLES", "60"))
DEADLINE_S = float(os.environ.get("SAHAY_FUZZ_DEADLINE_S", "10"))
# How the examples are shared: the reader is cheap, the doors run a whole analysis per good case.
SHARES = {"reader": 0.4, "deid": 0.15, "api": 0.3, "cli": 0.15}
DEADLINE_FACTORS = {"reader": 1, "deid": 1, "api": 2, "cli": 2}

F = TypeVar("F", bound=Callable[..., Any])

any_case = st.builds(make_case, st.randoms(use_true_random=False))
dicom_case = st.builds(make_case, st.randoms(use_true_random=False), seed_names=st.just(dicom_seed_names()))


def fuzz(target: str) -> Callable[[F], F]:
    """Hypothesis settings for one target, and a pytest timeout that catches a hang."""
    examples = max(1, round(TOTAL_EXAMPLES * SHARES[target]))
    deadline_s = DEADLINE_S * DEADLINE_FACTORS[target]
    hypothesis_settings = settings(
        max_examples=examples,
        deadline=timedelta(seconds=deadline_s),
        database=None,  # nothing written into the checkout; a failure prints its reproduce blob
        print_blob=True,
        # The autouse SAHAY_HOME fixture is per test, not per example, which is right here: each
        # example uses its own temporary folder. Bombs and deep nesting make some inputs slow to build.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    timeout = pytest.mark.timeout(120 + examples * 3 * deadline_s)

    def decorate(test: F) -> F:
        return timeout(hypothesis_settings(test))  # type: ignore[no-any-return]

    return decorate


@contextmanager
def written(case: Case) -> Iterator[Path]:
    note(f"recipe: {case.recipe}")
    with tempfile.TemporaryDirectory(prefix="sahay-fuzz-") as folder:
        path = Path(folder) / case.name
        path.write_bytes(case.data)
        yield path


@contextmanager
def fuzz_limits() -> Iterator[None]:
    """The fuzz limits for code that reads its settings from the environment (CLI, deid)."""
    limits = {"SAHAY_MAX_FILE_MB": str(FUZZ_MAX_FILE_MB), "SAHAY_MAX_PIXELS": str(FUZZ_MAX_PIXELS)}
    with mock.patch.dict(os.environ, limits):
        reload_settings()
        try:
            yield
        finally:
            reload_settings()


@fuzz("reader")
@given(case=any_case)
def test_read_image_raises_only_sahay_errors(case: Case) -> None:
    with written(case) as path:
        try:
            image = read_image(
                path, settings=Settings(max_file_mb=FUZZ_MAX_FILE_MB, max_pixels=FUZZ_MAX_PIXELS)
            )
        except SahayError:
            return
    assert image.pixels.size > 0


@fuzz("deid")
@given(case=dicom_case)
def test_deidentify_raises_only_sahay_errors(case: Case) -> None:
    with written(case) as path, fuzz_limits():
        try:
            report = deidentify_path(path, path.parent / "out.dcm")
        except SahayError:
            return
    assert len(report.written) == 1


@fuzz("cli")
@given(case=any_case)
def test_cli_analyze_exits_0_or_2(case: Case, demo_bundle_dir: Path) -> None:
    """The demonstration bundle (tests/conftest.py) is given by folder, so nothing is installed.
    No heatmaps: the upload test explains every decodable image; here the exit code is the point."""
    with written(case) as path, fuzz_limits():
        stdout, stderr = io.StringIO(), io.StringIO()
        arguments = ["analyze", str(path), "--model", str(demo_bundle_dir), "--out", str(path.parent / "out")]
        with redirect_stdout(stdout), redirect_stderr(stderr), pytest.raises(SystemExit) as exited:
            main([*arguments, "--force", "--json", "--no-heatmaps"])
    code = exited.value.code
    code = 0 if code is None else code
    errors = stderr.getvalue()
    assert code in (0, 2), f"exit {code}: {errors}"
    assert "Traceback" not in errors and "internal error" not in errors, errors


@fuzz("api")
@given(case=any_case)
def test_upload_answers_201_or_4xx(case: Case, fuzz_world: World, fuzz_account: Account) -> None:
    """``force`` is set, so that every decodable image is analysed and explained, not refused as
    out of domain."""
    note(f"recipe: {case.recipe}")
    response = fuzz_world.client.post(
        f"{API}/analyses",
        files={"image": (case.name, case.data, "application/octet-stream")},
        data={"model": DEMO, "force": "true"},
        headers=fuzz_account.headers,
    )
    status = response.status_code
    assert status in (201, 202) or 400 <= status < 500, f"{status}: {response.text[:500]}"
    if status >= 400:
        assert response.json().get("detail"), "a refusal says why"
