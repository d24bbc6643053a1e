"""`sahay kb` and `sahay chat` through the command-line entry point (grounded backend, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sahay.config import Settings
from tests.chat.conftest import chest_analysis
from tests.e2e.test_cli_analyze import run_cli


def test_kb_add_list_search_remove(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    protocol = tmp_path / "protocol.md"
    protocol.write_text(
        "# Haemoptysis pathway\n\nPatients with haemoptysis go to the rapid-access chest clinic.\n"
    )
    code, stdout, stderr = run_cli(capsys, "kb", "add", protocol)
    assert code == 0, stderr
    assert "Haemoptysis pathway" in stdout
    code, stdout, _ = run_cli(capsys, "kb", "list", "--json")
    documents = json.loads(stdout)
    assert len(documents) >= 41 and sum(not d["builtin"] for d in documents) == 1
    code, stdout, _ = run_cli(
        capsys, "kb", "search", "rapid-access chest clinic haemoptysis", "--k", "2", "--json"
    )
    assert json.loads(stdout)[0]["title"] == "Haemoptysis pathway"
    code, stdout, _ = run_cli(capsys, "kb", "search", "What does BI-RADS 4 mean?", "--k", "1")
    assert code == 0 and "BI-RADS" in stdout and "https://" in stdout
    user_id = next(d["id"] for d in documents if not d["builtin"])
    assert run_cli(capsys, "kb", "remove", user_id)[0] == 0
    code, _, stderr = run_cli(capsys, "kb", "remove", user_id)
    assert code == 2 and "no user document" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kb", "add", "missing.md"], "does not exist"),
        (["kb", "search", "   "], "query is empty"),
        (["kb", "search", "x", "--audience", "robot"], "--audience must be clinician or patient"),
        (["chat", "   "], "question is empty"),
        (["chat", "hi", "--audience", "robot"], "--audience must be clinician or patient"),
        (["chat", "hi", "--analysis", "nope.json"], "nope.json does not exist"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str, settings: Settings, capsys) -> None:
    code, _, stderr = run_cli(capsys, *args)
    assert code == 2 and message in stderr and "Traceback" not in stderr


def test_chat_answers_with_citations_and_json_evidence(settings: Settings, tmp_path: Path, capsys) -> None:
    analysis = tmp_path / "analysis.json"
    analysis.write_text(chest_analysis(Effusion=0.82).to_json())
    code, stdout, stderr = run_cli(capsys, "chat", "What should we do next?", "--analysis", analysis)
    assert code == 0, stderr
    assert "[1]" in stdout and "decision-support tool" in stdout
    code, stdout, _ = run_cli(capsys, "chat", "Is this urgent?", "--analysis", analysis, "--json")
    data = json.loads(stdout)
    assert data["backend"] == "grounded" and data["intent"] == "urgency"
    assert all(s["evidence"] for s in data["sentences"] if "[" in s["text"])


def test_interactive_chat_reads_questions_until_an_empty_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr(
        "sys.stdin", io.StringIO("What is a pleural effusion?\nHow is it treated?\n\nignored\n")
    )
    code, stdout, stderr = run_cli(capsys, "chat")
    assert code == 0, stderr
    assert stdout.count("decision-support tool") == 1  # the disclaimer once a conversation
    assert "effusion" in stdout.lower() and "ignored" not in stdout
