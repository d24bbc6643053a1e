"""`sahay cases` end to end through the command-line entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sahay.config import Settings
from sahay.training.synthetic import make_image
from tests.e2e.test_cli_analyze import DEMO, run_cli
from tests.factories import write_case_dataset, write_png

DATASET = ["--labels", "round,striped", "--text-column", "notes"]


def test_import_list_show_search_remove(
    demo_installed: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = write_case_dataset(tmp_path / "data", per_class=5)
    code, stdout, stderr = run_cli(capsys, "cases", "import", table, "-m", DEMO, *DATASET)
    assert code == 0, stderr
    assert "Added 10 cases" in stdout

    code, stdout, _ = run_cli(capsys, "cases", "list", "--json")
    cases = json.loads(stdout)
    assert len(cases) == 10 and {c["diagnosis"] for c in cases} == {"round", "striped"}

    query = tmp_path / "query.png"
    disc = make_image(np.random.default_rng(42), 224, disc=True, stripes=False)
    write_png(query, np.round(disc.pixels * 255).astype(np.uint8))
    code, stdout, stderr = run_cli(capsys, "cases", "search", "--image", query, "--k", "3", "--json")
    assert code == 0, stderr
    results = json.loads(stdout)
    assert [r["diagnosis"] for r in results] == ["round"] * 3
    assert all(Path(r["thumbnail"]).is_file() and r["signals"]["image"] is not None for r in results)

    code, stdout, _ = run_cli(
        capsys, "cases", "search", "--text", "parallel linear stripes", "--mode", "text", "--json"
    )
    assert code == 0 and json.loads(stdout)[0]["diagnosis"] == "striped"
    code, stdout, _ = run_cli(capsys, "cases", "search", "--text", "parallel linear stripes", "--k", "2")
    assert code == 0 and re.search(
        r"^1\. [0-9a-f]{32}  similarity \d\.\d{3} .*diagnosis: striped$", stdout, re.M
    )

    code, stdout, _ = run_cli(capsys, "cases", "show", cases[0]["id"])
    assert code == 0 and cases[0]["id"] in stdout
    code, stdout, _ = run_cli(capsys, "cases", "remove", cases[0]["id"])
    assert code == 0
    code, _, stderr = run_cli(capsys, "cases", "show", cases[0]["id"])
    assert code == 2 and "no case" in stderr


def test_eval_prints_precision_at_k(demo_installed: Settings, tmp_path: Path, capsys) -> None:
    table = write_case_dataset(tmp_path / "data", per_class=8, words_tell=False)
    code, stdout, stderr = run_cli(capsys, "cases", "eval", table, "-m", DEMO, "--k", "5", *DATASET)
    assert code == 0, stderr
    match = re.search(r"^precision@5 = (\d\.\d+)$", stdout, re.MULTILINE)
    assert match is not None and float(match.group(1)) >= 0.9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--text", "round"], "the case library is empty"),
        (["search", "--text", "a", "--image", "x.png"], "exactly one of --image, --analysis or --text"),
        (["search", "--text", "a", "--mode", "psychic"], "unknown --mode 'psychic'"),
        (["search", "--text", "a", "--weights", "image=x"], "--weights needs numbers"),
        (["remove", "0" * 32], "no case"),
        (["show", "not-an-id"], "no case"),
        (["add", "missing.json"], "missing.json does not exist"),
    ],
)
def test_bad_input_exits_2_with_a_reason(
    args: list[str], message: str, demo_installed: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run_cli(capsys, "cases", *args)
    assert code == 2, stderr
    assert message in stderr and "Traceback" not in stderr


def test_a_corrupt_query_image_is_bad_input(demo_installed: Settings, tmp_path: Path, capsys) -> None:
    table = write_case_dataset(tmp_path / "data", per_class=2)
    assert run_cli(capsys, "cases", "import", table, "-m", DEMO, *DATASET)[0] == 0
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    code, _, stderr = run_cli(capsys, "cases", "search", "--image", corrupt)
    assert code == 2 and "corrupt.png" in stderr


def test_a_model_used_from_its_folder_is_named_with_the_fix(
    settings: Settings, demo_bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demonstration bundle is used by path and never installed: the library says how to fix it."""
    table = write_case_dataset(tmp_path / "data", per_class=3)
    code, stdout, stderr = run_cli(capsys, "cases", "import", table, "-m", demo_bundle_dir, *DATASET)
    assert code == 0, stderr

    query = tmp_path / "query.png"
    disc = make_image(np.random.default_rng(7), 224, disc=True, stripes=False)
    write_png(query, np.round(disc.pixels * 255).astype(np.uint8))
    code, _, stderr = run_cli(capsys, "cases", "search", "--image", query)
    assert code == 2 and "is not installed" in stderr and "sahay models import FOLDER" in stderr
    code, stdout, stderr = run_cli(capsys, "cases", "search", "--image", query, "--model", demo_bundle_dir)
    assert code == 0, stderr

    code, _, stderr = run_cli(
        capsys, "analyze", query, "--model", demo_bundle_dir, "--out", tmp_path / "a", "--no-heatmaps"
    )
    assert code == 0, stderr
    analysis = tmp_path / "a" / "analysis.json"
    code, _, stderr = run_cli(capsys, "cases", "add", analysis, "--image", query)
    assert code == 2 and "--model FOLDER" in stderr
    code, stdout, stderr = run_cli(
        capsys, "cases", "add", analysis, "--image", query, "--model", demo_bundle_dir
    )
    assert code == 0 and "Added case" in stdout, stderr
    moved = tmp_path / "elsewhere" / "deeper" / "analysis.json"  # nowhere near the image
    moved.parent.mkdir(parents=True)
    moved.write_bytes(analysis.read_bytes())
    code, _, stderr = run_cli(capsys, "cases", "add", moved, "--model", demo_bundle_dir)
    assert code == 2 and "give it with --image" in stderr
