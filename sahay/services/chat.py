"""Chat and the knowledge base as use cases.

- ``conversation``: a chat about an analysis.json (or none) for the CLI and the library;
- ``history`` and ``ask``: the stored conversation about one of a user's analyses (the web service),
  audited;
- ``add_documents``, ``documents``, ``remove_document``, ``search_knowledge``: the cited knowledge base.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from sahay.chat import AUDIENCES
from sahay.chat.safety import URGENT_REVIEW
from sahay.config import Settings
from sahay.errors import BadInput

# The store (SQLAlchemy) is imported where a stored conversation is used: a CLI question needs none.
if TYPE_CHECKING:
    from sahay.chat.engine import Conversation
    from sahay.knowledge.index import DocumentInfo, KnowledgeBase, Passage
    from sahay.services.workspace import Workspace
    from sahay.store.records import ChatMessageRecord, UserRecord

MAX_QUESTION_CHARS = 2000


class ChatMessageOut(BaseModel):
    role: str
    author: str | None = Field(default=None, description="who asked; None for Sahay's answers")
    text: str
    answer: dict[str, Any] | None = None
    created_at: datetime


def check_audience(audience: str | None) -> None:
    if audience is not None and audience not in AUDIENCES:
        raise BadInput(f"--audience must be clinician or patient, not {audience!r}")


def conversation(analysis: Path | None = None, audience: str = "clinician") -> Conversation:
    """A chat about ``analysis`` (an analysis.json), or about general topics when None."""
    from sahay.analysis import load_analysis
    from sahay.chat.engine import Conversation

    check_audience(audience)
    focus = load_analysis(analysis) if analysis is not None else None
    return Conversation(focus, audience)  # type: ignore[arg-type]  # checked above


def history(workspace: Workspace, user: UserRecord, analysis_id: str) -> list[ChatMessageOut]:
    from sahay.store.db import session_scope

    """The stored conversation about one analysis, oldest first."""
    with session_scope(workspace.settings) as session:
        record = workspace.get(session, user, analysis_id)
        return [
            ChatMessageOut(
                role=m.role, author=m.author, text=m.text, answer=m.answer, created_at=m.created_at
            )
            for m in _messages(session, record.id)
        ]


def check_question(question: str) -> str:
    if not question.strip():
        raise BadInput("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadInput(f"the question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
    return question.strip()


def ask(
    workspace: Workspace,
    user: UserRecord,
    analysis_id: str,
    question: str,
    on_token: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Answer a question about an analysis, continuing and storing its conversation (audited)."""
    from sahay.chat.backends import Turn
    from sahay.chat.engine import Conversation
    from sahay.store import audit
    from sahay.store.db import session_scope
    from sahay.store.records import ChatMessageRecord

    question = check_question(question)
    with session_scope(workspace.settings) as session:
        record = workspace.get(session, user, analysis_id)
        earlier = _messages(session, record.id)
    chat = Conversation(workspace.load(record), settings=workspace.settings, knowledge=workspace.knowledge())
    questions = [m.text for m in earlier if m.role == "user"]
    answers = [m.text for m in earlier if m.role == "assistant"]
    chat.history = [Turn(q, a) for q, a in zip(questions, answers, strict=False)]
    chat.disclaimer_given = bool(answers)
    chat.urgent_review_given = any(URGENT_REVIEW in answer for answer in answers)
    answer = chat.ask(question, on_token).to_dict()
    with session_scope(workspace.settings) as session:
        session.add(
            ChatMessageRecord(analysis_id=record.id, role="user", author=user.username, text=question)
        )
        session.add(
            ChatMessageRecord(analysis_id=record.id, role="assistant", text=answer["answer"], answer=answer)
        )
        audit.record(session, user, "chat", "analysis", record.id, {"intent": answer["intent"]})
    return answer


def _messages(session: Any, analysis_id: str) -> list[ChatMessageRecord]:
    from sqlalchemy import select

    from sahay.store.records import ChatMessageRecord

    return list(
        session.scalars(
            select(ChatMessageRecord)
            .where(ChatMessageRecord.analysis_id == analysis_id)
            .order_by(ChatMessageRecord.id)
        )
    )


def knowledge_base(settings: Settings | None = None) -> KnowledgeBase:
    """The cited knowledge base (close it, or use it in a ``with`` block)."""
    from sahay.knowledge.index import KnowledgeBase

    return KnowledgeBase(settings)


def add_documents(paths: list[Path]) -> list[DocumentInfo]:
    with knowledge_base() as kb:
        return list(kb.add(paths))


def documents() -> list[DocumentInfo]:
    with knowledge_base() as kb:
        return list(kb.documents())


def remove_document(document: str) -> None:
    with knowledge_base() as kb:
        kb.remove(document)


def search_knowledge(query: str, k: int = 5, audience: str | None = None) -> list[Passage]:
    """Passages by BM25 and embeddings fused by reciprocal rank."""
    check_audience(audience)
    with knowledge_base() as kb:
        return list(kb.search(query, k=k, audience=audience))
