"""Optional web search (off by default): an interface, and a client for Exa-style search APIs.

Results become passages cited by their URL, and go through the same verification as the
knowledge base's. Enable with ``SAHAY_WEB_SEARCH_URL`` (and ``SAHAY_WEB_SEARCH_API_KEY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx

from sahay.errors import ModelUnavailable


@dataclass(frozen=True)
class WebResult:
    title: str
    url: str
    text: str


class WebSearch(Protocol):
    def search(self, query: str, k: int = 3) -> list[WebResult]: ...


class ExaSearch:
    """``POST {base_url}/search`` with ``{"query", "numResults", "contents": {"text": true}}`` (Exa's API)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    def search(self, query: str, k: int = 3) -> list[WebResult]:
        headers = {"x-api-key": self.api_key} if self.api_key else {}
        body = {"query": query, "numResults": k, "contents": {"text": True}}
        try:
            response = httpx.post(
                f"{self.base_url}/search", json=body, headers=headers, timeout=self.timeout_s
            )
            response.raise_for_status()
            results = response.json().get("results", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise ModelUnavailable(
                f"web search at {self.base_url} failed ({type(exc).__name__}: {exc})"
            ) from exc
        return [
            WebResult(str(r.get("title") or r.get("url")), str(r["url"]), str(r.get("text") or "")[:2000])
            for r in results[:k]
            if r.get("url")
        ]
