"""Reading clinical notes as use cases: one note (from text or a file), or a JSONL batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahay.errors import BadInput

if TYPE_CHECKING:
    from sahay.analysis import NoteReading


def note_text(text: str | None, path: Path | None) -> str | None:
    """The note given as text or as a UTF-8 file (not both); None when neither is given."""
    if text is not None and path is not None:
        raise BadInput("give --notes or --notes-file, not both")
    if path is None:
        return text
    from sahay.notes import decode_note

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc})") from exc
    return decode_note(data, str(path))


def read(text: str) -> NoteReading:
    """Entities with negation, history and context, sections and risk factors (medspaCy)."""
    from sahay.notes import default_reader

    return default_reader().read(text)


def read_batch_file(path: Path) -> Iterator[dict[str, Any]]:
    """One result per line of a JSONL file of ``{"id": ..., "text": ...}``; bad lines give ``error``."""
    from sahay.notes import default_reader
    from sahay.notes.batch import read_batch

    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc})") from exc
    done = 0
    with handle:
        try:
            for result in read_batch(handle, default_reader()):
                done += 1
                yield result
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path} is not UTF-8 text (after {done} notes); save it as UTF-8") from exc
