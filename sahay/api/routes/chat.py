"""The conversation about one analysis: history, and answers streamed as server-sent events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, StringConstraints

from sahay.api.deps import CurrentUser, ServiceDep
from sahay.errors import SahayError
from sahay.services import chat
from sahay.services.chat import MAX_QUESTION_CHARS, ChatMessageOut

router = APIRouter(tags=["chat"])


class Question(BaseModel):
    question: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS)
    ]


class ChatHistory(BaseModel):
    messages: list[ChatMessageOut]


@router.get("/analyses/{analysis_id}/chat", response_model=ChatHistory)
def history(analysis_id: str, user: CurrentUser, service: ServiceDep) -> ChatHistory:
    return ChatHistory(messages=chat.history(service.workspace, user, analysis_id))


@router.post(
    "/analyses/{analysis_id}/chat",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "token, answer, done (or error) events"}
    },
)
def ask(analysis_id: str, body: Question, user: CurrentUser, service: ServiceDep) -> StreamingResponse:
    chat.history(service.workspace, user, analysis_id)  # 404 before the stream starts
    return StreamingResponse(
        _events(service, user, analysis_id, body.question),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def _events(service: Any, user: Any, analysis_id: str, question: str) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_token(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, text)

    # Chat runs on the default pool, not the inference workers: a long answer must not block analyses.
    work = loop.run_in_executor(None, chat.ask, service.workspace, user, analysis_id, question, on_token)
    work.add_done_callback(lambda _future: loop.call_soon_threadsafe(queue.put_nowait, None))
    while (token := await queue.get()) is not None:
        yield _event("token", {"text": token})
    try:
        answer = work.result()
    except SahayError as exc:
        yield _event("error", {"detail": exc.for_door("api"), "kind": exc.kind, "status": exc.http_status})
        return
    except Exception as exc:  # the log gets the type only: questions and answers can hold PHI
        logging.getLogger("sahay.api").error("chat on %s failed: %s", analysis_id, type(exc).__name__)
        yield _event("error", {"detail": "internal error while answering", "status": 500})
        return
    yield _event("answer", answer)
    yield _event("done", {})
