"""A local GGUF model through llama-cpp-python (extra ``sahay[llm]``): Meditron, BioMistral, ..."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sahay.chat.backends import ANSWER_TOKENS, TokenCallback, Turn, messages
from sahay.chat.context import Context
from sahay.config import Settings
from sahay.errors import BadInput, ModelUnavailable


class LlamaCpp:
    name = "llamacpp"

    def __init__(self, model_path: Path, context_tokens: int = 4096) -> None:
        if not model_path.is_file():
            raise ModelUnavailable(f"no GGUF model at SAHAY_LLM_MODEL_PATH={model_path}")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelUnavailable("llama-cpp-python is not installed: pip install 'sahay[llm]'") from exc
        self.llama: Any = Llama(model_path=str(model_path), n_ctx=context_tokens, verbose=False)
        # One answer at a time: an answer given up on (a timeout) may still be running.
        self.busy = threading.Lock()

    def answer(
        self, context: Context, history: list[Turn], intent: str, on_token: TokenCallback | None = None
    ) -> str:
        pieces: list[str] = []
        with self.busy:
            stream = self.llama.create_chat_completion(
                messages=messages(context, history), stream=True, temperature=0, max_tokens=ANSWER_TOKENS
            )
            for event in stream:
                piece = event["choices"][0].get("delta", {}).get("content") or ""
                if piece:
                    pieces.append(piece)
                    if on_token is not None:
                        on_token(piece)
        return "".join(pieces)


def from_settings(settings: Settings) -> LlamaCpp:
    if settings.llm_model_path is None:
        raise BadInput("SAHAY_LLM=llamacpp needs SAHAY_LLM_MODEL_PATH (a GGUF file)")
    return LlamaCpp(settings.llm_model_path)
