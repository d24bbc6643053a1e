"""`sahay batch --engine ray`: the same rows, probabilities, triage order and resume as the local engine.

One local Ray instance with 2 CPUs serves the module (Ray takes seconds to start).
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahay.config import Settings
from sahay.errors import BadInput
from sahay.services.batch import BatchOptions, collection_paused_for_forks, run_batch
from tests.e2e.test_cli_analyze import run_cli
from tests.services.test_batch import DEMO, films  # noqa: F401  (the shared fixture)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with collection_paused_for_forks():  # earlier tests leave ONNX Runtime sessions as garbage
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def _triage(path: Path) -> list[tuple[str, str]]:
    return [(row["path"], row["triage_score"]) for row in _rows(path).values()]


def _same_results(local: Path, distributed: Path) -> None:
    mine, theirs = _rows(local), _rows(distributed)
    assert mine.keys() == theirs.keys()
    for path, row in mine.items():
        other = theirs[path]
        for column, value in row.items():
            if column.startswith("p_") and value:
                assert float(other[column]) == pytest.approx(float(value), abs=1e-4), (path, column)
            else:
                assert other[column] == value, (path, column)


_FORK_AFTER_AN_ONNX_SESSION = """
import contextlib, gc, subprocess, sys, time
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from sahay.services.batch import collection_paused_for_forks

relu = helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"])], "relu",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
class Holder:
    pass
holder = Holder()
holder.me = holder  # a cycle: only the collector frees the session
holder.session = ort.InferenceSession(
    helper.make_model(relu, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString(),
    options, providers=["CPUExecutionProvider"],
)
for _ in range(5):
    holder.session.run(None, {"x": np.ones((1, 4), np.float32)})
time.sleep(1)  # the pool's threads go to sleep on their condition variable
del holder
with collection_paused_for_forks() if sys.argv[1] == "paused" else contextlib.nullcontext():
    subprocess.run(["true"], preexec_fn=gc.collect, check=True)  # as Ray's preexec_fn may collect
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_a_forked_child_never_frees_an_onnx_session_left_as_garbage(guarded: bool) -> None:
    """ray.init hung here once: its preexec_fn collected an earlier test's ONNX Runtime session."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    command = [sys.executable, "-c", _FORK_AFTER_AN_ONNX_SESSION, "paused" if guarded else "unguarded"]
    process = subprocess.Popen(command, start_new_session=True)
    try:
        finished = process.wait(timeout=120 if guarded else 20) == 0
    except subprocess.TimeoutExpired:
        finished = False
        os.killpg(process.pid, signal.SIGKILL)  # the hung fork too: it shares the group
        process.wait()
    # Unguarded, the child waits for threads only the parent has: the yardstick that the hazard is real.
    assert finished is guarded


# These two come first: the module's Ray instance, once started, would be used instead.


def test_without_ray_installed_the_error_says_what_to_install(
    demo_installed: Settings,
    films: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were absent
    with pytest.raises(BadInput, match=r"pip install 'sahay\[ray\]'"):
        run_batch(films, tmp_path / "r.csv", BatchOptions(model=DEMO, engine="ray"), settings=demo_installed)


def test_an_unreachable_address_exits_2_with_the_address(
    demo_installed: Settings,
    films: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    arguments = ["batch", str(films), "--out", str(tmp_path / "r.csv"), "--model", DEMO]
    code, _, stderr = run_cli(capsys, *arguments, "--engine", "ray", "--address", address)
    assert code == 2 and address in stderr and "ray start --head" in stderr
    code, _, stderr = run_cli(capsys, *arguments, "--address", address)
    assert code == 2 and "--engine ray" in stderr
    code, _, stderr = run_cli(capsys, *arguments, "--engine", "spark")
    assert code == 2 and "spark" in stderr


def test_ray_gives_the_local_rows_for_a_folder_and_a_csv(
    local_ray: None,
    demo_installed: Settings,
    films: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    options = BatchOptions(model=DEMO, batch_size=4, workers=2)
    local = run_batch(films, tmp_path / "local.csv", options, settings=demo_installed)
    ray_options = BatchOptions(model=DEMO, batch_size=4, workers=2, engine="ray")
    distributed = run_batch(films, tmp_path / "ray.csv", ray_options, settings=demo_installed)

    _same_results(local.out, distributed.out)
    assert (distributed.analysed, distributed.errors, distributed.refused) == (10, 1, 1)
    assert distributed.positives == local.positives
    assert _triage(distributed.triage) == _triage(local.triage)
    statuses = {Path(p).name: row["status"] for p, row in _rows(distributed.out).items()}
    assert statuses["corrupt.dcm"] == "error" and statuses["photo.png"] == "refused"

    listed = tmp_path / "list.csv"
    listed.write_text("path\n" + "".join(f"films/{p.name}\n" for p in sorted(films.iterdir())))
    from_csv = run_batch(listed, tmp_path / "csv-ray.csv", ray_options, settings=demo_installed)
    assert from_csv.images == 12
    assert sorted(Path(p).name for p in _rows(from_csv.out)) == sorted(statuses)


def test_an_interrupted_run_resumes_on_ray_where_it_stopped(
    local_ray: None,
    demo_installed: Settings,
    films: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    complete = run_batch(films, tmp_path / "complete.csv", BatchOptions(model=DEMO), settings=demo_installed)
    lines = complete.out.read_text().splitlines()
    out = tmp_path / "results.csv"
    out.write_text("\n".join(lines[:-5]) + "\n")  # as if the run had stopped five images early

    options = BatchOptions(model=DEMO, engine="ray")
    summary = run_batch(films, out, options, settings=demo_installed)
    assert summary.resumed == 7 and summary.analysed + summary.errors + summary.refused == 5
    assert len(out.read_text().splitlines()) == 13  # the header and each file once
    _same_results(complete.out, out)
    assert _triage(summary.triage) == _triage(complete.triage)
    assert run_batch(films, out, options, settings=demo_installed).resumed == 12
