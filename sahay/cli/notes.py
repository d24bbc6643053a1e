"""``sahay notes``: read a clinical note, or a JSONL batch of them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from sahay.cli.common import err, escape, out, table
from sahay.errors import BadInput
from sahay.services import notes as notes_service


def notes_command(
    text: Annotated[str | None, typer.Argument(help="The note's text.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A UTF-8 text file holding the note.")
    ] = None,
    batch: Annotated[
        Path | None, typer.Option("--batch", help='A JSONL file of {"id": ..., "text": ...}, one per line.')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reading as JSON.")] = False,
) -> None:
    """Read clinical notes: findings, symptoms and risk factors, with negation, history and context."""
    if batch is not None:
        if text is not None or file is not None:
            raise BadInput("--batch reads its notes from the file; give no TEXT or --file with it")
        _batch(batch)
        return
    note = notes_service.note_text(text, file)
    if note is None:
        raise BadInput("give the note as TEXT, with --file, or a JSONL file with --batch")
    reading = notes_service.read(note)
    if as_json:
        sys.stdout.write(reading.model_dump_json(indent=2) + "\n")
        return
    entities = table("Text", "Concept", "Kind", "Status", "Section", "Where", "Size")
    for e in reading.entities:
        status = ", ".join(e.status_words())
        where = " ".join(v for v in (e.laterality, e.location) if v)
        entities.add_row(
            escape(e.text),
            escape(e.concept),
            e.kind,
            status or "affirmed",
            escape(e.section or ""),
            escape(where),
            escape(e.measurement or ""),
        )
    out.print(entities)
    facts = {
        k: v
        for k, v in reading.risk_factors.model_dump(exclude={"evidence"}).items()
        if v not in (None, [], False)
    }
    out.print("Risk factors: " + (escape(", ".join(f"{k}={v}" for k, v in facts.items())) or "none found"))


def _batch(path: Path) -> None:
    failed = done = 0
    for result in notes_service.read_batch_file(path):
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
        done += 1
        failed += "error" in result
    err.print(f"read {done - failed} notes; {failed} failed" if failed else f"read {done} notes")
    if failed:
        raise typer.Exit(2)
