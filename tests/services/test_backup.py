"""`sahay backup` and `sahay restore`: a populated SAHAY_HOME (users, an analysis made by the web
service's workspace with the demonstration model, the model bundle, a knowledge document, the token
key) is backed up with the command line and restored into a fresh SAHAY_HOME, then compared: the
same rows in every table, the same blobs, analyses, models and key. Damaged backups, backups from a
newer schema and homes that already hold data are refused, and the target is left as it was."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy.pool import NullPool

from sahay.about import __version__
from sahay.cli import main
from sahay.config import Settings, get_settings, reload_settings
from sahay.fileio import sha256_file
from sahay.models.registry import import_path
from sahay.progress import Step
from sahay.services import accounts
from sahay.services.backup import create_backup, restore_backup
from sahay.services.demo import write_example_image
from sahay.services.models import installed_models
from sahay.services.workspace import Workspace
from sahay.store import BlobStore, alembic_config, reset_engines, session_scope
from sahay.store.records import AnalysisRecord, Base, UserRecord
from sahay.store.tokens import signing_key
from tests.postgres import PostgresNotInstalled, postgres_server
from tests.system import missing

UNREACHABLE = "http://127.0.0.1:9/unreachable"
DEMO = "sahay-demo-synthetic"
BACKED_UP = ("blobs", "analyses", "models", "knowledge/user")


def run(*args: str) -> int:
    """``sahay ARGS`` as the command line runs it; its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return int(exited.value.code or 0)


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path, database_url: str | None = None) -> Settings:
    monkeypatch.setenv("SAHAY_HOME", str(home))
    monkeypatch.setenv("SAHAY_MODEL_MIRROR", UNREACHABLE)
    for name in ("SAHAY_QDRANT_URL", "SAHAY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    if database_url:
        monkeypatch.setenv("SAHAY_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("SAHAY_DATABASE_URL", raising=False)
    return reload_settings()


def populate(settings: Settings, bundle: Path, scratch: Path) -> None:
    """What a service in use holds: users, an analysis with its upload, a model, a document, a key."""
    import_path(bundle, settings)
    clinician = accounts.create_user(
        f"clinician-{uuid.uuid4().hex[:6]}", "a long password 1", "clinician", settings=settings
    )
    accounts.create_user(f"admin-{uuid.uuid4().hex[:6]}", "a long password 2", "admin", settings=settings)
    signing_key(settings)  # secret.key, as the web service makes it at start
    with session_scope(settings) as session:
        owner = session.get(UserRecord, clinician.id)
    assert owner is not None
    image = scratch / "chest.png"
    write_example_image(image, disc=True)
    workspace = Workspace(settings)
    try:
        upload = workspace.spool("chest.png", io.BytesIO(image.read_bytes()))
        workspace.create(owner, replace(upload, notes="Dry cough for three weeks.", model=DEMO))
    finally:
        workspace.close()
    user_documents = settings.home_dir / "knowledge" / "user"
    user_documents.mkdir(parents=True)
    (user_documents / "local-protocol.md").write_text("# Local protocol\n\nCall the radiologist.\n")


@dataclass(frozen=True)
class Snapshot:
    users: list[tuple[Any, ...]]
    analyses: list[tuple[Any, ...]]
    tables: dict[str, list[tuple[Any, ...]]]
    files: dict[str, bytes]
    blobs: dict[str, bytes]
    """The upload of each analysis, by its sha256, read through the blob store."""


def snapshot(settings: Settings) -> Snapshot:
    with session_scope(settings) as session:
        users = [
            (u.id, u.username, u.password_hash, u.role, u.active, u.created_at)
            for u in session.scalars(select(UserRecord).order_by(UserRecord.username))
        ]
        records = list(session.scalars(select(AnalysisRecord).order_by(AnalysisRecord.id)))
        analyses = [
            (a.id, a.owner_id, a.created_at, a.filename, a.model_name, a.image_blob, a.notes_text)
            for a in records
        ]
        tables = {
            table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }
    store = BlobStore(settings.blobs_dir)
    blobs = {a.image_blob: store.path(a.image_blob).read_bytes() for a in records}
    home = settings.home_dir
    files = {
        path.relative_to(home).as_posix(): path.read_bytes()
        for folder in BACKED_UP
        for path in sorted((home / folder).rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(home).parts)
    }
    files["secret.key"] = (home / "secret.key").read_bytes()
    return Snapshot(users, analyses, tables, files, blobs)


@dataclass(frozen=True)
class Original:
    home: Path
    backup: Path
    snapshot: Snapshot


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory, demo_bundle_dir: Path) -> Iterator[Original]:
    """A populated SAHAY_HOME (SQLite) and its backup, made once by `sahay backup`."""
    root = tmp_path_factory.mktemp("backup-original")
    with pytest.MonkeyPatch.context() as patch:
        settings = use_home(patch, root / "home")
        populate(settings, demo_bundle_dir, root)
        assert run("backup", str(root / "backup")) == 0
        taken = snapshot(settings)
    get_settings.cache_clear()
    reset_engines()
    yield Original(root / "home", root / "backup", taken)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def manifest_of(backup: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((backup / "manifest.json").read_text())
    return data


def copy_backup(original: Original, to: Path) -> Path:
    shutil.copytree(original.backup, to)
    return to


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# Backing up -------------------------------------------------------------------------------------


def test_a_backup_is_owner_only_and_its_manifest_names_every_file(original: Original) -> None:
    backup = original.backup
    assert mode(backup) == 0o700
    written = {p.relative_to(backup).as_posix() for p in backup.rglob("*") if p.is_file()}
    for path in backup.rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    manifest = manifest_of(backup)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == written - {"manifest.json"}
    for name, entry in listed.items():
        assert sha256_file(backup / name) == entry["sha256"]
        assert (backup / name).stat().st_size == entry["size"]
    assert manifest["sahay_version"] == __version__
    assert manifest["schema_revision"] == manifest["database"]["revision"] == head_revision()
    assert manifest["database"] == {
        "kind": "sqlite",
        "file": "database/sahay.db",
        "revision": head_revision(),
    }
    created = datetime.fromisoformat(manifest["created_at"])
    assert timedelta(0) <= datetime.now(UTC) - created < timedelta(hours=1)
    # The database is one self-contained file (the online backup, not the live file and its WAL).
    assert "home/sahay.db" not in listed and "database/sahay.db-wal" not in written
    # Everything in the home that a restore needs, and none of the indexes it rebuilds.
    assert set(listed) >= {"database/sahay.db", "home/secret.key", "home/knowledge/user/local-protocol.md"}
    assert {f"home/{name}" for name in original.snapshot.files} <= set(listed)
    for part in ("blobs/", "analyses/", f"models/{DEMO}/"):
        assert any(name.startswith(f"home/{part}") for name in listed), part
    assert not any(name.startswith(("home/qdrant", "home/knowledge/documents")) for name in listed)


def test_the_database_is_copied_while_a_writer_holds_it(settings: Settings, tmp_path: Path) -> None:
    """The online backup copies the last committed state while another connection is writing."""
    user = accounts.create_user("writer-test", "a long password 3", "clinician", settings=settings)
    writer = sqlite3.connect(settings.home_dir / "sahay.db", isolation_level=None)
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock until the end of the test
        writer.execute("UPDATE users SET role = 'admin' WHERE id = ?", (user.id,))
        steps: list[Step] = []
        result = create_backup(tmp_path / "backup", settings=settings, progress=steps.append)
        writer.execute("COMMIT")
    finally:
        writer.close()
    copy = sqlite3.connect(tmp_path / "backup" / "database" / "sahay.db")
    try:
        assert copy.execute("SELECT role FROM users WHERE id = ?", (user.id,)).fetchone() == ("clinician",)
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        copy.close()
    assert result.database == "sqlite" and result.schema_revision == head_revision()
    assert any("database" in step.message for step in steps)


@pytest.mark.parametrize("where", ["not-empty", "inside-home"])
def test_a_backup_needs_a_new_folder_outside_the_home(
    where: str, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts.create_user("someone", "a long password 4", "clinician", settings=settings)
    if where == "not-empty":
        dest = tmp_path / "used"
        dest.mkdir()
        (dest / "keep.txt").write_text("mine")
    else:
        dest = settings.home_dir / "backups" / "today"
    assert run("backup", str(dest)) == 2
    assert "error:" in capsys.readouterr().err
    if where == "not-empty":
        assert [p.name for p in dest.iterdir()] == ["keep.txt"]
        assert not [p for p in dest.parent.iterdir() if ".partial-" in p.name]
    else:
        assert not (settings.home_dir / "backups").exists()


# Restoring --------------------------------------------------------------------------------------


def test_restore_into_a_fresh_home_gives_back_the_same_data(
    original: Original, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "restored-home"
    settings = use_home(monkeypatch, target)
    assert run("restore", str(original.backup)) == 0
    restored = snapshot(settings)
    assert restored.users == original.snapshot.users
    assert len(restored.users) == 2
    assert restored.analyses == original.snapshot.analyses
    assert len(restored.analyses) == 1
    assert restored.tables == original.snapshot.tables
    assert restored.blobs == original.snapshot.blobs
    assert restored.files.keys() == original.snapshot.files.keys()
    assert restored.files == original.snapshot.files
    assert [m.name for m in installed_models(settings)] == [DEMO]
    assert mode(target) == 0o700
    assert mode(target / "secret.key") == 0o600
    assert not [p for p in target.iterdir() if p.name.startswith(".restore-")]


@pytest.mark.parametrize(
    "damage",
    ["a blob", "the database", "the model weights", "the knowledge document", "a missing file"],
)
def test_a_damaged_backup_is_refused_and_the_target_left_untouched(
    damage: str, original: Original, sahay_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = copy_backup(original, tmp_path / "damaged")
    names = [entry["path"] for entry in manifest_of(backup)["files"]]
    prefix = {
        "a blob": "home/blobs/",
        "the database": "database/",
        "the model weights": f"home/models/{DEMO}/",
        "the knowledge document": "home/knowledge/",
        "a missing file": "home/analyses/",
    }[damage]
    chosen = max((n for n in names if n.startswith(prefix)), key=lambda n: (backup / n).stat().st_size)
    if damage == "a missing file":
        (backup / chosen).unlink()
    else:
        flip_one_byte(backup / chosen)
    assert run("restore", str(backup)) == 2
    error = capsys.readouterr().err
    assert "damaged" in error and chosen in error
    assert list(sahay_home.iterdir()) == []


def test_restore_refuses_a_home_with_data_unless_forced(
    original: Original, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = settings.home_dir
    accounts.create_user("already-here", "a long password 5", "clinician", settings=settings)
    stray = home / "blobs" / "zz" / "stray.png"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not in the backup")
    unrelated = home / "admin-notes.txt"
    unrelated.write_text("a file Sahay does not manage")

    def usernames() -> list[str]:
        return sorted(user.username for user in accounts.list_users(settings))

    assert run("restore", str(original.backup)) == 2
    error = capsys.readouterr().err
    assert "not empty" in error and "--force" in error
    assert usernames() == ["already-here"] and stray.exists()

    # A damaged backup is refused even with --force, and the data stays as it was.
    damaged = copy_backup(original, tmp_path / "damaged")
    flip_one_byte(damaged / "database" / "sahay.db")
    assert run("restore", str(damaged), "--force") == 2
    assert usernames() == ["already-here"] and stray.exists()
    assert not [p for p in home.iterdir() if p.name.startswith(".restore-")]

    steps: list[Step] = []
    result = restore_backup(original.backup, force=True, settings=settings, progress=steps.append)
    assert usernames() == sorted(user[1] for user in original.snapshot.users)
    assert snapshot(settings) == original.snapshot
    assert not stray.exists()  # the backup's blobs replace the home's, whole
    assert unrelated.read_text() == "a file Sahay does not manage"
    assert not [p for p in home.iterdir() if p.name.startswith(".restore-")]
    assert result.rebuild == ["sahay cases reindex"]
    messages = [step.message for step in steps]
    assert messages.index("checking the backup") < messages.index("copying files")
    last = [s for s in steps if s.message == "checking the backup"][-1]
    assert last.unit == "bytes" and last.done == last.total == result.bytes


def test_a_backup_from_a_newer_schema_is_refused(
    original: Original, sahay_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = copy_backup(original, tmp_path / "future")
    database = backup / "database" / "sahay.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future'")
    connection.close()
    manifest = manifest_of(backup)
    manifest["schema_revision"] = manifest["database"]["revision"] = "9999_future"
    for entry in manifest["files"]:
        if entry["path"] == "database/sahay.db":
            entry.update(sha256=sha256_file(database), size=database.stat().st_size)
    (backup / "manifest.json").write_text(json.dumps(manifest))
    assert run("restore", str(backup)) == 2
    error = capsys.readouterr().err
    assert "newer" in error and "9999_future" in error
    assert list(sahay_home.iterdir()) == []


def test_a_folder_that_is_not_a_backup_is_refused(
    sahay_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("restore", str(tmp_path / "absent")) == 2
    (tmp_path / "escape").mkdir()
    manifest = {
        "format": "sahay-backup",
        "format_version": 1,
        "sahay_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "source_home": "/elsewhere",
        "database": None,
        "schema_revision": None,
        "files": [{"path": "home/../../etc/cron.d/x", "sha256": "0" * 64, "size": 0}],
    }
    (tmp_path / "escape" / "manifest.json").write_text(json.dumps(manifest))
    assert run("restore", str(tmp_path / "escape")) == 2
    assert "damaged" in capsys.readouterr().err
    assert list(sahay_home.iterdir()) == []


# PostgreSQL -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on a PostgreSQL server started for this module."""
    try:
        with postgres_server() as url:
            engine = create_engine(make_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
            yield engine
            engine.dispose()
    except PostgresNotInstalled:
        missing("PostgreSQL")


@pytest.mark.slow
def test_a_postgresql_backup_restores_into_another_database(
    postgres_admin: Engine, demo_bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        missing("pg_dump and pg_restore")
    names = [f"t_{uuid.uuid4().hex}" for _ in range(2)]
    with postgres_admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    source_url, target_url = (
        postgres_admin.url.set(database=name).render_as_string(hide_password=False) for name in names
    )
    try:
        settings = use_home(monkeypatch, tmp_path / "home", source_url)
        populate(settings, demo_bundle_dir, tmp_path)
        taken = snapshot(settings)
        assert run("backup", str(tmp_path / "backup")) == 0
        manifest = manifest_of(tmp_path / "backup")
        assert manifest["database"] == {
            "kind": "postgresql",
            "file": "database/sahay.pgdump",
            "revision": head_revision(),
        }
        assert not any(entry["path"].endswith(".db") for entry in manifest["files"])
        assert str(make_url(source_url).password) not in (tmp_path / "backup" / "manifest.json").read_text()

        restored_settings = use_home(monkeypatch, tmp_path / "restored", target_url)
        assert run("restore", str(tmp_path / "backup")) == 0
        assert snapshot(restored_settings) == taken
        assert len(taken.analyses) == 1

        # A database with tables is refused; --force replaces them (pg_restore --clean, one transaction).
        accounts.create_user("added-later", "a long password 6", "clinician", settings=restored_settings)
        assert run("restore", str(tmp_path / "backup")) == 2
        assert run("restore", str(tmp_path / "backup"), "--force") == 0
        assert snapshot(restored_settings) == taken
    finally:
        reset_engines()
        with postgres_admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_the_backup_folder_is_private_whatever_the_umask(settings: Settings, tmp_path: Path) -> None:
    accounts.create_user("umask-test", "a long password 7", "clinician", settings=settings)
    previous = os.umask(0o000)
    try:
        create_backup(tmp_path / "open-umask", settings=settings)
    finally:
        os.umask(previous)
    for path in [tmp_path / "open-umask", *(tmp_path / "open-umask").rglob("*")]:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
