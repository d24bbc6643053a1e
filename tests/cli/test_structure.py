"""The command line is a thin, fast door: its help is generated from the registries, and starting
it loads no heavy library (torch, spaCy, transformers, ...) before a command needs one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sahay.chat.backends import BACKENDS
from sahay.cli import app
from sahay.datasets import LAYOUTS
from sahay.explain.methods import METHODS
from sahay.models.providers import known_architectures
from sahay.reports.formats import FORMATS

HEAVY = (
    "torch",
    "torchvision",
    "spacy",
    "medspacy",
    "transformers",
    "sentence_transformers",
    "cv2",
    "sqlalchemy",
    "mlflow",
    "fastapi",
    "qdrant_client",
    "pydicom",
    "matplotlib",
    "sklearn",
)


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=400, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, sahay.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_a_missing_file_is_refused_before_any_heavy_library_loads(tmp_path) -> None:
    code = (
        "import sys\nfrom sahay.cli import main\n"
        "try:\n    main(['analyze', {!r}])\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print(code, ','.join(m for m in {!r} if m in sys.modules))"
    ).format(str(tmp_path / "absent.dcm"), HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["2"]
    assert "absent.dcm does not exist" in result.stderr


@pytest.mark.parametrize(
    ("command", "names"),
    [
        (("analyze",), list(METHODS)),
        (("explain-eval",), list(METHODS)),
        (("report",), list(FORMATS)),
        (("train",), known_architectures()),
        (("train",), list(LAYOUTS)),
        (("evaluate",), list(LAYOUTS)),
        (("chat",), list(BACKENDS)),
    ],
)
def test_every_registry_entry_appears_in_the_cli_help(command: tuple[str, ...], names: list[str]) -> None:
    shown = _help(*command)
    missing = [name for name in names if name not in shown]
    assert not missing, f"`sahay {' '.join(command)} --help` does not name {missing}"


def test_serve_on_a_port_in_use_says_so_and_exits_2(tmp_path: Path) -> None:
    import os
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [str(Path(sys.executable).parent / "sahay"), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SAHAY_HOME": str(tmp_path / "home")},
        )
    assert done.returncode == 2, done.stderr
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert "http://" not in done.stdout and "Traceback" not in done.stderr


def _piped(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The command as a script or a pipe runs it: no terminal, COLUMNS wide."""
    import os

    return subprocess.run(
        [str(Path(sys.executable).parent / "sahay"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": str(columns)},
    )


def test_help_at_80_columns_shows_whole_option_names_and_no_bool_metavar() -> None:
    done = _piped("analyze", "--help")

    assert done.returncode == 0, done.stderr
    options = (
        "--overlay-opacity",
        "--faithfulness / --no-faithfulness",
        "--side-by-side",
        "--keep-identifiers",
    )
    for option in options:
        assert option in done.stdout
    assert "<bool>" not in done.stdout and "…" not in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


def test_tables_at_80_columns_break_no_word() -> None:
    note = "64 yo male smoker, 40 pack-years. Small right pleural effusion measuring 2 cm. No pneumothorax."
    done = _piped("notes", note)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    cells = {cell.strip() for line in lines for cell in line.split("│")}
    for word in ("risk_factor", "Pneumothorax", "Pack-Years", "affirmed", "negated"):
        assert word in cells, f"{word} is broken across lines:\n{done.stdout}"
