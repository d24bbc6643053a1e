"""GET /api/v1/models: the installed models."""

from __future__ import annotations

from collections.abc import Callable

from sahay.training.synthetic import LABELS
from tests.api.conftest import API, DEMO, Account, World


def test_lists_the_demo_model(world: World, alice: Account) -> None:
    response = world.client.get(f"{API}/models", headers=alice.headers)
    assert response.status_code == 200
    (model,) = response.json()
    assert model["name"] == DEMO
    assert model["version"] == "1"
    assert model["task"] == "multilabel"
    assert model["labels"] == list(LABELS)
    assert model["demonstration"] is True
    assert "No clinical meaning" in model["intended_use"]
    assert set(model) == {
        "name",
        "version",
        "task",
        "modalities",
        "body_part",
        "labels",
        "demonstration",
        "intended_use",
    }


def test_no_models_is_an_empty_list(make_world: Callable[..., World]) -> None:
    bare = make_world(model=False)
    account = bare.account()
    response = bare.client.get(f"{API}/models", headers=account.headers)
    assert response.status_code == 200
    assert response.json() == []


def test_needs_a_token(world: World) -> None:
    response = world.client.get(f"{API}/models")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
