"""Clinical notes: read a note into entities, ConText flags, sections and risk factors (medspaCy).

>>> from sahay.notes import read_note
>>> reading = read_note("64 yo male. Denies fever, history of pneumonia.")
>>> [(e.concept, e.negated, e.historical) for e in reading.entities if e.kind != "risk_factor"]
[('Fever', True, False), ('Pneumonia', False, True)]
>>> reading.risk_factors.age, reading.risk_factors.sex
(64, 'male')

Rules are data
--------------
Every rule lives in a JSON file in ``sahay/notes/rules/`` and is loaded with medspaCy's own
classes (``TargetRule.from_dict``, ``ConTextRule.from_dict``, ``SectionRule.from_dict``). A site
adds its own terms by putting JSON files in a folder and passing it as
``NotesReader(extra_rules_dir=...)``; its files are read after the built-in ones, in name order.
A file holds one object with any of these keys::

    {
      "kind": "finding",            # optional: kind of every target rule in this file
      "target_rules": [             # what to find; "category" is the concept name
        {"literal": "pleural fluid", "category": "Effusion"},
        {"literal": "PTX", "category": "Pneumothorax"},
        {"literal": "BI-RADS 4", "category": "BI-RADS", "pattern": "\\bBI-?RADS\\s*[0-6][abc]?\\b"},
        {"literal": "smoker", "category": "Smoking", "metadata": {"value": "current"}},
        {"literal": "afebrile", "category": "Fever", "attributes": {"is_negated": true}}
      ],
      "context_rules": [            # cues that change what a finding means
        {"literal": "no sign of", "category": "NEGATED_EXISTENCE", "direction": "FORWARD"},
        {"literal": ": absent", "category": "NEGATED_EXISTENCE", "direction": "BACKWARD", "max_scope": 3,
         "terminated_by": ["COMMA"]}
      ],
      "terminating_types": {"NEGATED_EXISTENCE": ["HISTORICAL"]},
      "section_rules": [            # section titles, matched with their colon
        {"literal": "Impression:", "category": "impression"}
      ]
    }

Target rules take medspaCy's keys: ``literal`` (matched case-insensitively, token by token),
``category``, and optionally ``pattern`` (a list of spaCy token patterns, or a regular expression
string), ``metadata`` and ``attributes``. ``metadata.kind`` is one of finding, breast, pathology,
symptom, risk_factor, other; without it the file's ``kind`` applies, then the kind the concept
already has, then "other". ``metadata.value`` is the normalised value (smoking status, sex, cancer,
kind of immunosuppression). Context rules take medspaCy's keys plus ``terminated_by``; their
categories are NEGATED_EXISTENCE, POSSIBLE_EXISTENCE (uncertain: "rule out" is uncertain, not
hypothetical), HISTORICAL ("resolved" is historical), HYPOTHETICAL, FAMILY, TERMINATE (ends every
scope), LATERALITY and LOCATION (``metadata.laterality``, ``metadata.location``), MEASUREMENT,
DURATION, and PSEUDO-direction markers (CURRENT, PATIENT, COMMA, CONJUNCTION) that end only the
scopes that name them in ``terminating_types`` or ``terminated_by``.

Choices
-------
- "airspace disease" and "airspace opacity" are Lung Opacity, the nonspecific parent label.
- "Tuberculosis" is its own concept; a historical mention sets ``tb_history``.
- A bare "mass" is the chest model's Mass; "breast mass" and "lump" are Breast Mass.
- A note over ``max_chars`` (default 1,000,000 characters) is refused before any work; a note up
  to that size is read in pieces of about 20,000 characters (1 MB takes seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sahay.analysis import NoteEntity, NoteReading, RiskFactors

if TYPE_CHECKING:
    from sahay.notes.reader import NotesReader, decode_note, default_reader, read_note

__all__ = [
    "NoteEntity",
    "NoteReading",
    "NotesReader",
    "RiskFactors",
    "decode_note",
    "default_reader",
    "read_note",
]

_READER_NAMES = ("NotesReader", "decode_note", "default_reader", "read_note")


def __getattr__(name: str) -> Any:
    # The reader imports spaCy and medspaCy (seconds): only when a reader is asked for.
    if name in _READER_NAMES:
        from sahay.notes import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'sahay.notes' has no attribute {name!r}")
