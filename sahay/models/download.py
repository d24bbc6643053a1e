"""Fetch a weights file over HTTP(S) or from a ``file://`` mirror, checking size and sha256.

The file is streamed to ``<dest>.part`` beside ``dest`` and hashed on the way; only a verified
file is renamed onto ``dest``. A failed download leaves no ``.part`` behind and never touches an
existing ``dest``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Generator
from contextlib import closing
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import httpx

from sahay.errors import IntegrityError, ModelUnavailable

ProgressCallback = Callable[[int, int | None], None]
"""Called as ``progress(bytes_done, bytes_total)``; ``bytes_total`` is None when unknown."""

_CHUNK = 1024 * 1024


def rewrite_for_mirror(url: str, mirror: str | None) -> str:
    """Point ``url`` at a mirror that holds the same file name.

    Everything up to and including the last ``/`` of ``url`` is replaced by the mirror base, so
    ``https://github.com/o/r/releases/download/v1/file.pt`` with mirror
    ``http://127.0.0.1:8123/weights`` becomes ``http://127.0.0.1:8123/weights/file.pt``.
    A mirror may be any URL ``download_file`` accepts, ``file://`` included. With no mirror
    (None or empty) ``url`` is returned unchanged.
    """
    if not mirror:
        return url
    return f"{mirror.rstrip('/')}/{url.rsplit('/', 1)[-1]}"


def download_file(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    timeout_s: float = 60.0,
    progress: ProgressCallback | None = None,
) -> str:
    """Download ``url`` to ``dest``; return the sha256 of the file.

    ``url`` is ``http://``, ``https://`` (redirects followed) or ``file://``. ``timeout_s`` bounds
    connecting and each wait for data, not the whole transfer. ``progress`` is called after each
    chunk. Raises ``ModelUnavailable`` when the file cannot be fetched (no connection, timeout,
    HTTP error, interrupted transfer) and ``IntegrityError`` when it arrives with the wrong size
    or sha256. On any failure ``dest`` is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with open(part, "wb") as handle:
            sink = _HashingSink(url, handle, expected_size, progress)
            # closing() ends the HTTP connection at once when a chunk is refused mid-stream.
            with closing(_open_chunks(url, timeout_s, sink.set_total)) as chunks:
                for chunk in chunks:
                    sink.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        _verify(url, sink, expected_sha256, expected_size)
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return sink.sha256


class _HashingSink:
    """Writes chunks to the ``.part`` file, hashing and counting them and reporting progress."""

    def __init__(
        self, url: str, handle: BinaryIO, expected_size: int | None, progress: ProgressCallback | None
    ):
        self._url = url
        self._handle = handle
        self._digest = hashlib.sha256()
        self._expected_size = expected_size
        self._progress = progress
        self.total: int | None = expected_size
        self.size = 0

    def set_total(self, total: int | None) -> None:
        # The catalogue's size is authoritative; the server's Content-Length only fills a gap.
        if self._expected_size is None:
            self.total = total

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self._expected_size is not None and self.size > self._expected_size:
            # Stop early instead of filling the disk with a file that cannot be right.
            raise IntegrityError(
                f"download from {self._url} is larger than the expected {self._expected_size} bytes; "
                "it is a different file"
            )
        self._handle.write(chunk)
        self._digest.update(chunk)
        if self._progress is not None:
            self._progress(self.size, self.total)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def _verify(url: str, sink: _HashingSink, expected_sha256: str | None, expected_size: int | None) -> None:
    expected = expected_sha256.strip().lower() if expected_sha256 else None
    size_ok = expected_size is None or sink.size == expected_size
    sha_ok = expected is None or sink.sha256 == expected
    if size_ok and sha_ok:
        return
    size_note = "" if size_ok else f"{sink.size} bytes instead of {expected_size}, "
    raise IntegrityError(
        f"download from {url} is not the expected file: {size_note}"
        f"sha256 {sink.sha256}, expected {expected or 'not recorded'}. "
        "The file or mirror is corrupt or holds a different version; nothing was installed."
    )


def _open_chunks(
    url: str, timeout_s: float, on_total: Callable[[int | None], None]
) -> Generator[bytes, None, None]:
    try:
        scheme = urlparse(url).scheme.lower()
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise ModelUnavailable(f"cannot download {url}: not a valid address ({exc})") from None
    if scheme == "file":
        return _file_chunks(url, on_total)
    if scheme in ("http", "https"):
        return _http_chunks(url, timeout_s, on_total)
    raise ModelUnavailable(f"cannot download {url}: unsupported address (use http://, https:// or file://)")


def _file_chunks(url: str, on_total: Callable[[int | None], None]) -> Generator[bytes, None, None]:
    path = _file_url_to_path(url)
    try:
        with open(path, "rb") as handle:
            on_total(os.fstat(handle.fileno()).st_size)
            yield from iter(lambda: handle.read(_CHUNK), b"")
    except OSError as exc:  # missing file, unreachable share, read error
        raise ModelUnavailable(f"cannot download {url}: {exc.strerror or exc} ({path})") from None


def _file_url_to_path(url: str) -> Path:
    parsed = urlparse(url)
    # file:///x and file://localhost/x are local; file://server/share/x is a network share.
    local = parsed.netloc in ("", "localhost")
    raw_path = parsed.path if local else f"//{parsed.netloc}{parsed.path}"
    return Path(url2pathname(unquote(raw_path)))


def _http_chunks(
    url: str, timeout_s: float, on_total: Callable[[int | None], None]
) -> Generator[bytes, None, None]:
    try:
        with (
            httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout_s)) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                raise ModelUnavailable(f"cannot download {url}: {reason}")
            on_total(_content_length(response))
            yield from response.iter_bytes()
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ModelUnavailable(f"cannot download {url}: {_describe(exc, timeout_s)}") from None


def _content_length(response: httpx.Response) -> int | None:
    # With a Content-Encoding the header counts compressed bytes, not the bytes we write.
    if response.headers.get("content-encoding", "identity") != "identity":
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _describe(exc: Exception, timeout_s: float) -> str:
    """A one-line reason for a failed transfer, without a traceback's worth of detail."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout_s:g} s waiting for the server"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {detail}"
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"the connection broke during the transfer: {detail}"
    return detail
