"""The web service's tables on both backends: users, analyses, chat messages, refresh tokens, audit log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from sahay.config import Settings
from sahay.store import reset_engines, session_scope
from sahay.store.records import (
    AnalysisRecord,
    AuditEvent,
    ChatMessageRecord,
    RefreshTokenRecord,
    UserRecord,
)


@pytest.fixture(autouse=True)
def fresh_engines() -> Iterator[None]:
    reset_engines()
    yield
    reset_engines()


def make_user(username: str = "asha", role: str = "clinician") -> UserRecord:
    return UserRecord(username=username, password_hash="$argon2id$v=19$pretend", role=role)


def make_analysis(owner_id: str, **overrides: object) -> AnalysisRecord:
    values: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "owner_id": owner_id,
        "filename": "chest.dcm",
        "source_format": "dicom",
        "modality": "CR",
        "model_name": "sahay-demo-synthetic",
        "positives": ["Effusion"],
        "image_blob": "a" * 64,
        "notes_text": "cough for two weeks",
    }
    values.update(overrides)
    return AnalysisRecord(**values)


def count(settings: Settings, model: type) -> int:
    with session_scope(settings) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_user_analysis_and_chat_round_trip(database: Settings) -> None:
    before = datetime.now(UTC)
    with session_scope(database) as session:
        user = make_user(role="admin")
        session.add(user)
        session.flush()
        analysis = make_analysis(user.id)
        session.add(analysis)
        session.flush()
        session.add_all(
            [
                ChatMessageRecord(analysis_id=analysis.id, role="user", text="Is there an effusion?"),
                ChatMessageRecord(
                    analysis_id=analysis.id,
                    role="assistant",
                    text="The model gives Effusion 0.81.",
                    answer={"citations": [{"source": "analysis", "finding": "Effusion"}], "score": 0.81},
                ),
            ]
        )
    reset_engines()  # read back through a new engine, not the identity map
    with session_scope(database) as session:
        loaded_user = session.scalars(select(UserRecord).where(UserRecord.username == "asha")).one()
        assert loaded_user.id == user.id and len(loaded_user.id) == 32
        assert loaded_user.role == "admin"
        assert loaded_user.active is True
        assert loaded_user.password_hash.startswith("$argon2id$")
        assert loaded_user.created_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= loaded_user.created_at <= datetime.now(UTC)

        loaded = session.get_one(AnalysisRecord, analysis.id)
        assert loaded.owner_id == user.id
        assert loaded.positives == ["Effusion"]
        assert (loaded.filename, loaded.source_format, loaded.modality) == ("chest.dcm", "dicom", "CR")
        assert loaded.notes_text == "cough for two weeks"
        assert loaded.created_at.tzinfo == UTC

        messages = session.scalars(
            select(ChatMessageRecord)
            .where(ChatMessageRecord.analysis_id == analysis.id)
            .order_by(ChatMessageRecord.id)
        ).all()
        assert [message.role for message in messages] == ["user", "assistant"]
        assert messages[0].id < messages[1].id  # autoincrement keeps the conversation's order
        assert messages[0].answer is None
        assert messages[1].answer == {
            "citations": [{"source": "analysis", "finding": "Effusion"}],
            "score": 0.81,
        }


def test_audit_events_round_trip(database: Settings) -> None:
    when = datetime(2024, 3, 1, 4, 30, tzinfo=UTC)
    with session_scope(database) as session:
        session.add_all(
            [
                AuditEvent(
                    at=when,
                    actor_id="f" * 32,
                    actor="asha",
                    action="analysis.create",
                    object_type="analysis",
                    object_id="e" * 32,
                    detail={"model": "sahay-demo-synthetic", "positives": ["Effusion"]},
                ),
                AuditEvent(actor="anonymous", action="login.failed", object_type="user"),
            ]
        )
    reset_engines()
    with session_scope(database) as session:
        first, second = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert first.at == when and first.at.tzinfo == UTC
        assert (first.actor_id, first.actor, first.action) == ("f" * 32, "asha", "analysis.create")
        assert (first.object_type, first.object_id) == ("analysis", "e" * 32)
        assert first.detail == {"model": "sahay-demo-synthetic", "positives": ["Effusion"]}
        assert second.id > first.id
        assert second.at.utcoffset() == timedelta(0)
        assert (second.actor_id, second.object_id, second.detail) == (None, None, None)


def test_deleting_a_user_cascades_to_analyses_chats_and_tokens(database: Settings) -> None:
    with session_scope(database) as session:
        owner, other = make_user("asha"), make_user("ravi")
        session.add_all([owner, other])
        session.flush()
        for user in (owner, other):
            analysis = make_analysis(user.id)
            session.add(analysis)
            session.flush()
            session.add(ChatMessageRecord(analysis_id=analysis.id, role="user", text="Why?"))
            session.add(RefreshTokenRecord(user_id=user.id, expires_at=datetime.now(UTC) + timedelta(days=7)))
        session.add(AuditEvent(actor_id=owner.id, actor="asha", action="login", object_type="user"))
    with session_scope(database) as session:
        session.delete(session.get_one(UserRecord, owner.id))
    reset_engines()
    with session_scope(database) as session:
        assert session.scalars(select(UserRecord.username)).all() == ["ravi"]
        analyses = session.scalars(select(AnalysisRecord)).all()
        assert [analysis.owner_id for analysis in analyses] == [other.id]
        messages = session.scalars(select(ChatMessageRecord)).all()
        assert [message.analysis_id for message in messages] == [analyses[0].id]
        tokens = session.scalars(select(RefreshTokenRecord)).all()
        assert [token.user_id for token in tokens] == [other.id]
        # The audit log keeps who did what, even after the user is gone.
        assert session.scalars(select(AuditEvent.actor_id)).all() == [owner.id]


def test_usernames_are_unique(database: Settings) -> None:
    with session_scope(database) as session:
        session.add(make_user("asha"))
    with pytest.raises(IntegrityError), session_scope(database) as session:
        session.add(make_user("asha", role="admin"))
    assert count(database, UserRecord) == 1


def test_an_analysis_needs_an_existing_owner(database: Settings) -> None:
    with pytest.raises(IntegrityError), session_scope(database) as session:
        session.add(make_analysis("0" * 32))
    assert count(database, AnalysisRecord) == 0
