"""``sahay cases``: the de-identified case library: add, import, list, show, remove, reindex, search, eval."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sahay.cli.common import (
    AsJson,
    FreeTextColumn,
    ImageColumn,
    LabelColumns,
    NotesFile,
    NotesText,
    SplitColumn,
    dataset_options,
    err,
    escape,
    number,
    out,
    print_json,
    progress_display,
    table,
)
from sahay.services.notes import note_text

if TYPE_CHECKING:
    from sahay.services.cases import CaseOut, CaseSummary

app = typer.Typer(
    rich_markup_mode=None,
    help="The case library: add, import, list and search similar cases.",
    no_args_is_help=True,
)

BlendWeights = Annotated[
    str | None, typer.Option(help="Blend weights, e.g. image=0.6,text=0.2,findings=0.2.")
]
SearchMode = Annotated[
    str, typer.Option(help="blend (every signal the query has), or only image, text or findings.")
]
EmbeddingModel = Annotated[str, typer.Option("--model", "-m", help="Installed model that embeds the images.")]


@app.command("add")
def cases_add(
    analysis: Annotated[Path, typer.Argument(help="An analysis.json written by `sahay analyze`.")],
    image: Annotated[
        Path | None, typer.Option(help="The analysed image (default: found beside analysis.json by name).")
    ] = None,
    diagnosis: Annotated[str | None, typer.Option(help="The confirmed diagnosis.")] = None,
    comment: Annotated[str | None, typer.Option(help="A clinician's free-text comment.")] = None,
    notes: NotesText = None,
    notes_file: NotesFile = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="The bundle folder that made the analysis, if it is not installed."
        ),
    ] = None,
) -> None:
    """Add an analysed image to the case library (de-identified)."""
    from sahay.services import cases

    with cases.open_library() as library:
        case = library.add_analysis(
            analysis,
            model=model,
            image_path=image,
            diagnosis=diagnosis,
            comment=comment,
            notes=note_text(notes, notes_file),
            tags=tag or [],
        )
    out.print(f"Added case {case.id} ({escape(case.model)}; diagnosis: {escape(case.diagnosis or 'none')})")


@app.command("import")
def cases_import(
    data: Annotated[Path, typer.Argument(help="An ImageFolder or a CSV of labels.")],
    model: EmbeddingModel,
    split: Annotated[str | None, typer.Option(help="Import only this split (default: all).")] = None,
    image_column: ImageColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    text_column: FreeTextColumn = None,
) -> None:
    """Import every image of a dataset as a case, its label as the confirmed diagnosis (resumable)."""
    from sahay.services import cases

    options = dataset_options(
        labels, image_column=image_column, split_column=split_column, text_column=text_column
    )
    with cases.open_library() as library, progress_display() as progress:
        report = cases.import_dataset(library, data, model=model, split=split, progress=progress, **options)
    out.print(f"Added {report.added} cases; {report.already_in_library} were already in the library.")
    for refused in report.refused:
        err.print(f"[yellow]not added:[/] {escape(refused)}")


@app.command("list")
def cases_list(
    limit: Annotated[int, typer.Option(min=1, help="How many cases to show, newest first.")] = 50,
    modality: Annotated[str | None, typer.Option(help="Only cases of this modality.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only cases with this tag.")] = None,
    as_json: AsJson = False,
) -> None:
    """List the cases in the library."""
    from sahay.services import cases

    with cases.open_library() as library:
        found = library.list_cases(limit=limit, modality=modality, tag=tag)
    if as_json:
        print_json([_json(case) for case in found])
        return
    listed = table("Case", "Added", "Modality", "Diagnosis", "Positive findings", "Tags")
    for case in found:
        listed.add_row(
            case.id,
            case.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(case.modality or ""),
            escape(case.diagnosis or ""),
            escape(", ".join(case.positive_findings)),
            escape(", ".join(case.tags)),
        )
    out.print(listed)


@app.command("show")
def cases_show(
    case_id: Annotated[str, typer.Argument(help="The case's id.")], as_json: AsJson = False
) -> None:
    """Show one case."""
    from sahay.services import cases

    with cases.open_library() as library:
        case = library.get(case_id)
    details = _json(case) | {
        "notes": case.notes,
        "comment": case.comment,
        "image": str(case.image),
        "source": case.source,
    }
    if as_json:
        print_json(details | {"analysis": case.analysis.model_dump(mode="json")})
        return
    for key, value in details.items():
        if value not in (None, [], ""):
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            out.print(f"[bold]{key}[/]: {escape(shown)}")


@app.command("remove")
def cases_remove(case_id: Annotated[str, typer.Argument(help="The case's id.")]) -> None:
    """Delete a case, its vectors and its files."""
    from sahay.services import cases

    with cases.open_library() as library:
        library.remove(case_id)
    out.print(f"Removed case {case_id}")


@app.command("reindex")
def cases_reindex() -> None:
    """Write every case's vectors into the configured index again (e.g. after setting SAHAY_QDRANT_URL)."""
    from sahay.services import cases

    with cases.open_library() as library, progress_display() as progress:
        count = cases.reindex(library, progress=progress)
        where = library.index.description
    out.print(f"Re-embedded {count} cases into the {escape(where)}")


@app.command("search")
def cases_search(
    image: Annotated[Path | None, typer.Option(help="Search with an image.")] = None,
    analysis: Annotated[Path | None, typer.Option(help="Search with an analysis.json.")] = None,
    text: Annotated[str | None, typer.Option(help="Search with words.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="How many cases to return.")] = 5,
    modality: Annotated[str | None, typer.Option(help="Only cases of this modality.")] = None,
    mode: SearchMode = "blend",
    weights: BlendWeights = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model that embeds the query image.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Find the cases most similar to an image, an analysis or words."""
    from sahay.services import cases

    request = cases.CaseSearch(image, analysis, text, k, modality, mode, weights, model)
    request.check()
    with cases.open_library() as library:
        results = cases.search(library, request)
    if as_json:
        print_json([_json(r.case, cases.SimilarCaseOut.of_result(r)) for r in results])
        return
    for rank_number, result in enumerate(results, start=1):
        signals = ", ".join(
            f"{name} {number(result.signals.get(name))}" for name in ("image", "text", "findings")
        )
        out.print(
            f"{rank_number}. {result.case.id}  similarity {result.similarity:.3f} ({signals})  "
            f"diagnosis: {escape(result.case.diagnosis or 'none')}"
        )
        out.print(f"   thumbnail: {escape(str(result.case.thumbnail))}")


@app.command("eval")
def cases_eval(
    data: Annotated[Path, typer.Argument(help="A labelled ImageFolder or CSV.")],
    model: EmbeddingModel,
    k: Annotated[int, typer.Option("--k", min=1, help="Precision at this many results.")] = 5,
    mode: SearchMode = "blend",
    weights: BlendWeights = None,
    split: Annotated[str | None, typer.Option(help="Use only this split (default: all).")] = None,
    image_column: ImageColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    text_column: FreeTextColumn = None,
    as_json: AsJson = False,
) -> None:
    """Leave-one-out precision@k of similar-case search on a labelled dataset."""
    from sahay.services import cases

    cases.parse_blend(mode, weights)  # a wrong mode is refused before images are read
    options = dataset_options(
        labels, image_column=image_column, split_column=split_column, text_column=text_column
    )
    with progress_display() as progress:
        result = cases.evaluate(
            data, model=model, k=k, mode=mode, weights=weights, split=split, progress=progress, **options
        )
    if as_json:
        print_json(vars(result))
        return
    out.print(f"precision@{result.k} = {result.precision_at_k:.3f}")
    out.print(f"{result.cases} cases, leave-one-out, mode {result.mode}")
    for diagnosis, value in result.per_diagnosis.items():
        out.print(f"  {escape(diagnosis)}: {value:.3f}")
    for skipped in result.skipped:
        err.print(f"[yellow]skipped:[/] {escape(skipped)}")


def _json(case: CaseSummary, shown: CaseOut | None = None) -> dict[str, object]:
    """The shared case form, plus the local thumbnail path the command line can open."""
    from sahay.services import cases

    shared = (shown or cases.CaseOut.of(case)).model_dump(mode="json")
    return shared | {"thumbnail": str(case.thumbnail)}
