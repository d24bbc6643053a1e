"""Persistence: database models, engines and sessions, Alembic migrations, and content-addressed files.

SQLite under ``SAHAY_HOME`` by default; PostgreSQL when ``SAHAY_DATABASE_URL`` names it.
"""

from sahay.store.blobs import BlobStore
from sahay.store.db import (
    alembic_config,
    build_engine,
    database_url,
    get_engine,
    migrate,
    reset_engines,
    session_scope,
)
from sahay.store.records import Base, CaseRecord, UTCDateTime

__all__ = [
    "Base",
    "BlobStore",
    "CaseRecord",
    "UTCDateTime",
    "alembic_config",
    "build_engine",
    "database_url",
    "get_engine",
    "migrate",
    "reset_engines",
    "session_scope",
]
