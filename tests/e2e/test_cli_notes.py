"""`sahay notes` (single and --batch) and `sahay analyze --notes` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from sahay.config import Settings
from sahay.models.registry import import_path
from sahay.services.demo import write_example_image
from tests.e2e.test_cli_analyze import DEMO, run_cli

NOTE = "64 yo male, 40 pack-year smoker, 3 weeks of cough and weight loss, denies fever, history of TB"


def test_notes_prints_entities_and_risk_factors(settings: Settings, capsys) -> None:
    code, stdout, stderr = run_cli(capsys, "notes", NOTE, "--json")
    assert code == 0, stderr
    reading = json.loads(stdout)
    by_concept = {e["concept"].lower(): e for e in reading["entities"]}
    assert by_concept["fever"]["negated"] is True
    assert by_concept["cough"]["negated"] is False
    assert reading["risk_factors"]["age"] == 64 and reading["risk_factors"]["pack_years"] == 40
    code, stdout, _ = run_cli(capsys, "notes", NOTE)
    assert code == 0 and "Risk factors:" in stdout and "negated" in stdout


def test_notes_json_says_certainty_temporality_and_weaker_links(settings: Settings, capsys) -> None:
    report = (
        "FINDINGS: Lungs are clear of consolidation, pneumothorax, or effusion. Borderline heart size. "
        "Interval resolution of the left basilar opacity. Hyperexpanded lungs, suggestive of emphysema."
    )
    code, stdout, stderr = run_cli(capsys, "notes", report, "--json")
    assert code == 0, stderr
    fields = ("certainty", "temporality", "experiencer", "inferred_from", "section")
    entities = {e["concept"]: tuple(e[f] for f in fields) for e in json.loads(stdout)["entities"]}
    assert entities == {
        "Consolidation": ("negative", "current", "patient", None, "findings"),
        "Pneumothorax": ("negative", "current", "patient", None, "findings"),
        "Effusion": ("negative", "current", "patient", None, "findings"),
        "Cardiomegaly": ("uncertain", "current", "patient", None, "findings"),
        "Lung Opacity": ("positive", "resolved", "patient", None, "findings"),
        "Hyperinflation": ("positive", "current", "patient", None, "findings"),
        "Emphysema": ("uncertain", "current", "patient", "Hyperinflation", "findings"),
    }


def test_notes_bad_input_is_exit_2(settings: Settings, tmp_path: Path, capsys) -> None:
    binary = tmp_path / "note.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81 not utf-8")
    for args, message in (
        (["notes", "   "], "empty"),
        (["notes", "--file", str(binary)], "not UTF-8"),
        (["notes"], "give the note"),
        (["notes", "--file", str(tmp_path / "absent.txt")], "cannot be read"),
    ):
        code, stdout, stderr = run_cli(capsys, *args)
        assert code == 2 and message in stderr, (args, stderr)
        assert "Traceback" not in stderr + stdout


def test_batch_writes_one_line_per_note_in_order(settings: Settings, tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.jsonl"
    lines = [
        json.dumps({"id": f"n{i}", "text": f"No pleural effusion. Cough for {i + 1} days."})
        for i in range(300)
    ]
    notes.write_text("\n".join(lines) + "\n")
    code, stdout, stderr = run_cli(capsys, "notes", "--batch", notes)
    assert code == 0, stderr
    results = [json.loads(line) for line in stdout.splitlines()]
    assert [r["id"] for r in results] == [f"n{i}" for i in range(300)]
    assert results[41]["risk_factors"]["symptom_duration_days"] == 42
    assert "read 300 notes" in stderr


def test_batch_reports_bad_lines_and_goes_on(settings: Settings, tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(
        '{"id": 1, "text": "Cough."}\n{not json\n{"id": 3, "text": ""}\n{"id": 4, "text": "Fever."}\n'
    )
    code, stdout, stderr = run_cli(capsys, "notes", "--batch", notes)
    assert code == 2 and "2 failed" in stderr
    results = [json.loads(line) for line in stdout.splitlines()]
    assert [r["id"] for r in results] == [1, "line 2", 3, 4]
    assert "not valid JSON" in results[1]["error"] and "empty" in results[2]["error"]
    assert "entities" in results[3]


def test_analyze_with_notes_fuses_them(
    settings: Settings, demo_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    import_path(demo_bundle_dir, settings)
    example = tmp_path / "example.png"
    write_example_image(example)
    note_file = tmp_path / "note.txt"
    note_file.write_text("Cough for 2 weeks. No fever.", encoding="utf-8")
    code, stdout, stderr = run_cli(
        capsys, "analyze", example, "--model", DEMO, "--notes-file", note_file, "--json", "--no-heatmaps"
    )
    assert code == 0, stderr
    analysis = json.loads(stdout)
    assert analysis["schema_version"] == "2.3"
    assert analysis["notes"]["risk_factors"]["symptom_duration_days"] == 14
    assert [f["label"] for f in analysis["fusion"]["findings"]] == ["synthetic_disc", "synthetic_stripes"]
    code, _, stderr = run_cli(
        capsys, "analyze", example, "--model", DEMO, "--notes", "x", "--notes-file", note_file
    )
    assert code == 2 and "not both" in stderr
    code, _, stderr = run_cli(
        capsys, "analyze", example, "--model", DEMO, "--notes", " ", "--out", tmp_path / "o"
    )
    assert code == 2 and "empty" in stderr and not (tmp_path / "o").exists()
