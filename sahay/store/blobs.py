"""A content-addressed file store: each file is kept once, under its sha256.

Example::

    from sahay.store import BlobStore

    store = BlobStore()
    sha = store.put_bytes(b"...png bytes...", ".png")
    data = store.path(sha).read_bytes()
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from sahay.config import get_settings
from sahay.errors import BadInput
from sahay.fileio import atomic_write_bytes, sha256_file

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A suffix is decoration (".png", ".dcm", ".nii.gz"), never a path.
_SUFFIX = re.compile(r"(\.[A-Za-z0-9_-]{1,16}){0,2}")
_CHUNK = 1024 * 1024


class BlobStore:
    """Files under ``root/<sha[:2]>/<sha><suffix>``; ``root`` is ``settings.blobs_dir`` by default.

    Writes go to a temporary file in the same folder, renamed into place, so a blob is whole
    or absent. The same content is stored once: putting it again, with any suffix, changes nothing.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else get_settings().blobs_dir

    def put_bytes(self, data: bytes, suffix: str = "") -> str:
        """Store ``data``; returns its sha256 hex."""
        _check_suffix(suffix)
        sha = hashlib.sha256(data).hexdigest()
        if not self.exists(sha):
            atomic_write_bytes(self._target(sha, suffix), data)
        return sha

    def put_file(self, path: Path, suffix: str | None = None) -> str:
        """Copy the file at ``path`` into the store; returns its sha256 hex.

        ``suffix`` defaults to the file's own (``path.suffix``, lowercased).
        """
        path = Path(path)
        suffix = path.suffix.lower() if suffix is None else suffix
        _check_suffix(suffix)
        if not path.is_file():
            raise BadInput(f"cannot store {path}: not a file")
        try:
            sha = sha256_file(path)
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
        if self.exists(sha):
            return sha
        target = self._target(sha, suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            # Hash again while copying: a file that changed since the first read must not be stored
            # under the old sha.
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha:
                raise BadInput(f"cannot store {path}: it changed while being copied; try again")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def path(self, sha: str) -> Path:
        """The stored file for ``sha``, whatever its suffix; BadInput when there is none."""
        found = self._find(sha)
        if found is None:
            raise BadInput(f"no stored file with sha256 {sha} in {self.root}")
        return found

    def exists(self, sha: str) -> bool:
        return self._find(sha) is not None

    def delete(self, sha: str) -> None:
        """Remove the blob; a missing one is fine."""
        while (found := self._find(sha)) is not None:
            found.unlink(missing_ok=True)

    def _target(self, sha: str, suffix: str) -> Path:
        return self.root / sha[:2] / f"{sha}{suffix}"

    def _find(self, sha: str) -> Path | None:
        _check_sha(sha)
        folder = self.root / sha[:2]
        if not folder.is_dir():
            return None
        # Temporary files start with '.', so they never match.
        for candidate in sorted(folder.glob(f"{sha}*")):
            if candidate.is_file():
                return candidate
        return None


def _check_sha(sha: object) -> None:
    # The sha becomes a path: anything but 64 lowercase hex digits could leave the root.
    if not isinstance(sha, str) or _SHA256.fullmatch(sha) is None:
        raise BadInput(f"invalid blob id {sha!r}: expected a sha256 as 64 lowercase hexadecimal digits")


def _check_suffix(suffix: object) -> None:
    if not isinstance(suffix, str) or _SUFFIX.fullmatch(suffix) is None:
        raise BadInput(
            f"invalid blob suffix {suffix!r}: expected '' or up to two parts like '.png' or '.nii.gz'"
        )
