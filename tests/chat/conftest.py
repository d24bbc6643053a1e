"""A knowledge base indexed once for the chat tests, and chest analyses built to order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sahay.analysis import Analysis, Finding, ModelCard
from sahay.config import Settings
from sahay.knowledge.index import KnowledgeBase
from tests.factories import image_info

LABELS = ["Effusion", "Pneumothorax", "Cardiomegaly", "Nodule", "Pneumonia"]


def chest_analysis(**probabilities: float) -> Analysis:
    """A chest radiograph analysis; a label is positive when its probability is at least 0.5."""
    findings = [
        Finding(label=label, probability=p, threshold=0.5, positive=p >= 0.5)
        for label, p in ((label, probabilities.get(label, 0.05)) for label in LABELS)
    ]
    card = ModelCard(
        name="xrv-densenet121-res224-all",
        version="1",
        task="multilabel",
        modalities=["CR", "DX"],
        body_part="chest",
        intended_use="Chest radiographs of adults.",
        license="Apache-2.0",
        weights_sha256="0" * 64,
        training_data="public chest X-ray datasets",
        calibration_temperature=1.0,
    )
    return Analysis(image=image_info(modality="CR", body_part="CHEST"), model=card, findings=findings)


@pytest.fixture(scope="session")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    with KnowledgeBase(Settings(home=tmp_path_factory.mktemp("chat-kb"))) as kb:
        kb.ensure()
        yield kb
