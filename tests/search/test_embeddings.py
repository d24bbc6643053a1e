"""Text embeddings: the ONNX Runtime path gives sentence-transformers' vectors without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sahay.config import Settings
from sahay.errors import BadInput, ModelUnavailable
from sahay.search import embeddings
from sahay.search.embeddings import export_onnx, model_identity, text_embedder

pytest.importorskip("onnxruntime")

SENTENCES = [
    "What does BI-RADS 4 mean?",
    "Who should get screened for lung cancer with low-dose CT?",
    "blunting of the costophrenic angle",
    "Kerley B lines and air bronchograms",
    "tree-in-bud opacities in the right upper lobe",
    "A 5 mm solid nodule: what follow-up does the Fleischner Society recommend?",
    "What can cause pulmonary edema?",
    "Is a probability of 0.7 a 70 % chance of disease?",
    "The heatmap shows where the model looked, not where the disease is.",
    "CURB-65 score of 3",
    "pleural effusion",
    "Cardiomegaly means the heart looks larger than normal on the film.",
    "Which specialist should I see about emphysema?",
    "Pneumothorax: air between the lung and the chest wall.",
    "How urgent is a pneumothorax?",
    "What is the first-line imaging for suspected pulmonary embolism?",
    "  leading and trailing spaces  ",
    "UPPER CASE TEXT ABOUT ATELECTASIS",
    "Ünïcödé: naïve café, 肺炎",
    "x",
    "",
    "mammography screening every two years from age 40",
    "The computer thinks this chest X-ray may show signs of pneumonia.",
    "hiatus hernia behind the heart",
    "rib fracture on the left",
    "enlarged cardiomediastinum in a supine film",
    "How is tuberculosis diagnosed?",
    "What is the survival rate of stage II breast cancer?",
    "HER2-positive, ER-negative invasive ductal carcinoma, grade 3",
    "ground-glass opacity",
    # Longer than the model's 256 tokens: both cut it at the same place.
    " ".join(["The lungs, the pleura and the mediastinum are seen on this radiograph."] * 40),
    "Consolidation with air bronchograms suggests pneumonia; follow-up imaging in six to eight weeks.",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("embeddings-home"))
    assert export_onnx(settings) is not None
    return settings


def test_onnx_vectors_match_sentence_transformers(exported: Settings) -> None:
    onnx = text_embedder(exported, backend="onnx")
    reference = text_embedder(exported, backend="sentence-transformers")
    assert (onnx.runtime, reference.runtime) == ("onnxruntime", "sentence-transformers")
    got, expected = onnx.embed(SENTENCES, batch_size=8), reference.embed(SENTENCES)
    assert got.shape == expected.shape == (len(SENTENCES), 384)
    cosines = np.sum(got * expected, axis=1)
    assert cosines.min() >= 0.999, dict(zip(SENTENCES, cosines.round(5), strict=True))
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # A text's vector does not depend on the batch it came in (padding is masked out).
    alone = onnx.embed([SENTENCES[0]])[0]
    assert float(alone @ got[0]) > 0.99999


def test_auto_prefers_the_export_and_records_the_models_sha256(exported: Settings) -> None:
    embedder = text_embedder(exported)
    identity = model_identity(exported)
    assert embedder.runtime == "onnxruntime" and embedder.name == "all-MiniLM-L6-v2"
    assert embedder.fingerprint == identity.fingerprint and len(identity.fingerprint) == 64
    record = json.loads((embeddings.export_folder(exported, identity) / "export.json").read_text())
    assert record["source_sha256"] == identity.fingerprint and len(record["onnx_sha256"]) == 64
    assert export_onnx(exported) == embeddings.onnx_export(exported)  # exported once, not again


def test_without_an_export_sentence_transformers_runs_the_model(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert text_embedder(settings).runtime == "sentence-transformers"
    with pytest.raises(ModelUnavailable, match="sahay kb build"):
        text_embedder(settings, backend="onnx")
    with pytest.raises(BadInput, match="backend must be one of"):
        text_embedder(settings, backend="tensorflow")  # type: ignore[arg-type]


def test_a_query_imports_neither_torch_nor_transformers(exported: Settings) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sahay.config import Settings\n"
        "from sahay.search.embeddings import text_embedder\n"
        f"embedder = text_embedder(Settings(home=Path({str(exported.home)!r})))\n"
        "assert embedder.embed(['pleural effusion']).shape == (1, 384)\n"
        "print(embedder.runtime, sorted(m for m in ('torch', 'transformers', 'sentence_transformers')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "onnxruntime []"


def test_the_fingerprint_follows_the_models_files(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 384}')
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "README.md").write_text("not part of the model")
    first = embeddings._folder_fingerprint(settings, model)
    assert embeddings._folder_fingerprint(settings, model) == first  # remembered
    (model / "README.md").write_text("edited")
    assert embeddings._folder_fingerprint(settings, model) == first
    (model / "model.safetensors").write_bytes(b"other weights")
    assert embeddings._folder_fingerprint(settings, model) != first


def test_only_mean_pooled_transformers_are_exported(tmp_path: Path) -> None:
    installed = Path(model_identity(Settings(home=tmp_path)).location)
    assert embeddings._not_exportable(installed) == ""
    cls = tmp_path / "cls"
    (cls / "1_Pooling").mkdir(parents=True)
    (cls / "modules.json").write_text((installed / "modules.json").read_text())
    (cls / "tokenizer.json").write_text("{}")
    (cls / "1_Pooling" / "config.json").write_text(
        '{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}'
    )
    assert "mean of the tokens" in embeddings._not_exportable(cls)
    assert "not a sentence-transformers folder" in embeddings._not_exportable(tmp_path)
