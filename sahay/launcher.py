"""The `sahay` command's entry point: refuse a missing or non-image file before the CLI loads.

Importing the CLI (Typer, Rich and every command module) takes about half a second; a user who
mistyped a path should not wait for it, nor for NumPy or torch. Only ``sahay analyze PATH`` is
checked here, with the standard-library header check the analyze service runs anyway; everything
else, and every error format, is the CLI's (``sahay.cli.main``).
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if "analyze" in args and "--debug" not in args:
        position = args.index("analyze") + 1
        if position < len(args) and not args[position].startswith("-"):
            _refuse_unreadable(args[position])
    from sahay.cli import main as cli_main

    cli_main()


def _refuse_unreadable(path: str) -> None:
    from pathlib import Path

    from sahay.errors import SahayError
    from sahay.imaging.header import check_image_file

    try:
        check_image_file(Path(path))
    except SahayError as exc:
        sys.stderr.write(f"error: {exc.for_door('cli')}\n")
        sys.exit(exc.exit_code)
