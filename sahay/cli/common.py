"""What every command module shares: the consoles, tables, the one progress display, and options.

Choices shown in help come from the registries (``choices``), never from lists kept here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from sahay.progress import Step

out = Console(soft_wrap=True)  # long lines stay whole when piped; tables still fit the width
err = Console(stderr=True, soft_wrap=True)

__all__ = ["err", "escape", "out"]


def choices(names: Iterable[str]) -> str:
    """``a, b or c``: the registry's names, for help text."""
    listed = list(names)
    return listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"


class _WordTable(Table):
    """A table that wraps cells between words and never inside one ("risk_facto r") where the
    width allows: each column is at least as wide as its longest word (up to ``LONGEST_WORD``),
    and columns with no content are left out."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # A column with nothing in it says nothing; at 80 columns its room is needed.
        if self.row_count:
            self.columns = [c for c in self.columns if any(_plain(cell).strip() for cell in c.cells)]
        for column in self.columns:
            cells = [column.header, *column.cells]
            if column.no_wrap:  # kept whole on one line: as wide as its longest cell
                column.min_width = max((len(_plain(cell)) for cell in cells), default=1)
                continue
            words = [len(word) for cell in cells for word in _plain(cell).split()]
            column.min_width = min(max(words, default=1), LONGEST_WORD)
        # Where the words cannot all fit (80 columns, many columns), the longest give way first.
        room = options.max_width - (3 * len(self.columns) + 1)  # borders and padding
        while sum(c.min_width or 0 for c in self.columns) > room:
            widest = max((c for c in self.columns if not c.no_wrap), key=lambda c: c.min_width or 0)
            if (widest.min_width or 0) <= 4:
                break
            widest.min_width = (widest.min_width or 0) - 1
        yield from super().__rich_console__(console, options)


LONGEST_WORD = 32
"""Longer words (paths, hashes) fold: they are copied into other commands, never cut."""


def _plain(cell: object) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else ""


def table(*columns: str) -> Table:
    """A table whose first column (a name people copy into commands) never wraps."""
    made = _WordTable()
    for index, column in enumerate(columns):
        # Fold, not truncate: ids and paths are copied into other commands.
        made.add_column(column, no_wrap=index == 0, overflow="fold")
    return made


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def print_json(data: Any) -> None:
    """JSON on stdout and nothing else, for pipes."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_warnings(label: str, lines: Iterable[str], style: str = "yellow") -> None:
    for line in lines:
        err.print(f"[{style}]{label}:[/] {escape(line)}", highlight=False)


class _Display:
    """Draws ``Step``s: the current step with a bar while it counts, and logged steps as lines."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID = progress.add_task("working", total=None, detail="")

    def __call__(self, step: Step) -> None:
        if step.log:
            self.progress.console.print(escape(step.message), highlight=False)
            return
        detail = step.detail
        if not detail and step.done is not None:
            if step.unit == "bytes":
                size = f"{step.done / 1e6:.1f}" + (f"/{step.total / 1e6:.1f}" if step.total else "")
                detail = f"{size} MB"
            else:
                detail = f"{step.done}/{step.total or '?'} {step.unit}".strip()
        self.progress.update(
            self.task, description=step.message, completed=step.done or 0, total=step.total, detail=detail
        )


@contextmanager
def progress_display() -> Iterator[_Display]:
    """One transient line on stderr, shown only on a terminal (logs and pipes get none)."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        yield _Display(progress)


def dataset_options(labels: str | None, **columns: Any) -> dict[str, Any]:
    """Dataset reader options from the CSV flags; ``--labels`` is a comma-separated list."""
    return {"label_columns": [name.strip() for name in labels.split(",")] if labels else None, **columns}


AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ImageColumn = Annotated[str | None, typer.Option(help="CSV: the image path column (default: auto-detect).")]
PatientColumn = Annotated[str | None, typer.Option(help="CSV: the patient ID column (default: auto-detect).")]
LabelColumns = Annotated[str | None, typer.Option("--labels", help="CSV: comma-separated label columns.")]
SplitColumn = Annotated[str | None, typer.Option(help="CSV: a column naming each row's split.")]
Split = Annotated[str, typer.Option(help="train, val or test.")]
SplitSeed = Annotated[int, typer.Option(help="The training run's --seed, so carved splits match it.")]
FreeTextColumn = Annotated[
    str | None, typer.Option(help="CSV: a column of free text (report, notes) for text search.")
]
Uncertain = Annotated[
    str, typer.Option(help="CSV: blank or -1 labels are ignored, or treated as 0 or 1: ignore|zero|one.")
]
ModelName = Annotated[str, typer.Argument(help="Installed model name or bundle folder.")]
NotesText = Annotated[str | None, typer.Option("--notes", help="Clinical notes that come with the image.")]
NotesFile = Annotated[Path | None, typer.Option("--notes-file", help="A UTF-8 text file of notes.")]
