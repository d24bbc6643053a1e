"""The notes reader as a whole: bad input, long notes, site rules, batches, offsets and sections."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sahay.errors import BadInput
from sahay.notes import NoteReading, NotesReader, decode_note, read_note
from sahay.notes.reader import DEFAULT_MAX_CHARS, default_reader, split_for_reading

REPORT = """INDICATION: 64 yo male, 40 pack-year smoker, 3 weeks of cough and weight loss,
denies fever, history of TB.
FINDINGS: 2.3 cm spiculated nodule in the right upper lobe. No focal consolidation, pleural effusion or
pneumothorax. Heart size is normal.
IMPRESSION: Right upper lobe nodule, concerning for malignancy. Recommend CT chest.
"""

CLINIC_NOTE = """HPI: 58 year old woman with shortness of breath and fever for 5 days.
PMH: TB treated in 1998. Hypertension.
Medications: prednisone 10 mg daily.
Family history: mother had breast cancer; sister with lung cancer.
Social history: former smoker, quit 2010.
Assessment: possible left lower lobe pneumonia. Return if chest pain develops.
"""

MAMMOGRAM = (
    "Reason for exam: screening. 47F, BRCA1 mutation carrier.\r\n"
    "Findings: new pleomorphic microcalcifications in the upper outer quadrant of the left breast "
    "spanning 1.2 x 0.8 cm. No architectural distortion.\r\n"
    "Impression: BI-RADS 4B – suspicious calcifications; stereotactic biopsy recommended.\r\n"
)

NOTES = [REPORT, CLINIC_NOTE, MAMMOGRAM, "  Afebrile. Lungs are clear.  ", "Résumé: no pneumothorax ✓."]


@pytest.fixture(scope="module")
def reader() -> NotesReader:
    return default_reader()


# --- bad input ---


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n"])
def test_empty_note_is_refused(reader: NotesReader, text: str) -> None:
    with pytest.raises(BadInput, match="the note is empty"):
        reader.read(text)


def test_a_note_must_be_text(reader: NotesReader) -> None:
    with pytest.raises(BadInput, match="must be text"):
        reader.read(b"no pneumothorax")  # type: ignore[arg-type]


def test_note_over_the_limit_is_refused_naming_the_limit() -> None:
    small = NotesReader(max_chars=100)
    with pytest.raises(BadInput, match="over the limit of 100"):
        small.read("No pneumothorax. " * 10)
    assert small.read("No pneumothorax.").concepts(asserted_only=False) == {"Pneumothorax"}


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        NotesReader(max_chars=0)


def test_decode_note_reads_utf8_with_or_without_bom() -> None:
    assert decode_note("Fièvre: none".encode(), "note.txt") == "Fièvre: none"
    assert decode_note(b"\xef\xbb\xbfNo effusion", "note.txt") == "No effusion"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfeN\x00o\x00", "note.txt is not UTF-8"),
        ("Fièvre".encode("latin-1"), "note.txt is not UTF-8"),
        (b"", "note.txt: the note is empty"),
        (b" \n\t ", "note.txt: the note is empty"),
        (b"PK\x03\x04\x00\x00", "note.txt holds NUL bytes"),
    ],
)
def test_decode_note_refuses_what_is_not_a_text_note(data: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        decode_note(data, "note.txt")


# --- long notes ---


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_one_megabyte_note_is_read_in_pieces(reader: NotesReader) -> None:
    block = "\n\n".join(NOTES) + "\n\n"
    text = (block * (DEFAULT_MAX_CHARS // len(block) + 1))[:DEFAULT_MAX_CHARS]
    reading = reader.read(text)
    per_block = len(reader.read(block).entities)
    assert len(reading.entities) >= per_block * (len(text) // len(block))
    assert any("read in" in warning and "pieces" in warning for warning in reading.warnings)
    for entity in reading.entities[:: max(1, len(reading.entities) // 500)]:
        assert text[entity.start : entity.end] == entity.text


def test_pieces_cover_the_text_and_cut_at_line_ends() -> None:
    text = "\n".join(f"Line {i}: no pneumothorax." for i in range(400))
    pieces = split_for_reading(text, 1_000)
    assert "".join(piece for _, piece in pieces) == text
    assert all(len(piece) <= 1_000 for _, piece in pieces)
    assert all(piece.endswith("\n") for _, piece in pieces[:-1])
    assert [offset for offset, _ in pieces] == [text.index(piece) for _, piece in pieces]


def test_text_with_no_break_is_still_cut() -> None:
    text = "x" * 2_500
    assert [len(piece) for _, piece in split_for_reading(text, 1_000)] == [1_000, 1_000, 500]


def test_sections_carry_from_one_piece_to_the_next(reader: NotesReader) -> None:
    text = "Family history:\n" + "Noncontributory.\n" * 30 + "Breast cancer in a cousin.\nThyroid disease.\n"
    whole = reader.read(text)
    original = reader.piece_chars
    try:
        reader.piece_chars = 200
        pieced = reader.read(text)
    finally:
        reader.piece_chars = original
    assert [e.model_dump() for e in pieced.entities] == [e.model_dump() for e in whole.entities]
    cancer = next(e for e in pieced.entities if e.concept == "Breast Cancer")
    assert cancer.section == "family_history" and cancer.family
    assert pieced.risk_factors.family_history_breast_cancer


# --- site rules ---


def _write(folder: Path, name: str, data: object) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(data), encoding="utf-8")


def test_extra_rules_dir_adds_site_terms(tmp_path: Path) -> None:
    site = tmp_path / "site-rules"
    _write(site, "terms.json", {"target_rules": [{"literal": "pleural collection", "category": "Effusion"}]})
    _write(
        site,
        "context_and_sections.json",
        {
            "context_rules": [
                {"literal": "nicht nachweisbar", "category": "NEGATED_EXISTENCE", "direction": "BACKWARD"}
            ],
            "section_rules": [{"literal": "Beurteilung:", "category": "impression"}],
        },
    )
    _write(
        site,
        "local.json",
        {"kind": "risk_factor", "target_rules": [{"literal": "asbestos exposure", "category": "Asbestos"}]},
    )
    text = "Beurteilung: small left pleural collection. Pneumothorax nicht nachweisbar. Asbestos exposure."
    reading = NotesReader(extra_rules_dir=site).read(text)
    by_concept = {e.concept: e for e in reading.entities}
    effusion = by_concept["Effusion"]
    assert (effusion.text, effusion.kind, effusion.laterality, effusion.section) == (
        "pleural collection",
        "finding",  # a synonym keeps its concept's kind
        "left",
        "impression",
    )
    assert by_concept["Pneumothorax"].negated
    assert by_concept["Asbestos"].kind == "risk_factor"
    assert "pleural collection" not in {e.text for e in default_reader().read(text).entities}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.json", "{not json", "is not readable JSON"),
        ("list.json", "[]", "must hold a JSON object"),
        ("empty.json", "{}", "has none of the keys"),
        ("typo.json", json.dumps({"target_rules": [{"literl": "x", "category": "X"}]}), "invalid keys"),
        (
            "kind.json",
            json.dumps({"kind": "organ", "target_rules": [{"literal": "x", "category": "X"}]}),
            "kind",
        ),
        (
            "regex.json",
            json.dumps({"target_rules": [{"literal": "x", "category": "X", "pattern": "(unclosed"}]}),
            "missing",
        ),
        (
            "direction.json",
            json.dumps({"context_rules": [{"literal": "x", "category": "X", "direction": "SIDEWAYS"}]}),
            "SIDEWAYS",
        ),
    ],
)
def test_bad_site_rule_files_are_refused_by_name(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(BadInput, match=message) as raised:
        NotesReader(extra_rules_dir=tmp_path)
    assert name in str(raised.value)


def test_bad_token_pattern_is_refused(tmp_path: Path) -> None:
    rule = {"literal": "x", "category": "X", "pattern": [{"NOT_AN_ATTRIBUTE": "x"}]}
    _write(tmp_path, "tokens.json", {"target_rules": [rule]})
    with pytest.raises(BadInput, match="could not be used"):
        NotesReader(extra_rules_dir=tmp_path)


def test_missing_rules_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        NotesReader(extra_rules_dir=tmp_path / "nowhere")


# --- batches, offsets, the reading ---


def test_read_many_keeps_order_and_equals_read(reader: NotesReader) -> None:
    notes = NOTES * 3
    readings = list(reader.read_many(notes, batch_size=4))
    assert len(readings) == len(notes)
    for text, reading in zip(notes, readings, strict=True):
        assert reading.text_sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert reading.model_dump() == reader.read(text).model_dump()


def test_read_many_refuses_an_empty_note(reader: NotesReader) -> None:
    with pytest.raises(BadInput, match="the note is empty"):
        list(reader.read_many(["No effusion.", " "]))


@pytest.mark.parametrize("text", NOTES, ids=["report", "clinic", "mammogram-crlf", "padded", "unicode"])
def test_offsets_slice_the_original_text(reader: NotesReader, text: str) -> None:
    reading = reader.read(text)
    assert reading.entities
    for entity in reading.entities:
        assert text[entity.start : entity.end] == entity.text
        assert entity.text in entity.sentence


def test_sections_name_and_flag_their_entities(reader: NotesReader) -> None:
    reading = reader.read(CLINIC_NOTE)
    assert reading.sections == [
        "indication",
        "past_medical_history",
        "medications",
        "family_history",
        "social_history",
        "impression",
    ]
    by_text = {e.text.lower(): e for e in reading.entities}
    assert by_text["tb"].historical and by_text["tb"].section == "past_medical_history"
    assert by_text["breast cancer"].family and by_text["lung cancer"].family
    assert by_text["pneumonia"].section == "impression" and by_text["pneumonia"].uncertain
    assert by_text["chest pain"].hypothetical
    assert by_text["dyspnea" if "dyspnea" in by_text else "shortness of breath"].asserted
    risk = reading.risk_factors
    assert (risk.age, risk.sex, risk.smoking, risk.tb_history) == (58, "female", "former", True)
    assert risk.immunosuppression == ["steroids"]
    assert risk.family_history_breast_cancer and risk.prior_cancer == []
    assert risk.symptom_duration_days == 5
    assert risk.evidence["tb_history"] == "TB"


def test_mammogram_report(reader: NotesReader) -> None:
    reading = reader.read(MAMMOGRAM)
    calcifications = next(e for e in reading.entities if e.concept == "Calcifications")
    assert (calcifications.laterality, calcifications.location, calcifications.measurement_mm) == (
        "left",
        "upper outer quadrant",
        12.0,
    )
    risk = reading.risk_factors
    assert (risk.age, risk.sex, risk.birads, risk.brca) == (47, "female", "4B", ["BRCA1"])
    assert reading.concepts() >= {"Calcifications", "BI-RADS"}
    assert "Architectural Distortion" in reading.concepts(asserted_only=False) - reading.concepts()


def test_a_concept_both_reported_and_negated_is_a_warning(reader: NotesReader) -> None:
    reading = reader.read("Small right effusion. No effusion on the left.")
    assert reading.warnings == ["Effusion is both reported and negated in this note; check the text"]


def test_reading_round_trips_through_json(reader: NotesReader) -> None:
    reading = reader.read(REPORT)
    assert NoteReading.model_validate_json(reading.model_dump_json()) == reading


def test_read_note_uses_one_cached_reader() -> None:
    assert default_reader() is default_reader()
    reading = read_note("No pneumothorax.")
    assert [(e.concept, e.negated, e.asserted) for e in reading.entities] == [("Pneumothorax", True, False)]
