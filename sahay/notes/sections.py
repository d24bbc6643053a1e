"""Sections: which section a mention is in, carried from one piece of a long note to the next.

medspaCy's sectionizer (added in :mod:`sahay.notes.nlp`, titles in ``rules/sections.json``) marks
each token with the section it is in. A long note is read in pieces, so a piece that starts
inside a section takes that section from the piece before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span

# Sections whose content is not the patient's present state.
SECTION_FLAGS = {"family_history": "family", "past_medical_history": "historical"}
# Sections whose imaging findings are not today's: the request form and the earlier study.
FINDINGS_NOT_CURRENT = frozenset({"indication", "comparison"})


class SectionTracker:
    """The sections of one note read piece by piece, in text order.

    Ask :meth:`section_of` for the targets of a piece, then pass the piece to :meth:`end_piece`.
    """

    def __init__(self) -> None:
        self.categories: list[str] = []  # each section category once, in the order first met
        self._carried: str | None = None  # the section the next piece starts in

    def section_of(self, span: Span) -> str | None:
        """The section the span starts in, else the one its piece started in."""
        found = span[0]._.section
        return (found.category if found is not None else None) or self._carried

    def end_piece(self, doc: Doc) -> None:
        for section in doc._.sections:
            if section.category:
                self._carried = section.category
                if section.category not in self.categories:
                    self.categories.append(section.category)
