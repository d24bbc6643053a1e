"""Engines, sessions and migrations: SQLite under SAHAY_HOME by default, PostgreSQL when
SAHAY_DATABASE_URL names it.

Example::

    from sqlalchemy import select

    from sahay.store import CaseRecord, session_scope

    with session_scope() as session:
        cases = session.scalars(select(CaseRecord).where(CaseRecord.modality == "CR")).all()
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from sahay.config import Settings, get_settings
from sahay.errors import BadInput, describe_error

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Applied on every new SQLite connection: WAL lets readers and one writer work at once, and SQLite
# enforces foreign keys only when asked, per connection.
SQLITE_PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000", "synchronous=NORMAL")

# One lock for creating engines and migrating, re-entrant because get_engine migrates while holding it.
_lock = threading.RLock()
MIGRATIONS_LOCK = _lock
"""Alembic's ``op`` proxy is process-wide: any other in-process migration (MLflow's store) holds
this too, or two migrations in two threads break each other."""
_engines: dict[str, Engine] = {}
_sessions: dict[str, sessionmaker[Session]] = {}


def database_url(settings: Settings) -> str:
    """``settings.database_url`` when set, else a SQLite file ``sahay.db`` in the home folder."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{settings.home_dir / 'sahay.db'}"


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine for the configured database, migrated to the newest schema.

    One engine per URL per process; the first call for a URL runs the migrations.
    Raises :class:`~sahay.errors.BadInput` when the URL is malformed, its driver is not
    installed, or the database cannot be reached.
    """
    settings = settings or get_settings()
    url_text = database_url(settings)
    engine = _engines.get(url_text)
    if engine is not None:
        return engine
    with _lock:
        engine = _engines.get(url_text)
        if engine is None:
            source = "SAHAY_DATABASE_URL" if settings.database_url else "SAHAY_HOME"
            engine = build_engine(url_text, source=source)
            try:
                migrate(engine)
            except BaseException:
                engine.dispose()
                raise
            _engines[url_text] = engine
        return engine


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits when the block ends, rolls back on any error, and always closes."""
    session = _session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engines() -> None:
    """Dispose of every cached engine and forget it (tests change SAHAY_HOME between cases)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _sessions.clear()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for Sahay's migrations that needs no ``alembic.ini``.

    With ``connection``, migrations run on it; without one, ``env.py`` connects to the configured database.
    """
    config = Config()
    # Config values go through configparser interpolation, where '%' is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (``alembic upgrade head`` by default)."""
    with _lock, engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def build_engine(url_text: str, source: str = "SAHAY_DATABASE_URL") -> Engine:
    """A new, unmigrated engine for ``url_text``, with Sahay's SQLite settings, checked to connect.

    ``source`` names where the URL came from, for error messages.
    """
    try:
        url = make_url(url_text)
    except (ArgumentError, ValueError):
        raise BadInput(
            f"{source}={_mask_password(url_text)!r} is not a database URL; "
            "use e.g. postgresql+psycopg://user:password@host/sahay, or unset it for SQLite under SAHAY_HOME"
        ) from None
    shown = url.render_as_string(hide_password=True)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        _make_sqlite_folder(url, f"{source}={shown}")
    else:
        kwargs["pool_pre_ping"] = True  # a server may drop idle connections
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise BadInput(
            f"{source}={shown}: cannot load the database driver ({_scrub(describe_error(exc), url)}); "
            "check the dialect and driver in the URL and install the driver "
            "(e.g. pip install 'psycopg[binary]')"
        ) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _set_sqlite_pragmas)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        engine.dispose()
        reason = _scrub(describe_error(exc.orig or exc), url)
        raise BadInput(
            f"{source}={shown}: cannot connect to the database ({reason}); check the URL and server"
        ) from exc
    return engine


def _session_factory(settings: Settings | None) -> sessionmaker[Session]:
    engine = get_engine(settings)
    key = engine.url.render_as_string(hide_password=False)
    factory = _sessions.get(key)
    if factory is None:
        with _lock:
            factory = _sessions.setdefault(key, sessionmaker(bind=engine, expire_on_commit=False))
    return factory


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _make_sqlite_folder(url: URL, described: str) -> None:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"{described}: cannot create the folder {folder} ({exc.strerror or exc})") from exc


def _mask_password(url_text: str) -> str:
    """Hide what looks like a password in a URL that SQLAlchemy could not parse."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url_text)


def _scrub(message: str, url: URL) -> str:
    """Drivers' messages rarely hold the password; make sure they never do."""
    return message.replace(url.password, "***") if url.password else message
