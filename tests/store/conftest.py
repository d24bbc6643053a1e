"""Store tests run on both backends: SQLite under SAHAY_HOME, and a real PostgreSQL server.

One PostgreSQL server per test session (``tests/postgres.py``); each test gets a database of its
own, created before it and dropped after it, so that no test sees another's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from sahay.config import Settings, reload_settings
from sahay.store import reset_engines
from tests.postgres import PostgresNotInstalled, postgres_server
from tests.system import missing

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a database on the session's PostgreSQL server (started on first use)."""
    try:
        with postgres_server() as url:
            yield url
    except PostgresNotInstalled:
        missing("PostgreSQL")


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[Engine]:
    """Creates and drops the per-test databases (outside any transaction, as PostgreSQL requires)."""
    engine = create_engine(make_url(postgres_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings for this test's own, empty database on the backend named by the parameter."""
    if request.param == "sqlite":
        monkeypatch.delenv("SAHAY_DATABASE_URL", raising=False)  # the default: SAHAY_HOME/sahay.db
        yield reload_settings()
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    name = f"t_{uuid.uuid4().hex}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        monkeypatch.setenv("SAHAY_DATABASE_URL", url)
        yield reload_settings()
    finally:
        reset_engines()  # close the pooled connections: a database in use cannot be dropped
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
