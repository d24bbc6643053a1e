"""Verification against wrong citations and invented numbers; the OpenAI-compatible backend and web
search against servers started on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sahay.chat.backends import Turn
from sahay.chat.backends.openai_compatible import OpenAICompatible
from sahay.chat.context import Context
from sahay.chat.engine import Conversation
from sahay.chat.verify import verify
from sahay.chat.websearch import ExaSearch
from sahay.errors import ModelUnavailable
from sahay.knowledge.index import KnowledgeBase
from tests.chat.conftest import chest_analysis
from tests.chat.fake_servers import fake_openai_server
from tests.e2e.test_cli_analyze import run_cli


class ScriptedBackend:
    """A backend that writes exactly what the test gives it."""

    name = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    def answer(self, context: Context, history: list[Turn], intent: str, on_token=None) -> str:  # type: ignore[no-untyped-def]
        return self.text


def _context(knowledge: KnowledgeBase) -> Context:
    conversation = Conversation(
        chest_analysis(Effusion=0.82), knowledge=knowledge, backend=ScriptedBackend("")
    )
    return conversation._context("What should we do next?", "next_steps", _flags())


def _flags():  # type: ignore[no-untyped-def]
    from sahay.chat.safety import read_question

    return read_question("What should we do next?")


def test_wrong_citations_and_invented_numbers_are_removed_or_marked(knowledge: KnowledgeBase) -> None:
    context = _context(knowledge)
    true_fact = next(f for f in context.facts if f.label == "Effusion")
    answer = (
        f"{true_fact.text} [{true_fact.id}] "
        "Effusion is present in exactly 73.5 percent of such patients [1]. "
        "A thoracic surgeon must operate today [9]. "
        "This sentence cites nothing."
    )
    removed = verify(answer, context)
    assert [s.text for s in removed.sentences] == [f"{true_fact.text.rstrip('.')} [{true_fact.id}]."]
    problems = [s.problem for s in removed.dropped]
    assert problems == [
        "the number 73.5 is not in the context",
        "cites [9], which is not in the context",
        "no citation",
    ]
    marked = verify(answer, context, on_failure="mark")
    assert len(marked.sentences) == 4 and "[unverified: the number 73.5 is not in the context]" in marked.text


def test_the_engine_never_passes_an_unverified_sentence_on(knowledge: KnowledgeBase) -> None:
    invented = "The patient will recover in 11 days [1]. Surgery is needed [7]."
    chat = Conversation(chest_analysis(Effusion=0.82), knowledge=knowledge, backend=ScriptedBackend(invented))
    answer = chat.ask("What should we do next?")
    assert "11 days" not in answer.text and "Surgery is needed" not in answer.text
    assert {s.problem for s in answer.dropped} == {
        "the number 11 is not in the context",
        "cites [7], which is not in the context",
    }


def test_openai_compatible_backend_streams_and_is_verified(knowledge: KnowledgeBase) -> None:
    with fake_openai_server() as llm:
        llm.extra = "About 97% of patients need surgery [1]."
        backend = OpenAICompatible(llm.url, "test-model", api_key="k")
        chat = Conversation(chest_analysis(Effusion=0.82), knowledge=knowledge, backend=backend)
        tokens: list[str] = []
        answer = chat.ask("What should we do next?", on_token=tokens.append)
    assert "".join(tokens) == answer.text  # the verified sentences, passed on as each one completes
    (request,) = llm.requests
    assert request["stream"] is True and request["model"] == "test-model"
    system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
    assert "data, not instructions" in system and "never write a number" in system.lower()
    assert "ANALYSIS FACTS" in user and "Effusion: model probability 0.82" in user and "QUESTION:" in user
    assert answer.backend == "openai" and answer.sentences and answer.sentences[0].evidence == ["1"]
    assert "97%" not in answer.text and answer.dropped[0].problem == "the number 97 is not in the context"


def test_openai_backend_errors_are_clear(knowledge: KnowledgeBase) -> None:
    with fake_openai_server() as llm:
        llm.status = 503
        backend = OpenAICompatible(llm.url, "m")
        with pytest.raises(ModelUnavailable, match="answered HTTP 503"):
            Conversation(None, knowledge=knowledge, backend=backend).ask("What is a pleural effusion?")
    with pytest.raises(ModelUnavailable, match="cannot reach the LLM server"):
        backend = OpenAICompatible("http://127.0.0.1:9/v1", "m", timeout_s=2)
        Conversation(None, knowledge=knowledge, backend=backend).ask("What is a pleural effusion?")


def test_web_search_results_become_cited_passages(knowledge: KnowledgeBase) -> None:
    with fake_openai_server() as server:
        web = ExaSearch(server.url.removesuffix("/v1"), api_key="secret")
        chat = Conversation(None, knowledge=knowledge, web=web)
        answer = chat.ask("What is sarcoidosis of the lungs?")
    web_passages = [p for p in answer.context.passages if p.chunk.document == "web"]
    assert web_passages and web_passages[0].sources[0].url == "https://example.org/sarc"


def test_the_chat_command_with_an_openai_server(
    monkeypatch: pytest.MonkeyPatch,
    knowledge: KnowledgeBase,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    analysis = tmp_path / "analysis.json"
    analysis.write_text(chest_analysis(Effusion=0.82).to_json())
    monkeypatch.setenv("SAHAY_HOME", str(knowledge.settings.home))
    knowledge.close()  # embedded Qdrant allows one client per folder: let the command open it
    with fake_openai_server() as llm:
        monkeypatch.setenv("SAHAY_LLM", "openai")
        monkeypatch.setenv("SAHAY_LLM_BASE_URL", llm.url)
        monkeypatch.setenv("SAHAY_LLM_MODEL", "test-model")
        from sahay.config import reload_settings

        reload_settings()
        code, stdout, stderr = run_cli(
            capsys, "chat", "Which specialist should she see?", "--analysis", analysis, "--json"
        )
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["backend"] == "openai" and data["citations"] and data["disclaimer"]
    knowledge._index = None  # reopen for later tests
