"""Chat about an analysis: answers streamed as server-sent events, and the stored conversation.

The first question indexes the knowledge base (15-30 s), once for the shared app; the questions
after it take milliseconds, so the tests here share one conversation where they can.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from sahay.about import DISCLAIMER
from sahay.store.db import session_scope
from sahay.store.records import ChatMessageRecord
from tests.api.conftest import API, NOTE, Account, World, parse_sse, png_bytes

FIRST = "What does the synthetic disc finding mean?"
SECOND = "How sure is the model about it?"


def _ask(world: World, account: Account, analysis_id: str, question: str) -> Any:
    return world.client.post(
        f"{API}/analyses/{analysis_id}/chat", json={"question": question}, headers=account.headers
    )


def _answer(response: Any) -> dict[str, Any]:
    """The answer of a complete stream: tokens, then one answer, then done."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[-2:] == ["answer", "done"], names
    assert names[:-2] and set(names[:-2]) == {"token"}, "tokens come first"
    answer: dict[str, Any] = events[-2][1]
    streamed = "".join(data["text"] for name, data in events if name == "token")
    assert streamed.strip() and answer["answer"].strip()
    assert events[-1][1] == {}
    return answer


@pytest.fixture(scope="module")
def conversation(world: World, alice: Account, png_analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Two questions about the module's analysis, asked in order."""
    return [_answer(_ask(world, alice, png_analysis["id"], q)) for q in (FIRST, SECOND)]


def test_an_answer_is_streamed_with_its_evidence(conversation: list[dict[str, Any]]) -> None:
    answer = conversation[0]
    assert answer["answer"].strip()
    evidence = [e for sentence in answer["sentences"] for e in sentence["evidence"]]
    assert answer["citations"] or any(e["type"] == "analysis" for e in evidence)
    assert answer["disclaimer"] == DISCLAIMER


def test_the_disclaimer_is_given_once_a_conversation(conversation: list[dict[str, Any]]) -> None:
    assert conversation[0]["disclaimer"] == DISCLAIMER
    assert conversation[1]["disclaimer"] is None
    assert conversation[1]["answer"].strip()


def test_the_history_holds_both_sides(
    world: World,
    alice: Account,
    admin: Account,
    png_analysis: dict[str, Any],
    conversation: list[dict[str, Any]],
) -> None:
    response = world.client.get(f"{API}/analyses/{png_analysis['id']}/chat", headers=alice.headers)
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [m["text"] for m in messages[::2]] == [FIRST, SECOND]
    assert [m["text"] for m in messages[1::2]] == [a["answer"] for a in conversation]
    assert messages[0]["answer"] is None
    assert messages[1]["answer"] == conversation[0]
    assert [m["author"] for m in messages] == [alice.username, None, alice.username, None]
    # An administrator reads it too.
    as_admin = world.client.get(f"{API}/analyses/{png_analysis['id']}/chat", headers=admin.headers)
    assert as_admin.json() == response.json()


def test_an_administrators_question_is_recorded_as_theirs(
    world: World, alice: Account, admin: Account
) -> None:
    analysis = world.analyse(alice, png_bytes(seed=63))
    _answer(_ask(world, admin, analysis["id"], FIRST))
    messages = world.client.get(f"{API}/analyses/{analysis['id']}/chat", headers=alice.headers).json()[
        "messages"
    ]
    assert messages[0]["author"] == admin.username and messages[0]["text"] == FIRST


def test_a_new_analysis_has_no_history(world: World, alice: Account) -> None:
    analysis = world.analyse(alice, png_bytes(seed=60))
    response = world.client.get(f"{API}/analyses/{analysis['id']}/chat", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == {"messages": []}


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"json": {"question": ""}}, "question"),
        ({"json": {}}, "question"),
        ({"json": {"question": "x" * 2001}}, "question"),
        ({"json": {"question": 42}}, "question"),
        ({"content": b'{"question": ', "headers": {"Content-Type": "application/json"}}, "JSON"),
    ],
    ids=["empty", "missing", "too-long", "not-text", "bad-json"],
)
def test_an_invalid_question_is_422(
    world: World, alice: Account, png_analysis: dict[str, Any], kwargs: dict[str, Any], says: str
) -> None:
    headers = {**alice.headers, **kwargs.pop("headers", {})}
    response = world.client.post(f"{API}/analyses/{png_analysis['id']}/chat", headers=headers, **kwargs)
    assert response.status_code == 422
    assert says in response.json()["detail"]


def test_a_blank_question_is_refused_before_the_stream(
    world: World, alice: Account, png_analysis: dict[str, Any]
) -> None:
    response = _ask(world, alice, png_analysis["id"], "   ")
    assert response.status_code == 422


def test_a_blank_question_is_not_stored(world: World, alice: Account, png_analysis: dict[str, Any]) -> None:
    before = world.client.get(f"{API}/analyses/{png_analysis['id']}/chat", headers=alice.headers).json()
    response = _ask(world, alice, png_analysis["id"], "   ")
    assert response.status_code == 422
    after = world.client.get(f"{API}/analyses/{png_analysis['id']}/chat", headers=alice.headers).json()
    assert after == before


def test_deleting_an_analysis_deletes_its_conversation(world: World, alice: Account) -> None:
    analysis = world.analyse(alice, png_bytes(seed=61), notes=NOTE)
    _answer(_ask(world, alice, analysis["id"], FIRST))

    def stored() -> int:
        with session_scope(world.settings) as session:
            query = select(func.count()).where(ChatMessageRecord.analysis_id == analysis["id"])
            return int(session.scalar(query) or 0)

    assert stored() == 2
    assert world.client.delete(f"{API}/analyses/{analysis['id']}", headers=alice.headers).status_code == 204
    assert stored() == 0
    assert _ask(world, alice, analysis["id"], FIRST).status_code == 404
