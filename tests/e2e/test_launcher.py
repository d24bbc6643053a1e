"""`sahay analyze` refuses a missing or non-image file before the CLI, NumPy or torch load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
sys.argv = ["sahay", "analyze", sys.argv[1]]
from sahay.launcher import main
try:
    main()
except SystemExit as exc:
    heavy = sorted(m for m in ("numpy", "torch", "typer", "rich", "pydicom", "PIL") if m in sys.modules)
    print(json.dumps({"code": exc.code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.dcm", None, "does not exist"),
        ("notes.dcm", b"just some text, not an image\n", "is not a DICOM, PNG, JPEG or TIFF file"),
        ("empty.png", b"", "empty"),
    ],
)
def test_a_bad_path_is_refused_before_anything_heavy_loads(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=False
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"code": 2, "heavy": []}, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr


def test_a_readable_image_goes_on_to_the_cli(tmp_path: Path) -> None:
    """The launcher hands everything else to the CLI: here its own error for an unknown model."""
    from PIL import Image

    image = tmp_path / "film.png"
    Image.new("L", (64, 64), 128).save(image)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE.replace('"analyze", sys.argv[1]', '"analyze", sys.argv[1], "--model", "nope"'),
            str(image),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["code"] == 2 and "typer" in result["heavy"]
