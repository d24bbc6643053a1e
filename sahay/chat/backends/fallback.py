"""A generative backend with the grounded composer behind it: an answer comes whatever the model does.

``make_backend`` wraps every generative backend (``openai``, ``llamacpp``) in ``WithFallback``. The
grounded composer writes the answer, after one fixed sentence that says the model was passed over
and why, when the model

* cannot be reached (a refused connection falls back at once);
* sends no text for ``SAHAY_LLM_TIMEOUT_S`` seconds, before its first piece or between two;
* fails with an error (an HTTP error status, a broken stream, a crash);
* gives an empty answer.

(An answer of which the verifier keeps no sentence is the engine's to replace: it sees the verdicts.)

Sentences the model had already written stay in the stream, so the engine's verifier still shows
those that pass and reports the others; what the composer writes follows them. ``name`` is the
model's backend name, or ``"grounded (fallback: <why>)"`` after an answer that fell back, which
is what ``Answer.backend`` reports. The model runs in a worker thread so that waiting for it can
time out; a model left behind stops at its next piece of text.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING

from sahay.chat.backends import (
    Backend,
    FallbackCause,
    ServerUnreachable,
    TokenCallback,
    Turn,
)
from sahay.chat.safety import FALLBACK_NOTICES

if TYPE_CHECKING:
    from sahay.chat.context import Context

log = logging.getLogger(__name__)


class _Abandoned(Exception):
    """Raised inside a model left behind after a timeout, to stop it at its next piece of text."""


class WithFallback:
    """``model`` answers; ``grounded`` answers instead when ``model`` cannot (see the module)."""

    def __init__(self, model: Backend, grounded: Backend, timeout_s: float) -> None:
        self.model = model
        self.grounded = grounded
        self.timeout_s = timeout_s
        self.name = model.name
        self.fallback_reason: str | None = None
        """Why the last answer fell back, in words (the error's own message included), or None."""

    def answer(
        self, context: Context, history: list[Turn], intent: str, on_token: TokenCallback | None = None
    ) -> str:
        self.name, self.fallback_reason = self.model.name, None
        out = _Output(on_token)
        failure = self._relay_model(context, history, intent, out)
        if failure is None:
            return out.text
        cause, why = failure
        self.fallback_reason = why
        self.name = f"{self.grounded.name} (fallback: {_short(why)})"
        # A new line ends whatever the model left unfinished, so that the notice is a sentence of its own.
        out.say(f"{chr(10) if out.text else ''}{FALLBACK_NOTICES[cause]} ")
        out.say(self.grounded.answer(context, history, intent))
        return out.text

    def _relay_model(
        self, context: Context, history: list[Turn], intent: str, out: _Output
    ) -> tuple[FallbackCause, str] | None:
        """Pass the model's text on as it comes; why it failed, or None when its answer stands."""
        pieces: queue.Queue[tuple[str, object]] = queue.Queue()
        abandoned = threading.Event()

        def relay(piece: str) -> None:
            if abandoned.is_set():
                raise _Abandoned
            pieces.put(("piece", piece))

        def work() -> None:
            try:
                pieces.put(("done", self.model.answer(context, history, intent, relay)))
            except _Abandoned:
                pass
            except Exception as exc:  # any failure of the model is answered by the composer
                pieces.put(("failed", exc))

        threading.Thread(target=work, name=f"sahay-llm-{self.model.name}", daemon=True).start()
        name = self.model.name
        while True:
            try:
                kind, value = pieces.get(timeout=self.timeout_s)
            except queue.Empty:
                abandoned.set()
                return "timeout", f"{name} sent no text for {self.timeout_s:g} s"
            if kind == "piece":
                out.say(str(value))
                continue
            if kind == "failed":
                log.warning("the %s backend failed: %s", name, value)
                if isinstance(value, ServerUnreachable):
                    return "unreachable", f"{name} unreachable: {value}"
                return "error", f"{name} failed: {value}"
            text = str(value)
            if text.startswith(out.text):  # a model that returned more than it streamed
                out.say(text[len(out.text) :])
            if not out.text.strip():
                return "empty", f"{name} gave an empty answer"
            return None


class _Output:
    """What the caller has been given so far, passed on to ``on_token`` piece by piece."""

    def __init__(self, on_token: TokenCallback | None) -> None:
        self.on_token = on_token
        self.text = ""

    def say(self, piece: str) -> None:
        self.text += piece
        if self.on_token is not None:
            self.on_token(piece)


def _short(why: str, limit: int = 160) -> str:
    """The reason on one line, short enough for ``Answer.backend``."""
    line = " ".join(why.split())
    return line if len(line) <= limit else f"{line[: limit - 1]}…"
