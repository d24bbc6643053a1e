"""Database tables, as SQLAlchemy 2 typed models. Every schema change also gets an Alembic migration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.mutable import MutableList
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names: migrations (and SQLite batch mode) must be able to name what they drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every Sahay table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite keeps no offset, so values are stored as UTC and read back with ``tzinfo=UTC``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def new_id() -> str:
    """A new primary key: 32 hex characters of a random uuid4."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class CaseRecord(Base):
    """One analysed image in the case library: what the model said and what the clinician added."""

    __tablename__ = "cases"
    # The same image analysed by the same model version is one case.
    __table_args__ = (
        UniqueConstraint("image_sha256", "model_name", "model_version", name="uq_cases_image_model"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    modality: Mapped[str | None] = mapped_column(String(64))
    body_part: Mapped[str | None] = mapped_column(String(64))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the original file
    image_blob: Mapped[str] = mapped_column(String(64))  # the stored de-identified image
    thumbnail_blob: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(64))
    labels: Mapped[list[str]] = mapped_column(JSON)
    probabilities: Mapped[list[float]] = mapped_column(JSON)
    analysis_json: Mapped[str] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    diagnosis: Mapped[str | None] = mapped_column(String(500))
    comment: Mapped[str | None] = mapped_column(Text)
    report: Mapped[str | None] = mapped_column(Text)
    # Mutable so that ``record.tags.append(...)`` is saved; plain JSON only notices reassignment.
    tags: Mapped[list[str]] = mapped_column(MutableList.as_mutable(JSON()), default=list)
    source: Mapped[str | None] = mapped_column(String(1024), index=True)

    def __repr__(self) -> str:
        model = f"{self.model_name}@{self.model_version}"
        return f"CaseRecord(id={self.id!r}, model={model}, source={self.source!r})"


class UserRecord(Base):
    """A person who signs in to the web service. Passwords are kept only as Argon2 hashes."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # "clinician" or "admin"
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: disabled, cannot sign in
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    # Access tokens carry it; raising it (sign-out, disabling, a new password) ends them at once.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class RefreshTokenRecord(Base):
    """A refresh token's id; deleting the row (logout) revokes the token."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnalysisRecord(Base):
    """An analysis made through the web service, owned by the user who uploaded the image."""

    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the Analysis id
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, index=True)
    filename: Mapped[str] = mapped_column(String(255))
    source_format: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    positives: Mapped[list[str]] = mapped_column(JSON)
    image_blob: Mapped[str] = mapped_column(String(64))  # the uploaded file, content-addressed
    notes_text: Mapped[str | None] = mapped_column(Text)


class ChatMessageRecord(Base):
    """One question or answer in the conversation about an analysis."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # "user" or "assistant"
    # Who asked (an administrator may ask about a clinician's analysis); kept if the user goes.
    author: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class AuditEvent(Base):
    """Who did what to which object, and when. Append-only: rows are never updated or deleted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, index=True)
    actor_id: Mapped[str | None] = mapped_column(String(32), index=True)  # kept if the user is removed
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
