"""Verification against wrong citations and invented numbers; the OpenAI-compatible backend and web
search against servers started on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import pytest

from sahay.chat.backends import Turn, make_backend
from sahay.chat.backends.fallback import WithFallback
from sahay.chat.backends.grounded import GroundedComposer
from sahay.chat.backends.openai_compatible import OpenAICompatible
from sahay.chat.context import Context
from sahay.chat.engine import Answer, Conversation
from sahay.chat.safety import FALLBACK_NOTICES
from sahay.chat.verify import split_sentences, verify
from sahay.chat.websearch import ExaSearch
from sahay.config import Settings
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
    return conversation._context("What should we do next?", "next_steps", _flags(), [])


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
    (sent,) = llm.sent
    quoted, invented = split_sentences(sent)
    assert answer.backend == "openai" and _plain(quoted) in _shown(answer)
    assert "97%" not in answer.text
    assert (invented, "the number 97 is not in the context") in [(s.text, s.problem) for s in answer.dropped]


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


# The fallback to the grounded composer (sahay/chat/backends/fallback.py) ---------------------------

QUESTION = "What should we do next?"


def _openai_chat(knowledge: KnowledgeBase, url: str, timeout_s: float = 30.0) -> Conversation:
    settings = Settings(llm="openai", llm_base_url=url, llm_model="m", llm_timeout_s=timeout_s)
    return Conversation(chest_analysis(Effusion=0.82), knowledge=knowledge, backend=make_backend(settings))


def _plain(sentence: str) -> str:
    """A sentence without its citations (the engine numbers them by source) or final stop."""
    return " ".join(re.sub(r"\[A?\d+\]", "", sentence).split()).rstrip(" .!?")


def _shown(answer: Answer) -> list[str]:
    return [_plain(s.text) for s in answer.sentences]


def _grounded_answer(knowledge: KnowledgeBase) -> list[str]:
    """The answer the grounded composer gives to QUESTION about the same analysis, sentence by sentence."""
    chat = Conversation(chest_analysis(Effusion=0.82), knowledge=knowledge, backend=GroundedComposer())
    return _shown(chat.ask(QUESTION))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_generative_backend_stands_on_the_grounded_composer_and_the_composer_on_nothing() -> None:
    wrapped = make_backend(Settings(llm="openai", llm_base_url="http://127.0.0.1:1/v1", llm_model="m"))
    assert isinstance(wrapped, WithFallback) and wrapped.name == "openai" and wrapped.timeout_s == 30.0
    assert isinstance(wrapped.model, OpenAICompatible) and wrapped.model.timeout_s == 30.0
    assert isinstance(make_backend(Settings(llm="grounded")), GroundedComposer)


def test_a_model_that_answers_keeps_its_name_and_its_verified_answer(knowledge: KnowledgeBase) -> None:
    with fake_openai_server() as llm:
        llm.extra = "About 97% of patients need surgery [1]."
        chat = _openai_chat(knowledge, llm.url)
        answer = chat.ask(QUESTION)
    assert answer.backend == "openai" and chat.backend.fallback_reason is None  # type: ignore[attr-defined]
    quoted, invented = split_sentences(llm.sent[0])
    assert _plain(quoted) in _shown(answer)
    assert (invented, "the number 97 is not in the context") in [(s.text, s.problem) for s in answer.dropped]
    assert not any(notice in answer.text for notice in FALLBACK_NOTICES.values())


def test_a_server_that_is_down_falls_back_at_once(knowledge: KnowledgeBase) -> None:
    # A day-long timeout: only a refused connection, not a timeout, can end this question.
    chat = _openai_chat(knowledge, f"http://127.0.0.1:{_closed_port()}/v1", timeout_s=86_400)
    tokens: list[str] = []
    answer = chat.ask(QUESTION, on_token=tokens.append)
    assert answer.backend.startswith("grounded (fallback: openai unreachable: cannot reach the LLM server")
    assert "ConnectError" in chat.backend.fallback_reason  # type: ignore[attr-defined]
    assert [s for s in _shown(answer) if s != _plain(FALLBACK_NOTICES["unreachable"])] == _grounded_answer(
        knowledge
    )
    assert "".join(tokens) == answer.text


def test_a_server_that_sends_nothing_falls_back_after_the_timeout(knowledge: KnowledgeBase) -> None:
    with fake_openai_server() as llm:
        llm.stall_at = 0
        answer = _openai_chat(knowledge, llm.url, timeout_s=0.5).ask(QUESTION)
    assert answer.backend == "grounded (fallback: openai sent no text for 0.5 s)" and len(llm.requests) == 1
    assert [s for s in _shown(answer) if s != _plain(FALLBACK_NOTICES["timeout"])] == _grounded_answer(
        knowledge
    )


def test_a_server_that_stalls_mid_answer_keeps_what_it_said_and_the_composer_goes_on(
    knowledge: KnowledgeBase,
) -> None:
    with fake_openai_server() as llm:
        llm.extra = "Then it stops in the middle of"
        llm.stall_at = 10_000  # all of it, without the end of the stream
        tokens: list[str] = []
        answer = _openai_chat(knowledge, llm.url, timeout_s=0.5).ask(QUESTION, on_token=tokens.append)
    assert answer.backend == "grounded (fallback: openai sent no text for 0.5 s)"
    assert "Then it stops in the middle of" in [s.text for s in answer.dropped]
    # The model's verified sentence, then the composer's (less any that repeat it).
    quoted = _plain(split_sentences(llm.sent[0])[0])
    shown, grounded = _shown(answer), _grounded_answer(knowledge)
    after = [s for s in shown[shown.index(quoted) + 1 :] if s != _plain(FALLBACK_NOTICES["timeout"])]
    assert after and all(s in grounded for s in after)
    assert [s for s in grounded if s not in shown] in ([], [quoted])  # left out: a repeat of the model's
    assert "".join(tokens) == answer.text


def test_a_server_error_falls_back_and_says_which(knowledge: KnowledgeBase) -> None:
    with fake_openai_server() as llm:
        llm.status = 503
        answer = _openai_chat(knowledge, llm.url).ask(QUESTION)
    assert answer.backend.startswith("grounded (fallback: openai failed: the LLM server at ")
    assert "answered HTTP 503" in answer.backend
    assert [s for s in _shown(answer) if s != _plain(FALLBACK_NOTICES["error"])] == _grounded_answer(
        knowledge
    )


def test_an_empty_answer_falls_back(knowledge: KnowledgeBase) -> None:
    with fake_openai_server() as llm:
        llm.quote = False
        answer = _openai_chat(knowledge, llm.url).ask(QUESTION)
    assert answer.backend == "grounded (fallback: openai gave an empty answer)"
    assert [s for s in _shown(answer) if s != _plain(FALLBACK_NOTICES["empty"])] == _grounded_answer(
        knowledge
    )


def test_the_answer_says_that_it_fell_back_and_why(knowledge: KnowledgeBase) -> None:
    answer = _openai_chat(knowledge, f"http://127.0.0.1:{_closed_port()}/v1").ask(QUESTION)
    assert FALLBACK_NOTICES["unreachable"] in [s.text for s in answer.sentences] and not answer.dropped


class _Stuck:
    """A model that writes nothing until released, then tries to go on."""

    name = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stopped = threading.Event()

    def answer(self, context: Context, history: list[Turn], intent: str, on_token=None) -> str:  # type: ignore[no-untyped-def]
        self.release.wait()
        try:
            on_token("Too late [1].")
        finally:
            self.stopped.set()
        return "Too late [1]."


def test_a_model_given_up_on_stops_at_its_next_piece_of_text(knowledge: KnowledgeBase) -> None:
    stuck = _Stuck()
    backend = WithFallback(stuck, GroundedComposer(), timeout_s=0.2)
    answer = Conversation(chest_analysis(Effusion=0.82), knowledge=knowledge, backend=backend).ask(QUESTION)
    assert answer.backend == "grounded (fallback: stuck sent no text for 0.2 s)"
    stuck.release.set()
    assert stuck.stopped.wait(60)  # it was stopped (its piece refused), not left writing
    assert "Too late" not in answer.text
