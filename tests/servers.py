"""A real HTTP server on 127.0.0.1 for download tests: it serves a folder, and misbehaves on request.

Routes: ``/files/<name>`` serves a file; ``/redirect/<name>`` redirects there; ``/redirect-loop``
never ends; ``/truncated`` promises ``weights.pt`` whole and sends half; ``/slow`` waits 1 s first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(BaseHTTPRequestHandler):
    server: _FileServer

    def do_GET(self) -> None:
        if self.path.startswith("/files/"):
            self._send_file(self.server.folder / self.path.removeprefix("/files/"))
        elif self.path.startswith("/redirect/"):
            self._redirect("/files/" + self.path.removeprefix("/redirect/"))
        elif self.path == "/redirect-loop":
            self._redirect("/redirect-loop")
        elif self.path == "/truncated":
            self._send_truncated(self.server.folder / "weights.pt")
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send_file(self.server.folder / "weights.pt")
        else:
            self.send_error(404, "Not Found")
        self.server.requests.append(self.path)

    def _send_file(self, path: Path) -> None:
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_truncated(self, path: Path) -> None:
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean


class _FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = folder
        self.requests: list[str] = []


@dataclass
class ServedFolder:
    base: str
    folder: Path
    requests: list[str]

    @property
    def files_url(self) -> str:
        return f"{self.base}/files"


@contextmanager
def serve_folder(folder: Path) -> Iterator[ServedFolder]:
    httpd = _FileServer(folder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield ServedFolder(
            base=f"http://127.0.0.1:{httpd.server_address[1]}", folder=folder, requests=httpd.requests
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
