"""`sahay batch`: one pass over a folder or CSV, resumable, bad files as rows, a triage order."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from sahay.config import Settings
from sahay.services.analyze import analyze
from sahay.services.batch import BatchOptions, run_batch
from sahay.services.demo import write_example_image
from tests.e2e.test_cli_analyze import run_cli
from tests.factories import write_png

DEMO = "sahay-demo-synthetic"


@pytest.fixture
def films(tmp_path: Path) -> Path:
    """Ten synthetic films (all four combinations of findings), a corrupt file and a colour photo."""
    folder = tmp_path / "films"
    folder.mkdir()
    for index in range(10):
        write_example_image(
            folder / f"film-{index:02d}.png", disc=index % 2 == 0, stripes=index % 3 == 0, seed=index
        )
    (folder / "corrupt.dcm").write_bytes(b"DICM" + b"\x00" * 40)
    colour = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    write_png(folder / "photo.png", colour)
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_folder_becomes_one_row_per_file_with_the_same_numbers_as_analyze(
    demo_installed: Settings, films: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.csv"
    summary = run_batch(films, out, BatchOptions(model=DEMO, batch_size=4), settings=demo_installed)

    rows = {Path(row["path"]).name: row for row in _rows(out)}
    assert len(rows) == 12 and summary.images == 12
    assert summary.analysed == 10 and summary.errors == 1 and summary.refused == 1
    # The rate leaves out the one model load: what a longer batch keeps up.
    assert 0 < summary.loading_seconds < summary.seconds
    assert summary.images_per_second == pytest.approx(10 / (summary.seconds - summary.loading_seconds))
    assert rows["corrupt.dcm"]["status"] == "error" and "corrupt.dcm" in rows["corrupt.dcm"]["reason"]
    assert rows["photo.png"]["status"] == "refused" and "colour" in rows["photo.png"]["reason"]
    single = analyze(films / "film-00.png", model=DEMO, settings=demo_installed)
    for finding in single.findings:  # batching changes nothing
        assert float(rows["film-00.png"][f"p_{finding.label}"]) == pytest.approx(
            finding.probability, abs=1e-4
        )
    assert summary.positives["synthetic_disc"] == sum(
        "synthetic_disc" in r["positives"] for r in rows.values()
    )

    triage = _rows(summary.triage)
    scores = [float(row["triage_score"]) for row in triage]
    assert len(triage) == 10 and scores == sorted(scores, reverse=True)


def test_a_rerun_skips_what_is_done_and_finishes_an_interrupted_run(
    demo_installed: Settings, films: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.csv"
    run_batch(films, out, BatchOptions(model=DEMO), settings=demo_installed)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-4]) + "\n")  # as if the run had stopped four images early

    summary = run_batch(films, out, BatchOptions(model=DEMO), settings=demo_installed)
    assert summary.resumed == 8 and summary.analysed + summary.errors + summary.refused == 4
    paths = [row["path"] for row in _rows(out)]
    assert len(paths) == len(set(paths)) == 12
    again = run_batch(films, out, BatchOptions(model=DEMO), settings=demo_installed)
    assert again.resumed == 12 and again.analysed == 0


def test_a_csv_of_paths_to_parquet_with_triage_weights(
    demo_installed: Settings, films: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    listed = tmp_path / "list.csv"
    names = sorted(p.name for p in films.glob("film-*.png"))
    listed.write_text("path\n" + "".join(f"films/{name}\n" for name in names))
    out = tmp_path / "results.parquet"
    options = BatchOptions(model=DEMO, weights={"synthetic_stripes": 5.0})
    summary = run_batch(listed, out, options, settings=demo_installed)

    table = pq.read_table(out)
    assert table.num_rows == 10 and str(table.schema.field("p_synthetic_disc").type) == "double"
    assert not out.with_name(out.name + ".partial.csv").exists()
    first = _rows(summary.triage)[0]
    assert "synthetic_stripes" in first["positives"]  # weighted first
    assert run_batch(listed, out, options, settings=demo_installed).resumed == 10


def test_heatmaps_are_written_at_display_size_for_the_top_findings(
    demo_installed: Settings, films: Path, tmp_path: Path
) -> None:
    from PIL import Image

    out = tmp_path / "results.csv"
    run_batch(
        films, out, BatchOptions(model=DEMO, heatmaps=tmp_path / "maps", top_k=1), settings=demo_installed
    )
    for row in _rows(out):
        names = [n for n in row["heatmaps"].split(";") if n]
        assert len(names) == (1 if row["positives"] else 0)
        for name in names:
            with Image.open(tmp_path / "maps" / name) as picture:
                assert picture.width <= 1024


def test_bad_requests_exit_2_and_name_the_problem(
    demo_installed: Settings, films: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run_cli(capsys, "batch", str(films), "--out", str(tmp_path / "r.txt"), "--model", DEMO)
    assert code == 2 and ".csv or .parquet" in stderr
    code, _, stderr = run_cli(
        capsys,
        "batch",
        str(films),
        "--out",
        str(tmp_path / "r.csv"),
        "--model",
        DEMO,
        "--weights",
        "Nodule=2",
    )
    assert code == 2 and "Nodule" in stderr
    code, _, stderr = run_cli(capsys, "batch", str(tmp_path / "absent"), "--out", str(tmp_path / "r.csv"))
    assert code == 2 and "does not exist" in stderr
    code, stdout, _ = run_cli(capsys, "batch", str(films), "--out", str(tmp_path / "ok.csv"), "--model", DEMO)
    assert code == 0 and "10 analysed" in stdout and "1 unreadable" in stdout
