"""The content-addressed blob store: addressing, idempotence, atomic writes, and refusing bad ids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sahay.config import Settings
from sahay.errors import BadInput
from sahay.store import BlobStore


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def test_default_root_is_the_settings_blobs_dir(settings: Settings) -> None:
    assert BlobStore().root == settings.blobs_dir


def test_put_bytes_is_content_addressed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"\x89PNG pretend image"
    sha = store.put_bytes(data, ".png")
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path(sha) == tmp_path / sha[:2] / f"{sha}.png"
    assert store.path(sha).read_bytes() == data
    assert store.exists(sha)
    assert stored_files(tmp_path) == [tmp_path / sha[:2] / f"{sha}.png"]


def test_put_is_idempotent(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    sha = store.put_bytes(b"same", ".png")
    stamp = store.path(sha).stat().st_mtime_ns
    assert store.put_bytes(b"same", ".png") == sha
    assert store.put_bytes(b"same", ".jpg") == sha  # same content under another suffix: still one blob
    assert store.path(sha).stat().st_mtime_ns == stamp
    assert len(stored_files(tmp_path)) == 1


def test_put_file_copies_and_defaults_to_the_file_suffix(tmp_path: Path) -> None:
    source = tmp_path / "scan.DCM"
    source.write_bytes(b"DICM" * 1000)
    store = BlobStore(tmp_path / "blobs")
    sha = store.put_file(source)
    assert sha == hashlib.sha256(source.read_bytes()).hexdigest()
    assert store.path(sha).name == f"{sha}.dcm"
    assert store.path(sha).read_bytes() == source.read_bytes()
    assert store.put_file(source, ".bin") == sha
    assert len(stored_files(tmp_path / "blobs")) == 1


def test_put_file_of_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"missing\.png"):
        BlobStore(tmp_path).put_file(tmp_path / "missing.png")


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    source = tmp_path / "a.png"
    source.write_bytes(b"file")
    for index in range(5):
        store.put_bytes(f"blob {index}".encode(), ".png")
    store.put_file(source)
    names = [path.name for path in stored_files(tmp_path / "blobs")]
    assert len(names) == 6
    assert not [name for name in names if name.startswith(".") or name.endswith(".tmp")]


def test_delete(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    sha = store.put_bytes(b"gone soon", ".png")
    store.delete(sha)
    assert not store.exists(sha)
    store.delete(sha)  # missing is fine
    with pytest.raises(BadInput, match=sha):
        store.path(sha)


@pytest.mark.parametrize(
    "bad_sha",
    ["../x", "ab" * 40, "A" * 64, "a" * 63, "", "../" + "a" * 61, "a" * 62 + "/.", "/" + "a" * 63, "g" * 64],
)
def test_bad_blob_ids_are_refused(tmp_path: Path, bad_sha: str) -> None:
    store = BlobStore(tmp_path / "blobs")
    for operation in (store.path, store.exists, store.delete):
        with pytest.raises(BadInput, match="invalid blob id"):
            operation(bad_sha)


@pytest.mark.parametrize("bad_suffix", ["/../../x", "..", "png", ".png/", ".a.b.c", ". png"])
def test_bad_suffixes_are_refused(tmp_path: Path, bad_suffix: str) -> None:
    with pytest.raises(BadInput, match="invalid blob suffix"):
        BlobStore(tmp_path).put_bytes(b"data", bad_suffix)
    assert stored_files(tmp_path) == []


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise OSError("disk full")

    source = tmp_path / "scan.png"
    source.write_bytes(b"pixels")
    store = BlobStore(tmp_path / "blobs")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.put_bytes(b"never stored", ".png")
    with pytest.raises(OSError, match="disk full"):
        store.put_file(source)
    assert stored_files(tmp_path / "blobs") == []
    assert not store.exists(hashlib.sha256(b"never stored").hexdigest())
