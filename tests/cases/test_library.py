"""The case library: adding, importing, de-identification, searching and removing, with bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from sahay.cases.library import CaseLibrary
from sahay.cases.query import analysis_query, image_query, text_query
from sahay.cases.search import QueryVectors
from sahay.config import Settings
from sahay.errors import BadInput
from sahay.services.analyze import analyze
from sahay.services.cases import import_dataset
from sahay.training.synthetic import make_image
from tests.factories import write_case_dataset, write_dicom, write_png

DEMO = "sahay-demo-synthetic"
OPTIONS = {"label_columns": ["round", "striped"], "text_column": "notes"}


def _disc_dicom(folder: Path, name: str = "disc.dcm", seed: int = 0, modality: str = "CR") -> Path:
    image = make_image(np.random.default_rng(seed), 224, disc=True, stripes=False)
    return write_dicom(
        folder / name,
        np.round(image.pixels * 4000).astype(np.uint16),
        bits_stored=12,
        modality=modality,
        patient_name="Doe^Jane",
        patient_id="PID-778",
    )


@pytest.fixture
def library(demo_installed: Settings) -> CaseLibrary:
    with CaseLibrary(demo_installed) as library:
        yield library  # type: ignore[misc]


def test_an_analysis_becomes_a_de_identified_case(library: CaseLibrary, tmp_path: Path) -> None:
    dicom = _disc_dicom(tmp_path)
    analyze(dicom, model=DEMO, out_dir=tmp_path / "out", keep_identifiers=True, heatmaps=False)
    case = library.add_analysis(
        tmp_path / "out" / "analysis.json", image_path=dicom, diagnosis="round lesion", tags=["teaching", "t"]
    )
    assert case.diagnosis == "round lesion" and case.tags == ["t", "teaching"] and case.modality == "CR"
    assert case.analysis.image.identifiers is None  # kept in the analysis, dropped from the library
    assert case.analysis.image.filename == f"case-{case.id}.png"
    stored = Image.open(case.image)
    assert stored.format == "PNG" and stored.size == (224, 224)  # pixels only: no DICOM header travels
    assert b"Doe^Jane" not in case.image.read_bytes() and b"PID-778" not in case.image.read_bytes()
    assert max(Image.open(case.thumbnail).size) <= 256
    assert [c.id for c in library.list_cases()] == [case.id]
    with pytest.raises(BadInput, match=f"already case {case.id}"):
        library.add_analysis(tmp_path / "out" / "analysis.json", image_path=dicom)
    assert library.count() == 1


def test_the_image_must_be_the_analysed_one(library: CaseLibrary, tmp_path: Path) -> None:
    dicom = _disc_dicom(tmp_path)
    analyze(dicom, model=DEMO, out_dir=tmp_path / "out", heatmaps=False)
    other = _disc_dicom(tmp_path, "other.dcm", seed=1)
    with pytest.raises(BadInput, match="not the image"):
        library.add_analysis(tmp_path / "out" / "analysis.json", image_path=other)
    library_copy = tmp_path / "out" / "analysis.json"
    dicom.rename(tmp_path / "moved.dcm")  # no longer where it was analysed, nor beside the analysis
    with pytest.raises(BadInput, match="give it with --image"):
        library.add_analysis(library_copy)
    dicom = tmp_path / "moved.dcm"
    (tmp_path / "bad.json").write_text('{"schema_version": "2.0"}')
    with pytest.raises(BadInput, match=r"is not a Sahay analysis\.json"):
        library.add_analysis(tmp_path / "bad.json", image_path=dicom)
    assert library.count() == 0


def test_import_is_resumable_and_labels_become_diagnoses(library: CaseLibrary, tmp_path: Path) -> None:
    table = write_case_dataset(tmp_path / "data", per_class=4)
    first = import_dataset(library, table, model=DEMO, split="test", **OPTIONS)
    everything = import_dataset(library, table, model=DEMO, **OPTIONS)
    assert first.added >= 1 and first.refused == []
    assert everything.already_in_library == first.added
    assert first.added + everything.added == 8 == library.count()
    again = import_dataset(library, table, model=DEMO, **OPTIONS)
    assert (again.added, again.already_in_library) == (0, 8)
    assert {c.diagnosis for c in library.list_cases()} == {"round", "striped"}


def test_search_by_image_words_and_analysis(library: CaseLibrary, tmp_path: Path) -> None:
    import_dataset(library, write_case_dataset(tmp_path / "data", per_class=6), model=DEMO, **OPTIONS)
    query_png = tmp_path / "query.png"
    disc = make_image(np.random.default_rng(99), 224, disc=True, stripes=False)
    write_png(query_png, np.round(disc.pixels * 255).astype(np.uint8))

    query, modality = image_query(query_png, library)
    results = library.search(query, k=5, query_modality=modality)
    assert len(results) == 5 and all(r.case.diagnosis == "round" for r in results)
    assert [r.similarity for r in results] == sorted((r.similarity for r in results), reverse=True)
    assert all(r.signals["image"] is not None and r.signals["text"] is None for r in results)
    assert all(r.case.thumbnail.is_file() for r in results)

    by_words = library.search(text_query("parallel linear stripes", library), k=3, mode="text")
    assert [r.case.diagnosis for r in by_words] == ["striped"] * 3

    analyze(query_png, model=DEMO, out_dir=tmp_path / "out", heatmaps=False)
    query, _ = analysis_query(tmp_path / "out" / "analysis.json", library, query_png)
    assert query.image is not None and query.findings is not None
    assert library.search(query, k=3)[0].case.diagnosis == "round"


def test_search_refuses_what_it_cannot_answer(library: CaseLibrary, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="the case library is empty"):
        library.search(QueryVectors(text=np.ones(384, dtype=np.float32), text_space="x"), k=5)
    dicom = _disc_dicom(tmp_path)
    analyze(dicom, model=DEMO, out_dir=tmp_path / "out", heatmaps=False)
    library.add_analysis(tmp_path / "out" / "analysis.json", image_path=dicom)
    mr = Path(get_testdata_file("MR_small.dcm", download=False))
    with pytest.raises(BadInput, match="the query image is MR, and the library holds CR cases"):
        query, modality = image_query(mr, library)
        library.search(query, k=1, query_modality=modality)
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(b"DICM" + b"\x00" * 50)
    with pytest.raises(BadInput):
        image_query(corrupt, library)
    with pytest.raises(BadInput, match="search text is empty"):
        text_query("   ", library)
    with pytest.raises(BadInput, match="no case"):
        library.get("f" * 32)


def test_remove_deletes_the_row_vectors_and_files(library: CaseLibrary, tmp_path: Path) -> None:
    dicom = _disc_dicom(tmp_path)
    analyze(dicom, model=DEMO, out_dir=tmp_path / "out", heatmaps=False)
    case = library.add_analysis(tmp_path / "out" / "analysis.json", image_path=dicom, diagnosis="round")
    collections = library.index.collections(prefix="cases-")
    assert len(collections) == 3 and all(library.index.count(c) == 1 for c in collections)
    library.remove(case.id)
    assert library.count() == 0
    assert all(library.index.count(c) == 0 for c in collections)
    assert not case.image.exists() and not case.thumbnail.exists()
    with pytest.raises(BadInput, match=f"no case '{case.id}'"):
        library.remove(case.id)


def test_reindex_rebuilds_a_lost_vector_index(library: CaseLibrary, tmp_path: Path) -> None:
    import_dataset(library, write_case_dataset(tmp_path / "data", per_class=3), model=DEMO, **OPTIONS)
    for collection in library.index.collections(prefix="cases-"):
        library.index.client.delete_collection(collection)  # as on a new, empty Qdrant server
    query, modality = image_query(tmp_path / "data" / "round-000.png", library)
    assert library.search(query, k=3, query_modality=modality) == []
    assert library.reindex() == 6
    results = library.search(query, k=3, query_modality=modality)
    assert results[0].case.diagnosis == "round" and results[0].similarity > 0.99
