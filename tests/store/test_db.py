"""Engines, migrations and sessions, on a fresh SQLite and a fresh PostgreSQL database per test.

Tests that take ``database`` run once per backend (tests/store/conftest.py); the rest are about
SQLite alone or need no database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from sahay.config import Settings, reload_settings
from sahay.errors import BadInput
from sahay.store import (
    Base,
    CaseRecord,
    alembic_config,
    database_url,
    get_engine,
    migrate,
    reset_engines,
    session_scope,
)

CASE_COLUMNS = {
    "id",
    "created_at",
    "modality",
    "body_part",
    "image_sha256",
    "image_blob",
    "thumbnail_blob",
    "model_name",
    "model_version",
    "labels",
    "probabilities",
    "analysis_json",
    "notes",
    "diagnosis",
    "comment",
    "report",
    "tags",
    "source",
}


@pytest.fixture(autouse=True)
def fresh_engines() -> Iterator[None]:
    reset_engines()
    yield
    reset_engines()


def make_case(**overrides: object) -> CaseRecord:
    values: dict[str, object] = {
        "modality": "CR",
        "body_part": "CHEST",
        "image_sha256": uuid.uuid4().hex * 2,
        "image_blob": "b" * 64,
        "thumbnail_blob": "c" * 64,
        "model_name": "sahay-demo-synthetic",
        "model_version": "1.0.0",
        "labels": ["Effusion", "Pneumonia"],
        "probabilities": [0.125, 0.75],
        "analysis_json": '{"schema_version": 1}',
        "source": "train/0001.png",
    }
    values.update(overrides)
    return CaseRecord(**values)


def test_database_url_defaults_to_sqlite_in_home(settings: Settings) -> None:
    assert database_url(settings) == f"sqlite:///{settings.home_dir / 'sahay.db'}"
    assert database_url(Settings(database_url="postgresql+psycopg://h/db")) == "postgresql+psycopg://h/db"


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_sqlite_database_is_a_file_in_home(settings: Settings) -> None:
    engine = get_engine(settings)
    assert engine.dialect.name == "sqlite"
    assert (settings.home_dir / "sahay.db").is_file()


def test_database_url_picks_the_backend(database: Settings, request: pytest.FixtureRequest) -> None:
    assert get_engine(database).dialect.name == request.node.callspec.params["database"]


def test_migrations_create_the_cases_table(database: Settings) -> None:
    engine = get_engine(database)
    inspector = inspect(engine)
    assert {column["name"] for column in inspector.get_columns("cases")} == CASE_COLUMNS
    assert inspector.get_pk_constraint("cases")["constrained_columns"] == ["id"]
    unique = {item["name"]: item["column_names"] for item in inspector.get_unique_constraints("cases")}
    assert unique["uq_cases_image_model"] == ["image_sha256", "model_name", "model_version"]
    indexes = {item["name"]: item["column_names"] for item in inspector.get_indexes("cases")}
    assert indexes["ix_cases_image_sha256"] == ["image_sha256"]
    assert indexes["ix_cases_source"] == ["source"]
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()


def assert_schema_matches_models(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migrations_match_the_models(database: Settings) -> None:
    assert_schema_matches_models(get_engine(database))


def test_sqlite_pragmas_are_set_on_every_connection(settings: Settings) -> None:
    engine = get_engine(settings)
    for _ in range(2):
        with engine.connect() as connection:
            assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1
            assert connection.scalar(text("PRAGMA busy_timeout")) == 5000
            assert connection.scalar(text("PRAGMA synchronous")) == 1  # NORMAL
        engine.dispose()  # the next connection is a new one


def test_get_engine_is_cached_per_url(database: Settings) -> None:
    engine = get_engine(database)
    assert get_engine(database) is engine
    assert get_engine() is engine  # the same settings, read again through get_settings()
    reset_engines()
    assert get_engine(database) is not engine


def test_concurrent_first_calls_share_one_migrated_engine(database: Settings) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        engines = list(pool.map(lambda _: get_engine(database), range(16)))
    assert len({id(engine) for engine in engines}) == 1
    assert inspect(engines[0]).has_table("cases")


def test_case_round_trip(database: Settings) -> None:
    before = datetime.now(UTC)
    with session_scope(database) as session:
        record = make_case(tags=["teaching"], notes="cough, fever")
        session.add(record)
        session.flush()
        case_id = record.id
    assert len(case_id) == 32 and int(case_id, 16) >= 0
    reset_engines()  # read back through a new engine, not the identity map
    with session_scope(database) as session:
        loaded = session.get_one(CaseRecord, case_id)
        assert loaded.labels == ["Effusion", "Pneumonia"]
        assert loaded.probabilities == [0.125, 0.75]
        assert loaded.tags == ["teaching"]
        assert loaded.notes == "cough, fever"
        assert loaded.diagnosis is None
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= loaded.created_at <= datetime.now(UTC)


def test_defaults_and_in_place_tag_edits(database: Settings) -> None:
    with session_scope(database) as session:
        record = make_case()
        session.add(record)
    assert record.tags == []
    with session_scope(database) as session:
        loaded = session.get_one(CaseRecord, record.id)  # the session holds objects weakly: keep a reference
        loaded.tags.append("reviewed")
    with session_scope(database) as session:
        assert session.get_one(CaseRecord, record.id).tags == ["reviewed"]


def test_created_at_is_stored_as_utc(database: Settings) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    with session_scope(database) as session:
        record = make_case(created_at=datetime(2024, 3, 1, 10, 0, tzinfo=india))
        session.add(record)
    reset_engines()
    with session_scope(database) as session:
        loaded = session.get_one(CaseRecord, record.id)
        assert loaded.created_at == datetime(2024, 3, 1, 4, 30, tzinfo=UTC)
        assert loaded.created_at.tzinfo == UTC


def test_naive_datetime_is_refused(database: Settings) -> None:
    with pytest.raises(Exception, match="naive datetime"), session_scope(database) as session:
        session.add(make_case(created_at=datetime(2024, 3, 1, 10, 0)))


def test_same_image_and_model_is_one_case(database: Settings) -> None:
    with session_scope(database) as session:
        session.add(make_case(image_sha256="a" * 64))
    with pytest.raises(IntegrityError), session_scope(database) as session:
        session.add(make_case(image_sha256="a" * 64))
    with session_scope(database) as session:
        session.add(make_case(image_sha256="a" * 64, model_version="2.0.0"))  # another model version: allowed
        assert len(session.scalars(select(CaseRecord)).all()) == 2


def test_session_scope_rolls_back_on_error(database: Settings) -> None:
    with pytest.raises(RuntimeError, match="boom"), session_scope(database) as session:
        session.add(make_case())
        session.flush()  # the row reached the database inside the transaction
        raise RuntimeError("boom")
    with session_scope(database) as session:
        assert session.scalars(select(CaseRecord)).all() == []


def test_downgrade_to_base_then_upgrade_to_head(database: Settings) -> None:
    engine = get_engine(database)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert not inspect(engine).has_table("cases")
    migrate(engine)
    assert inspect(engine).has_table("cases")
    assert_schema_matches_models(engine)


def test_alembic_config_without_connection_migrates_the_configured_database(database: Settings) -> None:
    command.upgrade(alembic_config(), "head")
    engine = get_engine(database)  # finds the schema already at head
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "postgresql+nosuchdriver://u:secret@127.0.0.1/x",
        "nosuchdialect://u:secret@127.0.0.1/x",
        # No driver installed, or nothing listening on port 9: either way a clear BadInput.
        "postgresql://u:secret@127.0.0.1:9/x",
    ],
)
def test_invalid_database_url_is_bad_input(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHAY_DATABASE_URL", url)
    reload_settings()
    with pytest.raises(BadInput, match="SAHAY_DATABASE_URL") as caught:
        get_engine()
    assert "secret" not in str(caught.value)


def test_unreachable_sqlite_file_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("SAHAY_DATABASE_URL", f"sqlite:///{tmp_path / 'a-file' / 'sub' / 'sahay.db'}")
    with pytest.raises(BadInput, match=r"SAHAY_DATABASE_URL=sqlite:///.*cannot create the folder"):
        get_engine(reload_settings())
