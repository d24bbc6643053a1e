"""``sahay notes --batch``: one ``{"id": ..., "text": ...}`` per input line, one result per output line.

Lines are read in chunks and the notes of a chunk go through ``NotesReader.read_many`` (spaCy's
``nlp.pipe``) together, so thousands of notes run at hundreds per second. A line that is not
valid JSON, lacks ``text``, or holds an empty note gives an ``error`` line with the same ``id``
(or the line number) instead of stopping the run; the caller counts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from sahay.errors import BadInput
from sahay.notes.reader import NotesReader

CHUNK = 512


def read_batch(lines: Iterable[str], reader: NotesReader) -> Iterator[dict[str, Any]]:
    """Yield one result dict per non-blank input line, in input order."""
    numbered = ((number, line) for number, line in enumerate(lines, start=1) if line.strip())
    while chunk := list(islice(numbered, CHUNK)):
        parsed = [_parse(number, line, reader.max_chars) for number, line in chunk]
        good = [(key, text) for key, text, error in parsed if error is None]
        readings = iter(reader.read_many(text for _, text in good))
        for key, _text, error in parsed:
            if error is not None:
                yield {"id": key, "error": error}
            else:
                yield {"id": key, **next(readings).model_dump(mode="json")}


def _parse(number: int, line: str, max_chars: int) -> tuple[Any, str, str | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"line {number}", "", f"line {number} is not valid JSON ({exc.msg})"
    if not isinstance(record, dict):
        return f"line {number}", "", f"line {number} is not a JSON object with 'id' and 'text'"
    key = record.get("id", f"line {number}")
    text = record.get("text")
    if not isinstance(text, str):
        return key, "", f"line {number} has no 'text' string"
    try:
        _check_text(text, max_chars)
    except BadInput as exc:
        return key, "", f"line {number}: {exc}"
    return key, text, None


def _check_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise BadInput("the note is empty")
    if len(text) > max_chars:
        raise BadInput(f"the note has {len(text):,} characters, over the limit of {max_chars:,}")
