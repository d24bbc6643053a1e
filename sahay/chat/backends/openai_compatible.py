"""Any OpenAI-compatible chat server: Ollama, vLLM, llama.cpp's server, Mistral, OpenAI. Streamed."""

from __future__ import annotations

import json

import httpx

from sahay.chat.backends import ANSWER_TOKENS, ServerUnreachable, TokenCallback, Turn, messages
from sahay.chat.context import Context
from sahay.config import Settings
from sahay.errors import BadInput, ModelUnavailable


class OpenAICompatible:
    name = "openai"

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s

    def answer(
        self, context: Context, history: list[Turn], intent: str, on_token: TokenCallback | None = None
    ) -> str:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {
            "model": self.model,
            "messages": messages(context, history),
            "stream": True,
            "temperature": 0,
            "max_tokens": ANSWER_TOKENS,
        }
        pieces: list[str] = []
        try:
            with httpx.stream(
                "POST",
                f"{self.base_url}/chat/completions",
                json=body,
                headers=headers,
                # Connecting gets the timeout; a silent stream is judged by the fallback wrapper, which
                # waits timeout_s for each piece: the read timeout only frees this thread after it.
                timeout=httpx.Timeout(2 * self.timeout_s, connect=self.timeout_s),
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise ModelUnavailable(
                        f"the LLM server at {self.base_url} answered HTTP {response.status_code}: "
                        f"{response.text[:200]}"
                    )
                for line in response.iter_lines():
                    piece = _delta(line)
                    if piece:
                        pieces.append(piece)
                        if on_token is not None:
                            on_token(piece)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(
                f"cannot reach the LLM server at SAHAY_LLM_BASE_URL={self.base_url} ({_described(exc)})"
            ) from exc
        except httpx.HTTPError as exc:
            raise ModelUnavailable(
                f"the LLM server at SAHAY_LLM_BASE_URL={self.base_url} did not finish its answer "
                f"({_described(exc)})"
            ) from exc
        return "".join(pieces)


def _described(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _delta(line: str) -> str:
    """The text of one server-sent event of a streamed chat completion, or ''."""
    if not line.startswith("data:"):
        return ""
    data = line[len("data:") :].strip()
    if not data or data == "[DONE]":
        return ""
    try:
        event = json.loads(data)
        return str(event["choices"][0].get("delta", {}).get("content") or "")
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def from_settings(settings: Settings) -> OpenAICompatible:
    if not settings.llm_base_url or not settings.llm_model:
        raise BadInput("SAHAY_LLM=openai needs SAHAY_LLM_BASE_URL and SAHAY_LLM_MODEL")
    return OpenAICompatible(
        settings.llm_base_url, settings.llm_model, settings.llm_api_key, timeout_s=settings.llm_timeout_s
    )
