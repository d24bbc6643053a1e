"""download_file against a real HTTP server on 127.0.0.1; nothing here reaches the internet."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahay.errors import IntegrityError, ModelUnavailable
from sahay.models.download import download_file, rewrite_for_mirror
from tests.servers import ServedFolder, serve_folder

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several chunks, so progress is reported more than once
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
OLD_CONTENT = b"the previous, good file"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedFolder]:
    folder = tmp_path_factory.mktemp("served")
    (folder / "weights.pt").write_bytes(PAYLOAD)
    with serve_folder(folder) as served:
        yield served


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_downloads_the_bytes_and_returns_their_sha256(server: ServedFolder, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"

    digest = download_file(f"{server.base}/files/weights.pt", dest, expected_sha256=PAYLOAD_SHA256)

    assert digest == PAYLOAD_SHA256
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest) == ["weights.pt"]


def test_creates_the_destination_folder(server: ServedFolder, tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "weights.pt"

    download_file(f"{server.base}/files/weights.pt", dest)

    assert dest.read_bytes() == PAYLOAD


def test_progress_counts_increase_to_the_total(server: ServedFolder, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []

    download_file(
        f"{server.base}/files/weights.pt", tmp_path / "w.pt", progress=lambda d, t: calls.append((d, t))
    )

    done = [d for d, _ in calls]
    assert len(calls) > 1
    assert done == sorted(set(done))
    assert done[-1] == len(PAYLOAD)
    assert {t for _, t in calls} == {len(PAYLOAD)}  # from Content-Length


def test_progress_total_prefers_the_expected_size(server: ServedFolder, tmp_path: Path) -> None:
    totals: set[int | None] = set()

    download_file(
        f"{server.base}/files/weights.pt",
        tmp_path / "w.pt",
        expected_size=len(PAYLOAD),
        progress=lambda _d, t: totals.add(t),
    )

    assert totals == {len(PAYLOAD)}


def test_follows_redirects(server: ServedFolder, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"

    digest = download_file(f"{server.base}/redirect/weights.pt", dest, expected_size=len(PAYLOAD))

    assert digest == PAYLOAD_SHA256
    assert dest.read_bytes() == PAYLOAD


def test_sha256_mismatch_is_an_integrity_error_and_leaves_nothing(
    server: ServedFolder, tmp_path: Path
) -> None:
    dest = tmp_path / "weights.pt"
    url = f"{server.base}/files/weights.pt"
    wrong = "0" * 64

    with pytest.raises(IntegrityError) as caught:
        download_file(url, dest, expected_sha256=wrong)

    message = str(caught.value)
    assert url in message and wrong in message and PAYLOAD_SHA256 in message
    assert _leftovers(dest) == []


def test_size_mismatch_is_an_integrity_error(server: ServedFolder, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"

    with pytest.raises(IntegrityError, match="bytes instead of"):
        download_file(f"{server.base}/files/weights.pt", dest, expected_size=len(PAYLOAD) + 1)

    assert _leftovers(dest) == []


def test_a_file_larger_than_expected_is_stopped_early(server: ServedFolder, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"

    with pytest.raises(IntegrityError, match="larger than the expected 10 bytes"):
        download_file(f"{server.base}/files/weights.pt", dest, expected_size=10)

    assert _leftovers(dest) == []


def test_http_404_names_the_url_and_status(server: ServedFolder, tmp_path: Path) -> None:
    url = f"{server.base}/files/absent.pt"

    with pytest.raises(ModelUnavailable) as caught:
        download_file(url, tmp_path / "absent.pt")

    assert url in str(caught.value)
    assert "HTTP 404" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_model_unavailable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/weights.pt"

    with pytest.raises(ModelUnavailable) as caught:
        download_file(url, tmp_path / "weights.pt", timeout_s=5)

    assert url in str(caught.value)
    assert "could not connect" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_timeout_is_model_unavailable(server: ServedFolder, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="timed out"):
        download_file(f"{server.base}/slow", tmp_path / "weights.pt", timeout_s=0.2)

    assert list(tmp_path.iterdir()) == []


def test_too_many_redirects_is_model_unavailable(server: ServedFolder, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="too many redirects"):
        download_file(f"{server.base}/redirect-loop", tmp_path / "weights.pt")


def test_truncated_body_leaves_no_file(server: ServedFolder, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"

    with pytest.raises(ModelUnavailable) as caught:
        download_file(f"{server.base}/truncated", dest)

    assert f"{server.base}/truncated" in str(caught.value)
    assert _leftovers(dest) == []


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/truncated", {}),
        ("/files/absent.pt", {}),
        ("/files/weights.pt", {"expected_sha256": "f" * 64}),
    ],
)
def test_a_failed_download_keeps_the_existing_file(
    server: ServedFolder, tmp_path: Path, path: str, kwargs: dict[str, Any]
) -> None:
    dest = tmp_path / "weights.pt"
    dest.write_bytes(OLD_CONTENT)

    with pytest.raises((ModelUnavailable, IntegrityError)):
        download_file(f"{server.base}{path}", dest, **kwargs)

    assert dest.read_bytes() == OLD_CONTENT
    assert _leftovers(dest) == ["weights.pt"]


def test_a_verified_download_replaces_the_existing_file(server: ServedFolder, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    dest.write_bytes(OLD_CONTENT)

    download_file(f"{server.base}/files/weights.pt", dest, expected_sha256=PAYLOAD_SHA256)

    assert dest.read_bytes() == PAYLOAD


def test_file_url(tmp_path: Path) -> None:
    source = tmp_path / "mirror dir" / "weights.pt"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "weights.pt"
    calls: list[tuple[int, int | None]] = []

    digest = download_file(
        source.as_uri(), dest, expected_sha256=PAYLOAD_SHA256, progress=lambda d, t: calls.append((d, t))
    )

    assert digest == PAYLOAD_SHA256
    assert dest.read_bytes() == PAYLOAD
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_missing_file_url_is_model_unavailable(tmp_path: Path) -> None:
    url = (tmp_path / "absent.pt").as_uri()

    with pytest.raises(ModelUnavailable) as caught:
        download_file(url, tmp_path / "out" / "absent.pt")

    assert url in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_file_url_sha256_mismatch(tmp_path: Path) -> None:
    source = tmp_path / "weights.pt"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "weights.pt"

    with pytest.raises(IntegrityError):
        download_file(source.as_uri(), dest, expected_sha256="0" * 64)

    assert list(dest.parent.iterdir()) == []


def test_unsupported_scheme_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="unsupported address"):
        download_file("ftp://example.invalid/weights.pt", tmp_path / "weights.pt")

    assert list(tmp_path.iterdir()) == []


def test_mirror_with_the_local_server(server: ServedFolder, tmp_path: Path) -> None:
    upstream = "https://github.com/mlmed/torchxrayvision/releases/download/v1/weights.pt"

    digest = download_file(rewrite_for_mirror(upstream, f"{server.base}/files"), tmp_path / "weights.pt")

    assert digest == PAYLOAD_SHA256


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        (None, "https://github.com/o/r/releases/download/v1/file.pt"),
        ("", "https://github.com/o/r/releases/download/v1/file.pt"),
        ("http://127.0.0.1:8123/weights", "http://127.0.0.1:8123/weights/file.pt"),
        ("http://127.0.0.1:8123/weights/", "http://127.0.0.1:8123/weights/file.pt"),
        ("file:///srv/share/models", "file:///srv/share/models/file.pt"),
    ],
)
def test_rewrite_for_mirror(mirror: str | None, expected: str) -> None:
    assert rewrite_for_mirror("https://github.com/o/r/releases/download/v1/file.pt", mirror) == expected


def test_malformed_url_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not a valid address"):
        download_file("http://[bad/weights.pt", tmp_path / "weights.pt")
