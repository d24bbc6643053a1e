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


def test_capabilities_name_every_registry_entry(world: World, alice: Account) -> None:
    from sahay.chat.backends import BACKENDS
    from sahay.datasets import LAYOUTS
    from sahay.explain.methods import METHODS
    from sahay.models.providers import known_architectures
    from sahay.reports.formats import FORMATS

    response = world.client.get(f"{API}/capabilities", headers=alice.headers)
    assert response.status_code == 200
    offered = response.json()
    lists = [key for key in offered if key not in ("audiences", "default_explain_method")]
    names = {key: [entry["name"] for entry in offered[key]] for key in lists}
    assert names["explain_methods"] == list(METHODS)
    assert names["report_formats"] == list(FORMATS)
    assert names["architectures"] == known_architectures()
    assert names["llm_backends"] == list(BACKENDS)
    assert names["dataset_layouts"] == list(LAYOUTS)
    assert names["models"] == [DEMO]
    dicom_only = {f["name"] for f in offered["report_formats"] if f["needs_dicom"]}
    assert dicom_only == {"dicom-sr", "dicom-sc"}
    assert offered["audiences"] == ["clinician", "patient"]
    assert offered["default_explain_method"] in names["explain_methods"]


def test_capabilities_need_a_token(world: World) -> None:
    assert world.client.get(f"{API}/capabilities").status_code == 401


def test_the_card_of_an_installed_model(world: World, alice: Account) -> None:
    response = world.client.get(f"{API}/models/{DEMO}/card", headers=alice.headers)
    assert response.status_code == 200
    card = response.json()
    assert card["name"] == DEMO and card["demonstration"] is True
    assert card["calibration"].startswith("temperature")
    assert card["weights"].startswith("trained by Sahay; sha256 ")
    assert card["weights_verified"] is None and card["site_check"] is None


def test_a_card_is_only_for_an_installed_name(world: World, alice: Account) -> None:
    for name in ("no-such-model", "..%2F..%2Fetc"):
        response = world.client.get(f"{API}/models/{name}/card", headers=alice.headers)
        assert response.status_code == 404, name
        assert "Traceback" not in response.text
