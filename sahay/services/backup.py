"""Backing up SAHAY_HOME and its database, and restoring a backup: ``sahay backup`` and ``sahay restore``.

A backup is a folder, owner-only (0700, its files 0600: it holds patient data)::

    manifest.json           what the backup holds: every file's sha256 and size, the Sahay version,
                            the database's schema (Alembic) revision and the date
    database/sahay.db       the SQLite database, copied with SQLite's online backup API, so a running
                            service can be backed up (it keeps writing while the copy is taken)
    database/sahay.pgdump   or, when SAHAY_DATABASE_URL names PostgreSQL, ``pg_dump --format=custom``
    home/...                from SAHAY_HOME: blobs/, analyses/, models/, knowledge/user/, mlruns/,
                            secret.key, and mlflow.db (also through the online backup API)

What can be rebuilt is left out: the vector index (embedded Qdrant, ``sahay cases reindex``), the
knowledge base's index (it re-indexes itself), training checkpoints and downloaded backbones.
Names starting with '.' are temporary files of writes in progress and are left out too.

Restoring checks everything before it writes anything: the manifest, that the schema is not newer
than this Sahay's, that the target is empty (unless ``force``), and every file's sha256. It then
copies the files into a staging folder inside SAHAY_HOME (hashing them again), moves what it
replaces aside, moves the new files in, and restores a PostgreSQL dump in one transaction; a
failure at any step moves everything back, so a restore is whole or absent.

Example::

    from pathlib import Path
    from sahay.services.backup import create_backup, restore_backup

    create_backup(Path("/backups/sahay-2026-01-31"))
    restore_backup(Path("/backups/sahay-2026-01-31"), force=True)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sahay.about import __version__
from sahay.config import Settings, get_settings
from sahay.errors import BadInput, SahayError, ServiceUnavailable
from sahay.progress import Progress, report

if TYPE_CHECKING:
    from sqlalchemy import URL

FORMAT = "sahay-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

HOME_FOLDERS = ("blobs", "analyses", "models", "knowledge/user", "mlruns")
"""Folders of SAHAY_HOME copied file by file."""
HOME_FILES = ("secret.key",)
HOME_SQLITE = ("mlflow.db",)
"""SQLite databases in SAHAY_HOME besides Sahay's own, copied with the online backup API."""
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""A database's side files: an old WAL must never be replayed into a restored database."""
REPLACED = (
    "blobs",
    "analyses",
    "models",
    "knowledge",
    "mlruns",
    "secret.key",
    *(f"{name}{side}" for name in HOME_SQLITE for side in ("", *SQLITE_SIDE_FILES)),
    "qdrant",
)
"""What a restore replaces in SAHAY_HOME (besides the SQLite database): the rest of ``knowledge/``
and ``qdrant/`` are indexes of the replaced data, removed so that they are rebuilt from it."""

_TOP = {"blobs", "analyses", "models", "knowledge", "mlruns", "secret.key", "mlflow.db"}
_DATABASE_FILES = {"sqlite": "database/sahay.db", "postgresql": "database/sahay.pgdump"}
_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")

DatabaseKind = Literal["sqlite", "postgresql"]


# The manifest ---------------------------------------------------------------------------------


class BackupFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    """Relative to the backup folder, with '/' separators: ``database/...`` or ``home/...``."""
    sha256: str
    size: int = Field(ge=0)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _SHA256.fullmatch(value):
            raise ValueError("expected 64 lowercase hexadecimal digits")
        return value

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        _check_backup_path(value)
        return value


class DatabaseInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: DatabaseKind
    file: str
    revision: str | None
    """The Alembic revision of the schema (``alembic_version``); None for an empty database."""


class BackupManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["sahay-backup"] = "sahay-backup"
    format_version: int = FORMAT_VERSION
    sahay_version: str
    created_at: datetime
    source_home: str
    database: DatabaseInfo | None
    """None when the backed-up home had no database yet."""
    schema_revision: str | None
    files: list[BackupFile]
    skipped: list[str] = Field(default_factory=list)
    """Files left out, with the reason (a symbolic link, a file deleted while the backup ran)."""


class BackupResult(BaseModel):
    """What ``sahay backup`` made."""

    path: Path
    files: int
    bytes: int
    database: DatabaseKind | None
    schema_revision: str | None
    skipped: list[str]


class RestoreResult(BaseModel):
    """What ``sahay restore`` put back."""

    home: Path
    files: int
    bytes: int
    database: DatabaseKind | None
    schema_revision: str | None
    backup_created_at: datetime
    backup_sahay_version: str
    rebuild: list[str]
    """Commands to run once the data is back: they rebuild the indexes a backup leaves out."""


REBUILD = ["sahay cases reindex"]
"""Rebuilds the case library's vector index, which a backup leaves out; the knowledge base
re-indexes itself on first use."""


# Backing up -----------------------------------------------------------------------------------


def create_backup(
    dest: Path, *, settings: Settings | None = None, progress: Progress | None = None
) -> BackupResult:
    """Write a backup of the configured database and SAHAY_HOME's files into the new folder ``dest``.

    The folder is written under a temporary name beside ``dest`` and renamed when complete, so a
    failed backup leaves nothing. Raises BadInput for a ``dest`` that exists (and is not an empty
    folder) or lies inside SAHAY_HOME, ServiceUnavailable when PostgreSQL's ``pg_dump`` is missing.
    """
    settings = settings or get_settings()
    home = settings.home_dir
    dest = Path(dest).expanduser().absolute()
    _check_destination(dest, home)
    if not home.is_dir():
        raise BadInput(f"SAHAY_HOME {home} does not exist: there is nothing to back up")
    try:
        _private_folders(dest.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    except OSError as exc:
        raise BadInput(f"cannot write the backup to {dest}: {exc.strerror or exc}") from exc
    try:
        os.chmod(staging, 0o700)
        database = _backup_database(settings, staging, progress)
        files = [_entry(staging, staging / database.file)] if database else []
        copied, skipped = _copy_home(home, staging / "home", progress)
        files += copied
        for name in HOME_SQLITE:
            if (home / name).is_file():
                report(progress, f"copying {name}")
                target = staging / "home" / name
                _sqlite_copy(home / name, target)
                files.append(_entry(staging, target))
        manifest = BackupManifest(
            sahay_version=__version__,
            created_at=datetime.now(UTC),
            source_home=str(home),
            database=database,
            schema_revision=database.revision if database else None,
            files=sorted(files, key=lambda f: f.path),
            skipped=skipped,
        )
        _write_private(staging / MANIFEST, manifest.model_dump_json(indent=2).encode() + b"\n")
        _fsync_folder(staging)
        report(progress, "finishing the backup")
        if dest.is_dir():
            dest.rmdir()  # an empty folder, checked above; the staged one, owner-only, takes its place
        os.rename(staging, dest)
        _fsync_folder(dest.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BackupResult(
        path=dest,
        files=len(manifest.files),
        bytes=sum(f.size for f in manifest.files),
        database=manifest.database.kind if manifest.database else None,
        schema_revision=manifest.schema_revision,
        skipped=skipped,
    )


def _check_destination(dest: Path, home: Path) -> None:
    if _inside(dest, home) or _inside(home, dest):
        raise BadInput(f"cannot back up SAHAY_HOME {home} into {dest}: give a folder outside it")
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BadInput(f"{dest} exists and is not a folder; give a new folder for the backup")
    if dest.is_dir() and any(dest.iterdir()):
        raise BadInput(f"{dest} is not empty; give a new folder for the backup")


def _backup_database(settings: Settings, staging: Path, progress: Progress | None) -> DatabaseInfo | None:
    """Copy the configured database into ``staging/database/``; None when there is none yet."""
    url = _configured_url(settings)
    kind = _kind(url)
    target = staging / _DATABASE_FILES[kind]
    if kind == "sqlite":
        path = _sqlite_path(url)
        if not path.is_file():
            return None
        report(progress, "copying the database (SQLite online backup)")
        _sqlite_copy(path, target)
        revision = _sqlite_revision(target)
    else:
        before = _postgres_revision(url)
        report(progress, "copying the database (pg_dump)")
        _private_folders(target.parent)
        _run_postgres_tool(
            "pg_dump", url, ["--format=custom", "--file", str(target)], [], "back up the database"
        )
        os.chmod(target, 0o600)
        if _postgres_revision(url) != before:
            raise BadInput("the database schema was migrated while the backup ran; run the backup again")
        revision = before
    return DatabaseInfo(kind=kind, file=_DATABASE_FILES[kind], revision=revision)


def _copy_home(home: Path, target: Path, progress: Progress | None) -> tuple[list[BackupFile], list[str]]:
    """Copy the backed-up files of ``home`` into ``target``, hashing as they are read."""
    sources, skipped = _home_files(home)
    total = sum(size for _, size in sources)
    done = 0
    entries: list[BackupFile] = []
    report(progress, "copying files", 0, total, unit="bytes")
    for relative, _size in sources:
        source, copy = home / relative, target / relative
        try:
            sha, size = _copy_hashed(source, copy)
        except FileNotFoundError:
            skipped.append(f"home/{relative}: deleted while the backup ran")
            continue
        except OSError as exc:
            raise BadInput(f"cannot read {source}: {exc.strerror or exc}; check its permissions") from exc
        entries.append(BackupFile(path=f"home/{relative}", sha256=sha, size=size))
        done += size
        report(progress, "copying files", done, total, unit="bytes")
    return entries, skipped


def _home_files(home: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(path relative to ``home`` with '/', size) of every file to back up, and what is skipped."""
    found: list[tuple[str, int]] = []
    skipped: list[str] = []

    def add(path: Path) -> None:
        relative = path.relative_to(home).as_posix()
        if path.is_symlink():
            skipped.append(f"home/{relative}: a symbolic link")
        elif path.is_file():
            with contextlib.suppress(FileNotFoundError):
                found.append((relative, path.stat().st_size))

    for folder in HOME_FOLDERS:
        root = home / folder
        if root.is_symlink() or not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in list(dirnames):
                if (here / name).is_symlink():
                    skipped.append(f"home/{(here / name).relative_to(home).as_posix()}: a symbolic link")
                    dirnames.remove(name)
            for name in sorted(filenames):
                if not name.startswith("."):
                    add(here / name)
    for name in HOME_FILES:
        if (home / name).exists() or (home / name).is_symlink():
            add(home / name)
    return found, skipped


# Restoring ------------------------------------------------------------------------------------


def restore_backup(
    source: Path,
    *,
    force: bool = False,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the backup folder ``source`` into the configured SAHAY_HOME and database.

    Refuses (BadInput) a missing or damaged backup, one from a newer schema or for the other kind
    of database, and a SAHAY_HOME or database that already holds data, unless ``force``. Nothing is
    written before every check has passed; then the restore is whole or absent.
    """
    settings = settings or get_settings()
    source = Path(source).expanduser().absolute()
    home = settings.home_dir.absolute()
    manifest = read_manifest(source)
    _check_schema(manifest)
    url = _configured_url(settings)
    kind = _kind(url)
    if manifest.database is not None and manifest.database.kind != kind:
        raise BadInput(
            f"the backup {source} holds a {manifest.database.kind} database, but the configured one "
            f"is {kind}; set SAHAY_DATABASE_URL to a {manifest.database.kind} database to restore it"
        )
    sqlite_path = _sqlite_path(url) if kind == "sqlite" else None
    if _inside(source, home) or _inside(home, source):
        raise BadInput(f"cannot restore {source} into SAHAY_HOME {home}: keep the backup outside it")
    if not force:
        _check_empty(home, url, kind, sqlite_path)
    _verify(source, manifest, progress)

    # Every check passed: from here on, files are written.
    from sahay.store.db import reset_engines

    created_home = not home.exists()
    _private_folders(home)
    work = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    swap = _Swap(work / "old")
    try:
        _stage_files(source, manifest, work, progress)
        database_file = work / manifest.database.file if manifest.database else None
        if (
            database_file is not None
            and kind == "sqlite"
            and _sqlite_revision(database_file) != manifest.schema_revision
        ):
            raise BadInput(
                f"the backup {source} is damaged: its database's schema revision is not the one "
                f"{MANIFEST} gives"
            )
        reset_engines()  # no pooled connection may keep a replaced database open
        report(progress, "moving the restored files into place")
        for name in REPLACED:
            swap.aside(home / name)
        if sqlite_path is not None:
            for side in ("", *SQLITE_SIDE_FILES):
                swap.aside(Path(f"{sqlite_path}{side}"))
            if database_file is not None:
                staged = database_file
                if sqlite_path.parent != home:  # a database outside SAHAY_HOME: stage it beside its place
                    staged = sqlite_path.with_name(f".{sqlite_path.name}.restore-{work.name}")
                    swap.temporary.append(staged)
                    _copy_hashed(database_file, staged)
                swap.place(staged, sqlite_path)
        new = work / "new"
        for entry in sorted(new.iterdir()) if new.is_dir() else []:
            swap.place(entry, home / entry.name)
        if kind == "postgresql" and database_file is not None:
            # Last: one transaction, so a failure leaves the database as it was and the files move back.
            report(progress, "restoring the database (pg_restore)")
            options = ["--single-transaction", "--no-owner", "--no-privileges"]
            if force:
                options += ["--clean", "--if-exists"]
            _run_postgres_tool("pg_restore", url, options, [str(database_file)], "restore the database")
    except BaseException as exc:
        if not swap.undo():
            raise SahayError(
                f"the restore failed ({exc}), and some of what it replaced could not be moved back: "
                f"it is in {swap.aside_folder}; move it back into {home} by hand"
            ) from exc
        shutil.rmtree(work, ignore_errors=True)
        if created_home:
            with contextlib.suppress(OSError):
                home.rmdir()  # a target that did not exist is left absent
        raise
    finally:
        reset_engines()
    shutil.rmtree(work, ignore_errors=True)  # the replaced data, after a forced restore
    return RestoreResult(
        home=home,
        files=len(manifest.files),
        bytes=sum(f.size for f in manifest.files),
        database=manifest.database.kind if manifest.database else None,
        schema_revision=manifest.schema_revision,
        backup_created_at=manifest.created_at,
        backup_sahay_version=manifest.sahay_version,
        rebuild=REBUILD,
    )


def read_manifest(source: Path) -> BackupManifest:
    """The backup's manifest, checked; BadInput for a folder that is not a readable Sahay backup."""
    path = source / MANIFEST
    if not source.is_dir():
        raise BadInput(f"{source} is not a folder; give the folder `sahay backup` made")
    if not path.is_file():
        raise BadInput(f"{source} is not a Sahay backup: it has no {MANIFEST}")
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BadInput(f"the backup {source} is damaged: {MANIFEST} cannot be read ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadInput(f"{source} is not a Sahay backup: {MANIFEST} does not say format {FORMAT!r}")
    version = data.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise BadInput(
            f"the backup {source} was written by a newer Sahay ({data.get('sahay_version')}, backup "
            f"format {version}); this one reads format {FORMAT_VERSION}: upgrade Sahay to restore it"
        )
    try:
        manifest = BackupManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(f"the backup {source} is damaged: {MANIFEST} {where}: {first['msg']}") from exc
    paths = [f.path for f in manifest.files]
    if len(set(paths)) != len(paths):
        raise BadInput(f"the backup {source} is damaged: {MANIFEST} lists a file twice")
    database = manifest.database
    expected = {_DATABASE_FILES[database.kind]} if database else set()
    if (database and database.file not in expected) or {
        p for p in paths if p.startswith("database/")
    } != expected:
        raise BadInput(
            f"the backup {source} is damaged: {MANIFEST} does not list its database file as written"
        )
    return manifest


def _check_schema(manifest: BackupManifest) -> None:
    revision = manifest.schema_revision
    if manifest.database is not None and manifest.database.revision != revision:
        raise BadInput("the backup is damaged: manifest.json gives two different schema revisions")
    if revision is None:
        return
    head, known = _known_revisions()
    if revision not in known:
        raise BadInput(
            f"the backup's database schema (revision {revision}, Sahay {manifest.sahay_version}) is "
            f"newer than this Sahay's (revision {head}, Sahay {__version__}); upgrade Sahay to restore it"
        )


def _known_revisions() -> tuple[str | None, set[str]]:
    from alembic.script import ScriptDirectory

    from sahay.store.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return script.get_current_head(), {r.revision for r in script.walk_revisions()}


def _check_empty(home: Path, url: URL, kind: DatabaseKind, sqlite_path: Path | None) -> None:
    if home.is_dir() and any(home.iterdir()):
        raise BadInput(
            f"SAHAY_HOME {home} is not empty; restore into an empty or new folder, "
            "or give --force to replace its data with the backup's"
        )
    if sqlite_path is not None and sqlite_path.exists():
        raise BadInput(f"the database {sqlite_path} exists; give --force to replace it with the backup's")
    if kind == "postgresql":
        tables = _postgres_tables(url)
        if tables:
            raise BadInput(
                f"the database at SAHAY_DATABASE_URL has tables ({', '.join(sorted(tables)[:5])}); restore "
                "into an empty database, or give --force to replace them with the backup's"
            )


def _verify(source: Path, manifest: BackupManifest, progress: Progress | None) -> None:
    """Check every file against its sha256 and size before anything is written."""
    total = sum(f.size for f in manifest.files)
    done = 0
    report(progress, "checking the backup", 0, total, unit="bytes")
    for entry in manifest.files:
        path = source / entry.path
        if path.is_symlink() or not path.is_file():
            raise BadInput(f"the backup {source} is damaged: {entry.path} is missing")
        if path.stat().st_size != entry.size:
            raise BadInput(f"the backup {source} is damaged: {entry.path} does not have its recorded size")
        try:
            sha = _sha256(path)
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
        if sha != entry.sha256:
            raise BadInput(
                f"the backup {source} is damaged: {entry.path} does not match its sha256 in {MANIFEST}"
            )
        done += entry.size
        report(progress, "checking the backup", done, total, unit="bytes")


def _stage_files(source: Path, manifest: BackupManifest, work: Path, progress: Progress | None) -> None:
    """Copy the backup's files into ``work`` (home files under ``work/new``), hashing them again."""
    total = sum(f.size for f in manifest.files)
    done = 0
    report(progress, "copying files", 0, total, unit="bytes")
    for entry in manifest.files:
        parts = PurePosixPath(entry.path).parts
        target = work.joinpath("new", *parts[1:]) if parts[0] == "home" else work.joinpath(*parts)
        try:
            sha, _size = _copy_hashed(source / entry.path, target)
        except OSError as exc:
            raise BadInput(f"cannot read {source / entry.path}: {exc.strerror or exc}") from exc
        if sha != entry.sha256:
            raise BadInput(f"the backup {source} changed while it was restored: {entry.path}; try again")
        done += entry.size
        report(progress, "copying files", done, total, unit="bytes")


@dataclass
class _Swap:
    """Moves done while restoring, undone in reverse order when a later step fails."""

    aside_folder: Path
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    placed: list[Path] = field(default_factory=list)
    temporary: list[Path] = field(default_factory=list)
    """Staged files outside the staging folder (a SQLite database kept outside SAHAY_HOME)."""

    def aside(self, path: Path) -> None:
        if not (path.exists() or path.is_symlink()):
            return
        _private_folders(self.aside_folder)
        kept = self.aside_folder / f"{len(self.moved)}-{path.name}"
        os.rename(path, kept)
        self.moved.append((path, kept))

    def place(self, staged: Path, final: Path) -> None:
        os.rename(staged, final)
        self.placed.append(final)

    def undo(self) -> bool:
        """Remove what was placed and move back what was moved aside; False if something stayed aside."""
        for final in reversed(self.placed):
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final, ignore_errors=True)
            else:
                final.unlink(missing_ok=True)
        for path in self.temporary:
            path.unlink(missing_ok=True)
        whole = True
        for original, kept in reversed(self.moved):
            try:
                os.rename(kept, original)
            except OSError:
                whole = False
        return whole


# Databases ------------------------------------------------------------------------------------


def _configured_url(settings: Settings) -> URL:
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    from sahay.store.db import database_url

    text = database_url(settings)
    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        raise BadInput(
            "SAHAY_DATABASE_URL is not a database URL; use e.g. "
            "postgresql+psycopg://user:password@host/sahay, or unset it for SQLite under SAHAY_HOME"
        ) from None


def _kind(url: URL) -> DatabaseKind:
    backend = url.get_backend_name()
    if backend in ("sqlite", "postgresql"):
        return backend  # type: ignore[return-value]
    raise BadInput(f"cannot back up or restore a {backend} database: Sahay supports SQLite and PostgreSQL")


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BadInput(f"cannot back up or restore the SQLite database {database or '(in memory)'}")
    return Path(database).expanduser().absolute()


def _sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database through its online backup API, as one file."""
    _private_folders(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        reader = sqlite3.connect(source, timeout=30)
    except sqlite3.Error as exc:
        raise BadInput(f"cannot open the database {source}: {exc}") from exc
    try:
        writer = sqlite3.connect(target)
        try:
            # All pages in one step: one read transaction, so the copy is one moment of the database
            # (WAL lets the service keep writing meanwhile), and never restarts because of a write.
            reader.backup(writer)
            writer.execute("PRAGMA journal_mode=DELETE")
            check = writer.execute("PRAGMA quick_check").fetchone()
        finally:
            writer.close()
    except sqlite3.Error as exc:
        raise BadInput(f"cannot copy the database {source}: {exc}") from exc
    finally:
        reader.close()
    if not check or check[0] != "ok":
        raise BadInput(f"the database {source} failed SQLite's integrity check: {check}")
    os.chmod(target, 0o600)


def _sqlite_revision(path: Path) -> str | None:
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BadInput(f"cannot open the database {path}: {exc}") from exc
    try:
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchall()
        if not tables:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(row[0]) if row else None
    except sqlite3.Error as exc:
        raise BadInput(f"the database {path} cannot be read: {exc}") from exc
    finally:
        connection.close()


def _postgres_revision(url: URL) -> str | None:
    from sqlalchemy import inspect, text

    from sahay.store.db import build_engine

    engine = build_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            value = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if value is None else str(value)
    finally:
        engine.dispose()


def _postgres_tables(url: URL) -> list[str]:
    from sqlalchemy import inspect

    from sahay.store.db import build_engine

    engine = build_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            return list(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def _run_postgres_tool(tool: str, url: URL, options: list[str], files: list[str], purpose: str) -> None:
    """Run ``pg_dump`` or ``pg_restore`` on the database at ``url``; the password goes in the
    environment (PGPASSWORD), never on the command line."""
    program = shutil.which(tool)
    if program is None:
        raise ServiceUnavailable(
            f"{tool} is not installed (or not on PATH); install PostgreSQL's client programs, "
            "of the server's major version or newer, to back up or restore a PostgreSQL database"
        )
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    command = [program, *options, "--dbname", conninfo, *files]
    try:
        subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or "").strip()
        if url.password:
            output = output.replace(str(url.password), "***")
        raise SahayError(f"{tool} could not {purpose} (exit {exc.returncode}): {output}") from None
    except OSError as exc:
        raise ServiceUnavailable(f"cannot run {program}: {exc.strerror or exc}") from exc


# Files ----------------------------------------------------------------------------------------


def _check_backup_path(path: str) -> None:
    """A manifest path must name a file the backup may hold; nothing that could leave the target."""
    pure = PurePosixPath(path)
    parts = pure.parts
    bad = (
        not path
        or "\\" in path
        or pure.is_absolute()
        or pure.as_posix() != path
        or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
    )
    if bad or len(parts) < 2:
        raise ValueError(f"{path!r} is not a path inside the backup")
    if parts[0] == "database":
        if path not in _DATABASE_FILES.values():
            raise ValueError(f"{path!r} is not a database file Sahay writes")
    elif parts[0] == "home":
        if parts[1] not in _TOP or (parts[1] == "knowledge" and (len(parts) < 4 or parts[2] != "user")):
            raise ValueError(f"{path!r} is not part of SAHAY_HOME that a backup holds")
        if parts[1] in ("secret.key", "mlflow.db") and len(parts) != 2:
            raise ValueError(f"{path!r} is not part of SAHAY_HOME that a backup holds")
    else:
        raise ValueError(f"{path!r} is neither under database/ nor under home/")


def _entry(root: Path, path: Path) -> BackupFile:
    return BackupFile(path=path.relative_to(root).as_posix(), sha256=_sha256(path), size=path.stat().st_size)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_hashed(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to a new owner-only file ``target``; (sha256, size) of what was copied."""
    _private_folders(target.parent)
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as reader:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as writer:
            os.fchmod(writer.fileno(), 0o600)
            for chunk in iter(lambda: reader.read(_CHUNK), b""):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
    return digest.hexdigest(), size


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _private_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, owner-only (0700)."""
    missing = list(_missing(folder))
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder")


def _missing(folder: Path) -> Iterator[Path]:
    while not folder.exists() and folder != folder.parent:
        yield folder
        folder = folder.parent


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(fd)


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (following symbolic links)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
