"""Servers on 127.0.0.1 that speak the OpenAI chat-completions protocol (streamed) and Exa's search API.

The chat server answers from what it is sent, like a model would: it quotes the first passage
of the context block with its citation, then adds what the test scripted (for example a
sentence with an invented number; ``reply`` can write it from the context block it was sent),
streamed as server-sent events a few characters at a time. ``cut_after`` ends the stream inside
the scripted text, the way a dropped connection does; ``stall_at`` stops sending at a point of the
answer until the test is over, the way a stuck server does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeLLM:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    """The whole answer to each request, as the server meant to stream it."""
    extra: str = ""
    quote: bool = True
    """Open the answer with the first passage's first sentence, cited [1]."""
    reply: Callable[[str], str] | None = None
    """Writes the scripted text from the user message (context block and question) instead of ``extra``."""
    cut_after: int | None = None
    """Stop streaming after this many characters of the scripted text, without the closing ``[DONE]``."""
    status: int = 200
    stall_at: int | None = None
    """Send this many characters of the answer (0: none), then nothing more until the server stops."""
    stopping: threading.Event = field(default_factory=threading.Event)


class _ChatHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *_args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.server.state
        if self.path.endswith("/search"):
            self._json(
                {
                    "results": [
                        {
                            "title": "Web page on sarcoidosis",
                            "url": "https://example.org/sarc",
                            "text": "Sarcoidosis often affects the lungs and lymph nodes.",
                        }
                    ]
                }
            )
            return
        state.requests.append(body)
        if state.status != 200:
            self.send_error(state.status, "scripted failure")
            return
        prompt = body["messages"][-1]["content"]
        first = re.search(r"^\[1\] [^:]+: (.+?[.!?])", prompt, re.MULTILINE)
        extra = state.reply(prompt) if state.reply is not None else state.extra
        if state.cut_after is not None:
            extra = extra[: state.cut_after]
        opening = (f"{first.group(1)} [1]" if first else "Nothing found.") if state.quote else ""
        answer = " ".join(part for part in (opening, extra) if part)
        state.sent.append(answer)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        sent = answer if state.stall_at is None else answer[: state.stall_at]
        for start in range(0, len(sent), 7):
            event = {"choices": [{"index": 0, "delta": {"content": sent[start : start + 7]}}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        if state.stall_at is not None:
            state.stopping.wait()
            return
        if state.cut_after is None:
            self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    state: FakeLLM


@contextmanager
def fake_openai_server() -> Iterator[FakeLLM]:
    server = _Server(("127.0.0.1", 0), _ChatHandler)
    server.state = FakeLLM(url=f"http://127.0.0.1:{server.server_address[1]}/v1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.state.stopping.set()
        server.shutdown()
        server.server_close()
