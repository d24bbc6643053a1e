"""Read clinical notes with medspaCy: :class:`NotesReader`, :func:`read_note` and :func:`decode_note`.

A reader loads the rules (:mod:`sahay.notes.rule_files`), builds the spaCy pipeline
(:mod:`sahay.notes.nlp`), and turns what it finds into entities (:mod:`sahay.notes.mentions`)
and risk factors (:mod:`sahay.notes.risk_factors`). Rules live in ``sahay/notes/rules/*.json``;
see :mod:`sahay.notes` for the file format and how a site adds its own.

Long notes are read in pieces of about ``PIECE_CHARS`` characters cut at blank lines, line ends
or sentence ends: some medspaCy steps grow faster than the length of a document (1 MB in one
document took 76 s, in pieces 8 s). Sections carry over from one piece to the next. A note
longer than ``max_chars`` is refused before any work is done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sahay.analysis import NoteEntity, NoteReading
from sahay.errors import BadInput, describe_error
from sahay.notes.mentions import find_mentions
from sahay.notes.nlp import build_pipeline
from sahay.notes.risk_factors import find_risk_factors
from sahay.notes.rule_files import load_rules

if TYPE_CHECKING:
    from spacy.tokens import Doc

PIECE_CHARS = 20_000
DEFAULT_MAX_CHARS = 1_000_000


def _conflicts(entities: list[NoteEntity]) -> list[str]:
    """Concepts the note both asserts and negates: worth a human look."""
    asserted = {e.concept for e in entities if e.asserted}
    negated = {e.concept for e in entities if e.negated and not e.family}
    return [
        f"{concept} is both reported and negated in this note; check the text"
        for concept in sorted(asserted & negated)
    ]


def split_for_reading(text: str, size: int = PIECE_CHARS) -> list[tuple[int, str]]:
    """(offset, piece) pairs covering ``text``, each at most ``size`` characters, cut at a blank
    line, a line end, a sentence end or a space when one is in the second half of the window."""
    pieces = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _cut_before(text, start, end)
        pieces.append((start, text[start:end]))
        start = end
    return pieces


def _cut_before(text: str, start: int, end: int) -> int:
    half = start + (end - start) // 2
    for separator in ("\n\n", "\n", ". ", " "):
        cut = text.rfind(separator, half, end)
        if cut != -1:
            return cut + len(separator)
    return end


class NotesReader:
    """Reads clinical notes into :class:`NoteReading` objects. Build it once: building takes seconds.

    >>> reader = NotesReader()
    >>> reading = reader.read("No pneumothorax. Small left pleural effusion.")
    >>> [(e.concept, e.negated, e.laterality) for e in reading.entities]
    [('Pneumothorax', True, None), ('Effusion', False, 'left')]
    """

    def __init__(self, extra_rules_dir: Path | None = None, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, not {max_chars}")
        self.max_chars = max_chars
        self.piece_chars = PIECE_CHARS
        self.rules = load_rules(extra_rules_dir)
        try:
            self.nlp = build_pipeline(self.rules)
        except ValueError as exc:  # spaCy's check of token patterns
            if extra_rules_dir is None:
                raise
            raise BadInput(
                f"the rules in {extra_rules_dir} could not be used: {describe_error(exc)}"
            ) from exc

    def read(self, text: str) -> NoteReading:
        return next(self.read_many([text]))

    def read_many(self, texts: Iterable[str], batch_size: int = 256) -> Iterator[NoteReading]:
        """Readings in the order of ``texts``, processed in batches with ``nlp.pipe``.

        Each text is checked as it is reached; an empty or too long one raises :class:`BadInput`.
        """
        pieces = self._pieces(texts)
        current: list[tuple[int, Doc]] = []
        for doc, (text, offset, count) in self.nlp.pipe(pieces, as_tuples=True, batch_size=batch_size):
            current.append((offset, doc))
            if len(current) == count:
                yield self._reading(text, current)
                current = []

    def _pieces(self, texts: Iterable[str]) -> Iterator[tuple[str, tuple[str, int, int]]]:
        for text in texts:
            self._check(text)
            pieces = split_for_reading(text, self.piece_chars)
            for offset, piece in pieces:
                yield piece, (text, offset, len(pieces))

    def _check(self, text: str) -> None:
        if not isinstance(text, str):
            raise BadInput(f"a note must be text (str), not {type(text).__name__}")
        # Length first, so an oversized note is refused without scanning it.
        if len(text) > self.max_chars:
            raise BadInput(
                f"the note has {len(text):,} characters, over the limit of {self.max_chars:,}; "
                "split it or raise max_chars"
            )
        if not text.strip():
            raise BadInput("the note is empty")

    def _reading(self, text: str, parts: list[tuple[int, Doc]]) -> NoteReading:
        mentions, sections = find_mentions(parts)
        entities = [m.entity for m in mentions]
        warnings = _conflicts(entities)
        if len(parts) > 1:
            warnings.append(
                f"the note is long ({len(text):,} characters) and was read in {len(parts)} pieces "
                "cut at line or sentence ends"
            )
        return NoteReading(
            text_sha256=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
            entities=entities,
            risk_factors=find_risk_factors(mentions),
            sections=sections,
            warnings=warnings,
        )


@lru_cache(maxsize=1)
def default_reader() -> NotesReader:
    """One reader per process, built on first use."""
    return NotesReader()


def read_note(text: str) -> NoteReading:
    """Read one note with the built-in rules (the reader is built once and cached)."""
    return default_reader().read(text)


def decode_note(data: bytes, source: str) -> str:
    """Bytes of a note file as text: UTF-8, with or without a byte-order mark.

    Raises :class:`BadInput` naming ``source`` when the bytes are not UTF-8 text or hold no text.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{source} is not UTF-8 text (invalid byte at position {exc.start}); save the note as UTF-8"
        ) from exc
    if "\x00" in text:
        raise BadInput(f"{source} holds NUL bytes: it looks like a binary file, not a text note")
    if not text.strip():
        raise BadInput(f"{source}: the note is empty")
    return text
