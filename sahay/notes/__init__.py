"""Clinical notes: read a note with medspaCy into entities, ConText flags and risk factors.

``sahay.notes.pipeline`` holds the reader (``NotesReader``, ``read_note``); this package does
not import it, so that code needing only the result models does not load spaCy.
"""
