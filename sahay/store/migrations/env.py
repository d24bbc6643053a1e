"""Alembic environment: migrates the connection Sahay hands over, or else the configured database.

Sahay runs it through ``sahay.store.db.migrate``; a developer can run Alembic's commands with
``sahay.store.db.alembic_config()``, for example
``command.revision(alembic_config(), "add users", autogenerate=True)``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sahay.config import get_settings
from sahay.store.db import build_engine, database_url
from sahay.store.records import Base

target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite can alter little in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Write the SQL to standard output (``alembic upgrade --sql``) instead of running it."""
    url = context.config.get_main_option("sqlalchemy.url") or database_url(get_settings())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or database_url(get_settings())
    engine = build_engine(url)
    try:
        with engine.connect() as own_connection:
            _configure_and_run(own_connection)
    finally:
        engine.dispose()


# Alembic sets ``context.config`` before it runs this file; importing it otherwise (pytest's doctest
# collection, a curious reader) does nothing.
if getattr(context, "config", None) is not None:
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
