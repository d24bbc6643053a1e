"""Small file helpers shared across Sahay: hashing and writes that never leave half a file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sahay.errors import BadInput

_CHUNK = 1024 * 1024
PRIVATE_UMASK = 0o077
"""Files Sahay creates hold patient data: readable by their owner only (0600, folders 0700)."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_writable_folder(folder: Path) -> None:
    """Refuse an output folder that cannot be created or written, before any work is done."""
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"--out {folder} is a file, not a folder; give a folder for the results.")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write results to {folder}: {existing} is not a writable folder.")


def check_input_file(path: Path) -> None:
    """Refuse a path that does not name a readable file, before any model or library loads."""
    try:
        if not path.is_file():
            path.stat()  # FileNotFoundError for a missing path; a folder falls through
            raise BadInput(f"{path} is not a file; give the path of an image file.")
        if not os.access(path, os.R_OK):
            raise PermissionError(path)
    except FileNotFoundError as exc:
        raise BadInput(f"{path} does not exist; check the path.") from exc
    except PermissionError as exc:
        raise BadInput(f"{path} cannot be read (permission denied); check its permissions.") from exc
    except OSError as exc:  # a symlink loop, a name too long, an I/O error
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc}).") from exc
