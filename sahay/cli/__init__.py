"""The ``sahay`` command line: a thin door onto the library. No logic lives here.

Exit codes: 0 done, 1 a failed check or an internal error, 2 bad input or usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from sahay.about import __version__
from sahay.analysis import DEMONSTRATION_BANNER, Analysis
from sahay.config import get_settings
from sahay.errors import BadInput, SahayError
from sahay.models.download import ProgressCallback

app = typer.Typer(
    name="sahay",
    help="Sahay: medical image analysis assistant. Decision support, not a diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List, pull, import and inspect model bundles.", no_args_is_help=True)
app.add_typer(models_app, name="models")
runs_app = typer.Typer(help="Training and evaluation runs tracked in MLflow.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
cases_app = typer.Typer(
    help="The case library: add, import, list and search similar cases.", no_args_is_help=True
)
app.add_typer(cases_app, name="cases")
kb_app = typer.Typer(help="The cited knowledge base: add documents, list and search.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
users_app = typer.Typer(help="Web service accounts: create and list users.", no_args_is_help=True)
app.add_typer(users_app, name="users")
pacs_app = typer.Typer(
    help="The hospital archive (PACS) over DICOMweb: query, pull, push and analyze studies.",
    no_args_is_help=True,
)
app.add_typer(pacs_app, name="pacs")

out = Console(soft_wrap=True)  # long lines stay whole when piped; tables still fit the width
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors (give it before the command).")
    ] = False,
) -> None:
    """Sahay: medical image analysis assistant. Decision support, not a diagnosis."""


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


@contextmanager
def download_bar() -> Iterator[ProgressCallback]:
    """A rich download bar on stderr that appears only when bytes actually flow."""
    progress = Progress(
        TextColumn("downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task: list[TaskID] = []

    def update(done: int, total: int | None) -> None:
        if not task:
            progress.start()
            task.append(progress.add_task("download", total=total))
        progress.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            progress.stop()


EXPLAIN_METHODS_HELP = "gradcam, gradcam++, hirescam, layercam, eigencam, occlusion or shap"


@app.command()
def analyze(
    image: Annotated[Path, typer.Argument(help="DICOM, PNG, JPEG or TIFF file.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Installed model name or bundle folder.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for analysis.json and overlays.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the Analysis JSON on stdout, nothing else.")
    ] = False,
    heatmaps: Annotated[
        bool,
        typer.Option("--heatmaps/--no-heatmaps", help="Explain the findings: maps, regions and overlays."),
    ] = True,
    explain: Annotated[
        str, typer.Option("--explain", help=f"Explanation method: {EXPLAIN_METHODS_HELP}.")
    ] = "gradcam",
    explain_budget: Annotated[
        int,
        typer.Option(min=2, help="Occlusion and SHAP: the most model evaluations to spend on one image."),
    ] = 64,
    faithfulness: Annotated[
        bool,
        typer.Option(
            "--faithfulness/--no-faithfulness", help="Score each map by deletion and insertion curves."
        ),
    ] = True,
    overlay_opacity: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Opacity of the heatmap where attribution is highest.")
    ] = 0.5,
    keep_identifiers: Annotated[
        bool, typer.Option("--keep-identifiers", help="Keep patient and study identifiers in the result.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Analyse an image the model was not made for, with a warning.")
    ] = False,
    notes: Annotated[
        str | None, typer.Option("--notes", help="Clinical notes that come with the image.")
    ] = None,
    notes_file: Annotated[
        Path | None, typer.Option("--notes-file", help="A UTF-8 text file of notes.")
    ] = None,
) -> None:
    """Classify an image, show where the model looked, and write analysis.json."""
    from sahay.explain.options import ExplainOptions
    from sahay.explain.methods import Budget, get_method
    from sahay.services.analyze import analyze as run_analysis
    from sahay.services.analyze import default_out_dir

    get_method(explain)  # an unknown method is refused before the image is read
    note_text = _note_text(notes, notes_file)
    destination = out_dir or default_out_dir(image)
    options = ExplainOptions(
        method=explain,
        budget=Budget(max_evaluations=explain_budget),
        faithfulness=faithfulness,
        opacity=overlay_opacity,
    )
    with _analysis_progress() as progress:
        analysis = run_analysis(
            image,
            model=model,
            out_dir=destination,
            heatmaps=heatmaps,
            keep_identifiers=keep_identifiers,
            force=force,
            notes=note_text,
            explain=options,
            download_progress=progress.download,
            explain_progress=progress.evaluations,
            on_step=progress.step,
        )
    if as_json:
        sys.stdout.write(analysis.to_json() + "\n")
        return
    print_analysis(analysis, destination)


class _AnalysisProgress:
    """One transient line on stderr: the current step, and a bar while bytes or evaluations are counted."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("analysing", total=None, detail="")

    def step(self, message: str) -> None:
        self.progress.update(self.task, description=message, total=None, completed=0, detail="")

    def download(self, done: int, total: int | None) -> None:
        size = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f}" if total else "") + " MB"
        self.progress.update(self.task, description="downloading", total=total, completed=done, detail=size)

    def evaluations(self, done: int, total: int) -> None:
        self.progress.update(
            self.task, total=total, completed=done, detail=f"{done}/{total} model evaluations"
        )


@contextmanager
def _analysis_progress() -> Iterator[_AnalysisProgress]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        yield _AnalysisProgress(progress)


def print_analysis(analysis: Analysis, destination: Path | None) -> None:
    # Values from the image file are printed with escape(): DICOM text must not be read as markup.
    if analysis.demonstration_notice:
        out.print(f"[bold red]{escape(analysis.demonstration_notice)}[/]")
    image = analysis.image
    described = ", ".join(
        str(v) for v in (image.format.upper(), image.modality, image.body_part, image.view_position) if v
    )
    out.print(f"[bold]{escape(image.filename)}[/] ({escape(described)}; {image.columns}x{image.rows})")
    out.print(
        f"Model: {escape(analysis.model.name)} {escape(analysis.model.version)} ({analysis.model.task})"
    )
    title = DEMONSTRATION_BANNER if analysis.model.demonstration else None
    table = Table(show_header=True, header_style="bold", title=title, title_style="bold red")
    for column in ("Finding", "Probability", "Threshold", "Result"):
        table.add_column(
            column,
            justify="right" if column in ("Probability", "Threshold") else "left",
            no_wrap=column == "Finding",
        )
    for finding in sorted(analysis.findings, key=lambda f: f.probability, reverse=True):
        result = "[bold red]POSITIVE[/]" if finding.positive else "negative"
        table.add_row(escape(finding.label), f"{finding.probability:.3f}", f"{finding.threshold:.3f}", result)
    out.print(table)
    _print_explanations(analysis)
    if analysis.fusion is not None:
        _print_fusion(analysis)
    for warning in analysis.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    if destination:
        out.print(f"Wrote {escape(str(destination / 'analysis.json'))} (heatmap paths are relative to it)")
    out.print(f"[dim]{escape(analysis.disclaimer)}[/]")


def _print_explanations(analysis: Analysis) -> None:
    for finding in analysis.findings:
        explanation = finding.explanation
        if explanation is None:
            continue
        score = explanation.faithfulness
        faithfulness = f"faithfulness {score.score:+.2f}" if score else "faithfulness not scored"
        out.print(
            f"{escape(explanation.summary)} [dim]({faithfulness}; {escape(explanation.overlay_png)})[/]"
        )
        if not explanation.class_specific:
            out.print(
                f"  [yellow]note:[/] {escape(explanation.method_title)} gives every finding the same map."
            )


def _note_text(notes: str | None, notes_file: Path | None) -> str | None:
    """The note from --notes or --notes-file (not both)."""
    from sahay.notes.pipeline import decode_note

    if notes is not None and notes_file is not None:
        raise BadInput("give --notes or --notes-file, not both")
    if notes_file is None:
        return notes
    try:
        data = notes_file.read_bytes()
    except OSError as exc:
        raise BadInput(f"{notes_file} cannot be read ({exc.strerror or exc})") from exc
    return decode_note(data, str(notes_file))


def _print_fusion(analysis: Analysis) -> None:
    fusion = analysis.fusion
    assert fusion is not None
    table = _table("Finding", "Image p", "Notes", "Assessment")
    for item in fusion.findings:
        evidence = "; ".join(f"{e.status}: {e.text!r}" for e in item.evidence) or "not mentioned"
        table.add_row(escape(item.label), f"{item.image_probability:.3f}", escape(evidence), item.assessment)
    out.print(table)
    for discordance in fusion.discordances:
        out.print(f"[bold yellow]discordance:[/] {escape(discordance)}")
    for flag in fusion.flags:
        sources = "; ".join(source.title for source in flag.sources)
        out.print(f"[bold]flag:[/] {escape(flag.text)} [dim](source: {escape(sources)})[/]")


@app.command("report")
def report_command(
    analysis: Annotated[Path, typer.Argument(help="An analysis.json written by `sahay analyze --out`.")],
    report_format: Annotated[
        str, typer.Option("--format", "-f", help="html, pdf, fhir, dicom-sr or dicom-sc.")
    ] = "html",
    destination: Annotated[
        Path, typer.Option("--out", "-o", help="The file to write (a folder for several Secondary Captures).")
    ] = Path("report.html"),
    image: Annotated[
        Path | None,
        typer.Option("--image", help="dicom-sr and dicom-sc: the DICOM file the analysis was made from."),
    ] = None,
    include_identifiers: Annotated[
        bool,
        typer.Option(
            "--include-identifiers",
            help="Print the patient and study identifiers the analysis kept (--keep-identifiers).",
        ),
    ] = False,
) -> None:
    """Write the report of an analysis: HTML, PDF, FHIR R4 Bundle, DICOM SR or Secondary Capture."""
    from sahay.reports import export_report

    written = export_report(
        analysis, report_format, destination, image=image, include_identifiers=include_identifiers
    )
    for path in written:
        out.print(f"Wrote {escape(str(path))}")


@app.command("serve")
def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """Run the web service and browser UI (API under /api/v1, documentation at /docs)."""
    import uvicorn

    from sahay.api.app import create_app

    settings = get_settings()
    out.print(f"Sahay {__version__} on http://{host}:{port} (data in {escape(str(settings.home_dir))})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=True)


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option("--username", help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password: Annotated[
        str | None, typer.Option(help="The password; asked for (hidden) when not given.")
    ] = None,
) -> None:
    """Create a user (the first administrator, or any user)."""
    from sahay.store import audit
    from sahay.store.accounts import create_user
    from sahay.store.db import session_scope

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with session_scope() as session:
        user = create_user(session, username, password, "admin" if admin else "clinician")
        audit.record(
            session,
            None,
            "create",
            "user",
            user.id,
            {"username": user.username, "role": user.role},
            actor_name="cli",
        )
    out.print(f"Created {user.role} {escape(user.username)} ({user.id})")


@users_app.command("list")
def users_list() -> None:
    """List the web service's users."""
    from sahay.store.accounts import list_users
    from sahay.store.db import session_scope

    table = _table("User", "Role", "Created", "Id")
    with session_scope() as session:
        for user in list_users(session):
            table.add_row(escape(user.username), user.role, f"{user.created_at:%Y-%m-%d %H:%M}", user.id)
    out.print(table)


@app.command("audit")
def audit_command(
    limit: Annotated[int, typer.Option(min=1, help="How many entries, newest first.")] = 50,
    actor: Annotated[str | None, typer.Option(help="Only this user's actions.")] = None,
    object_id: Annotated[
        str | None, typer.Option("--object", help="Only entries about this object id.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Show the audit log: who created, viewed, exported or deleted what, and when."""
    from sahay.store import audit
    from sahay.store.db import session_scope

    with session_scope() as session:
        entries = audit.events(session, limit=limit, actor=actor, object_id=object_id)
        rows = [
            {
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "object_type": e.object_type,
                "object_id": e.object_id,
                "detail": e.detail,
            }
            for e in entries
        ]
    if as_json:
        for row in rows:
            out.print_json(json.dumps(row))
        return
    table = _table("When (UTC)", "Who", "Action", "Object", "Detail")
    for row in rows:
        detail = json.dumps(row["detail"]) if row["detail"] else ""
        table.add_row(
            str(row["at"])[:19],
            escape(str(row["actor"])),
            str(row["action"]),
            f"{row['object_type']} {row['object_id'] or ''}".strip(),
            escape(detail),
        )
    out.print(table)


@app.command("notes")
def notes_command(
    text: Annotated[str | None, typer.Argument(help="The note's text.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A UTF-8 text file holding the note.")
    ] = None,
    batch: Annotated[
        Path | None, typer.Option("--batch", help='A JSONL file of {"id": ..., "text": ...}, one per line.')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reading as JSON.")] = False,
) -> None:
    """Read clinical notes: findings, symptoms and risk factors, with negation, history and context."""
    from sahay.notes.pipeline import default_reader

    if batch is not None:
        if text is not None or file is not None:
            raise BadInput("--batch reads its notes from the file; give no TEXT or --file with it")
        _notes_batch(batch)
        return
    note = _note_text(text, file)
    if note is None:
        raise BadInput("give the note as TEXT, with --file, or a JSONL file with --batch")
    reading = default_reader().read(note)
    if as_json:
        sys.stdout.write(reading.model_dump_json(indent=2) + "\n")
        return
    table = _table("Text", "Concept", "Kind", "Status", "Section", "Where", "Size")
    for e in reading.entities:
        status = ", ".join(
            k for k in ("negated", "uncertain", "historical", "family", "hypothetical") if getattr(e, k)
        )
        where = " ".join(v for v in (e.laterality, e.location) if v)
        table.add_row(
            escape(e.text),
            escape(e.concept),
            e.kind,
            status or "affirmed",
            escape(e.section or ""),
            escape(where),
            escape(e.measurement or ""),
        )
    out.print(table)
    facts = {
        k: v
        for k, v in reading.risk_factors.model_dump(exclude={"evidence"}).items()
        if v not in (None, [], False)
    }
    out.print("Risk factors: " + (escape(", ".join(f"{k}={v}" for k, v in facts.items())) or "none found"))


def _notes_batch(path: Path) -> None:
    import json

    from sahay.notes.batch import read_batch
    from sahay.notes.pipeline import default_reader

    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({exc.strerror or exc})") from exc
    failed = done = 0
    with handle:
        try:
            for result in read_batch(handle, default_reader()):
                sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
                done += 1
                failed += "error" in result
        except UnicodeDecodeError as exc:
            raise BadInput(f"{path} is not UTF-8 text (after {done} notes); save it as UTF-8") from exc
    err.print(f"read {done - failed} notes; {failed} failed" if failed else f"read {done} notes")
    if failed:
        raise typer.Exit(2)


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the example and its analysis.")
    ] = Path("sahay-demo"),
    retrain: Annotated[bool, typer.Option("--retrain", help="Train the demonstration bundle again.")] = False,
) -> None:
    """Train a demonstration model on synthetic images and analyse a synthetic example (offline)."""
    from sahay.services.demo import DEMO_MODEL_NAME, EXAMPLE_NAME, run_demo

    with _stage_bar() as bar:
        task = bar.add_task("preparing the demonstration model", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        analysis = run_demo(out_dir, get_settings(), retrain=retrain, progress=on_progress)
    print_analysis(analysis, out_dir / "analysis")
    out.print(f"Try: sahay analyze {escape(str(out_dir / EXAMPLE_NAME))} --model {DEMO_MODEL_NAME}")


def _stage_bar() -> Progress:
    """A transient bar on stderr, shown only on a terminal (logs and pipes get none)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _table(*columns: str) -> Table:
    """A table whose first column (a name people copy into commands) never wraps."""
    table = Table()
    for index, column in enumerate(columns):
        # Fold, not truncate: ids and paths are copied into other commands.
        table.add_column(column, no_wrap=index == 0, overflow="fold")
    return table


@models_app.command("list")
def models_list(
    available: Annotated[bool, typer.Option("--available", help="List models that can be pulled.")] = False,
) -> None:
    """List installed models (or, with --available, the catalogue)."""
    from sahay.models.catalog import catalog
    from sahay.models.registry import scan

    settings = get_settings()
    if available:
        table = _table("Name", "Labels", "sha256 known", "Source")
        for entry in catalog().values():
            table.add_row(
                entry.name, str(len(entry.kept_outputs)), "yes" if entry.sha256 else "no", entry.url
            )
        out.print(table)
        return
    bundles, broken = scan(settings)
    if not bundles:
        out.print(
            f"No models installed in {settings.models_dir}. Try `sahay demo` or `sahay models pull NAME`."
        )
    table = _table("Name", "Version", "Task", "Modalities", "Body part", "Labels")
    for bundle in bundles:
        m = bundle.manifest
        name = f"{m.name} [red](demo)[/]" if m.demonstration else m.name
        table.add_row(
            name, m.version, m.task, ",".join(m.modalities) or "any", m.body_part or "-", str(len(m.labels))
        )
    if bundles:
        out.print(table)
    for folder, reason in broken.items():
        err.print(f"[yellow]warning:[/] skipped {escape(str(folder))}: {escape(reason)}")


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument(help="Installed model name or bundle folder.")]) -> None:
    """Show a model's card: what it is for, how it was trained and calibrated."""
    from sahay.errors import ModelUnavailable
    from sahay.models.registry import locate

    bundle = locate(name, get_settings())
    if bundle is None:
        raise ModelUnavailable(f"no installed model named {name!r}; `sahay models list` shows them")
    out.print_json(bundle.manifest.model_dump_json())


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Catalogue name, e.g. xrv-densenet121-res224-all.")],
) -> None:
    """Download a model, check its sha256, and install it."""
    from sahay.models.registry import pull

    with download_bar() as on_download:
        bundle = pull(name, get_settings(), progress=on_download)
    out.print(
        f"Installed {bundle.name} in {bundle.path} (weights sha256 {bundle.manifest.weights.source_sha256})"
    )


@models_app.command("import")
def models_import(
    path: Annotated[Path, typer.Argument(help="A bundle folder, or a weights file downloaded elsewhere.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an installed model of the same name.")
    ] = False,
) -> None:
    """Install a bundle folder or a provider's weights file (checked against its known sha256)."""
    from sahay.models.registry import import_path

    bundle = import_path(path, get_settings(), force=force)
    out.print(f"Installed {bundle.name} in {bundle.path}")


@models_app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="Installed model name.")]) -> None:
    """Delete an installed model."""
    from sahay.models.registry import remove

    folder = remove(name, get_settings())
    out.print(f"Removed {folder}")


def _dataset_options(labels: str | None, **columns: Any) -> dict[str, Any]:
    """Dataset reader options from the CSV flags; ``--labels`` is a comma-separated list."""
    return {"label_columns": [name.strip() for name in labels.split(",")] if labels else None, **columns}


ImageColumn = Annotated[str | None, typer.Option(help="CSV: the image path column (default: auto-detect).")]
PatientColumn = Annotated[str | None, typer.Option(help="CSV: the patient ID column (default: auto-detect).")]
LabelColumns = Annotated[str | None, typer.Option("--labels", help="CSV: comma-separated label columns.")]
SplitColumn = Annotated[str | None, typer.Option(help="CSV: a column naming each row's split.")]
Split = Annotated[str, typer.Option(help="train, val or test.")]
SplitSeed = Annotated[int, typer.Option(help="The training run's --seed, so carved splits match it.")]
FreeTextColumn = Annotated[
    str | None, typer.Option(help="CSV: a column of free text (report, notes) for text search.")
]
Uncertain = Annotated[
    str, typer.Option(help="CSV: blank or -1 labels are ignored, or treated as 0 or 1: ignore|zero|one.")
]


@app.command("train")
def train_command(
    data: Annotated[Path, typer.Argument(help="An ImageFolder (train/<class>/...) or a CSV of labels.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the bundle.")],
    task: Annotated[
        str | None, typer.Option(help="multiclass or multilabel (default: from the data).")
    ] = None,
    backbone: Annotated[
        str, typer.Option(help="efficientnet-lite0 or xrv-densenet121.")
    ] = "efficientnet-lite0",
    epochs: Annotated[int, typer.Option(help="Most epochs to train.")] = 10,
    head_epochs: Annotated[int, typer.Option(help="Epochs that train the head alone first.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate of the head (the backbone gets a tenth).")] = 1e-3,
    image_size: Annotated[int, typer.Option(help="Input side in pixels.")] = 224,
    seed: Annotated[int, typer.Option(help="Seed for splits, shuffling and augmentation.")] = 0,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without better val AUROC.")] = 3,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    target_sensitivity: Annotated[
        float | None, typer.Option(help="Choose thresholds for this sensitivity instead of Youden's J.")
    ] = None,
    horizontal_flip: Annotated[
        bool, typer.Option("--horizontal-flip", help="Augment with flips (off: they break laterality).")
    ] = False,
    modality: Annotated[
        list[str] | None, typer.Option(help="DICOM modality the model is for (repeatable).")
    ] = None,
    body_part: Annotated[str | None, typer.Option(help="DICOM body part the model is for.")] = None,
    name: Annotated[str | None, typer.Option(help="Bundle name (default: the --out folder's name).")] = None,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    uncertain: Uncertain = "ignore",
) -> None:
    """Fine-tune a model on your dataset and write a bundle that `sahay analyze --model` uses."""
    from sahay.training.train import TrainEvent, TrainOptions, train

    options = TrainOptions(
        backbone=backbone,
        task=task,  # type: ignore[arg-type]  # checked by load_dataset
        epochs=epochs,
        head_epochs=head_epochs,
        batch_size=batch_size,
        lr=lr,
        image_size=image_size,
        seed=seed,
        patience=patience,
        target_sensitivity=target_sensitivity,
        horizontal_flip=horizontal_flip,
        modalities=tuple(modality or ()),
        body_part=body_part,
        name=name,
        **_dataset_options(
            labels,
            image_column=image_column,
            patient_column=patient_column,
            split_column=split_column,
            uncertain=uncertain,
        ),
    )
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        console=err,
        transient=True,
    )

    def on_event(event: TrainEvent) -> None:
        if event.kind == "scan":
            bar.update(
                task_id, description="reading images", completed=event.done, total=event.total, info=""
            )
        elif event.kind == "batch":
            bar.update(
                task_id,
                description=f"epoch {event.epoch}/{epochs}",
                completed=event.done,
                total=event.total,
                info=f"loss {event.loss:.4f}",
            )
        elif event.kind == "epoch" and event.record is not None:
            r = event.record
            auroc = "n/a" if r.val_auroc is None else f"{r.val_auroc:.4f}"
            err.print(
                f"epoch {r.epoch} ({r.phase}): train loss {r.train_loss:.4f}, "
                f"val loss {r.val_loss:.4f}, val AUROC {auroc}"
            )

    with bar:
        task_id = bar.add_task("preparing", total=None, info="")
        try:
            result = train(data, out_dir, options, resume=resume, settings=get_settings(), progress=on_event)
        except KeyboardInterrupt:
            err.print(
                "[yellow]interrupted:[/] the last completed epoch is checkpointed; "
                "run the same command with --resume to continue"
            )
            raise typer.Exit(130) from None
    manifest = result.bundle.manifest
    for note in result.notes:
        err.print(f"[dim]note:[/] {escape(note)}")
    table = _table("Metric", "Value")
    for key, value in manifest.metrics.items():
        table.add_row(escape(key), f"{value:.4f}")
    out.print(table)
    out.print(
        f"Best epoch {result.best_epoch}; calibration temperature {manifest.calibration.temperature:.3f}; "
        f"MLflow run {result.run_id}"
    )
    path = escape(str(result.bundle.path))
    out.print(f"Wrote the bundle {path}. Use it with: sahay analyze IMAGE --model {path}")


@app.command("evaluate")
def evaluate_command(
    bundle: Annotated[str, typer.Argument(help="Installed model name or bundle folder.")],
    data: Annotated[Path, typer.Argument(help="An ImageFolder or a CSV of labels, like the training data.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics.json and plots.")],
    split: Split = "test",
    seed: SplitSeed = 0,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    uncertain: Uncertain = "ignore",
) -> None:
    """Measure a model on a labelled dataset: metrics.json, ROC, PR, confusion and calibration plots."""
    from sahay.training.evaluate import METRICS_FILE, evaluate

    options = _dataset_options(
        labels,
        image_column=image_column,
        patient_column=patient_column,
        split_column=split_column,
        uncertain=uncertain,
    )
    with _stage_bar() as bar:
        task_id = bar.add_task("preparing", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task_id, description=stage, completed=done, total=total)

        metrics = evaluate(bundle, data, out=out_dir, split=split, progress=on_progress, seed=seed, **options)
    table = _table("Label", "AUROC (95% CI)", "Sensitivity", "Specificity", "F1")
    for label, values in metrics["per_label"].items():
        ci = values["auroc_ci95"]
        auroc = "n/a" if values["auroc"] is None else f"{values['auroc']:.3f}"
        if ci:
            auroc += f" ({ci[0]:.3f}-{ci[1]:.3f})"
        table.add_row(
            escape(label), auroc, *(_number(values[k]) for k in ("sensitivity", "specificity", "f1"))
        )
    out.print(table)
    out.print(
        f"accuracy {_number(metrics['accuracy'])}; ECE {_number(metrics['ece']['calibrated'])} calibrated, "
        f"{_number(metrics['ece']['uncalibrated'])} uncalibrated"
    )
    for warning in metrics.get("warnings", []):
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print(f"Wrote {escape(str(out_dir / METRICS_FILE))} and plots; MLflow run {metrics['mlflow_run_id']}")


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command("explain-eval")
def explain_eval_command(
    bundle: Annotated[str, typer.Argument(help="Installed model name or bundle folder.")],
    data: Annotated[Path, typer.Argument(help="An ImageFolder or a CSV of labels, like the training data.")],
    methods: Annotated[
        str | None, typer.Option(help=f"Comma-separated methods (default: all): {EXPLAIN_METHODS_HELP}.")
    ] = None,
    split: Split = "test",
    limit: Annotated[int, typer.Option(min=1, help="Score at most this many images of the split.")] = 50,
    explain_budget: Annotated[
        int, typer.Option(min=2, help="Occlusion and SHAP: the most model evaluations per image.")
    ] = 64,
    json_out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the scores to this JSON file.")
    ] = None,
    seed: SplitSeed = 0,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    uncertain: Uncertain = "ignore",
) -> None:
    """Rank explanation methods by faithfulness (deletion/insertion) on a labelled dataset."""
    from sahay.explain.evaluate import evaluate_explanations
    from sahay.explain.methods import Budget

    chosen = [name.strip() for name in methods.split(",") if name.strip()] if methods else None
    options = _dataset_options(
        labels,
        image_column=image_column,
        patient_column=patient_column,
        split_column=split_column,
        uncertain=uncertain,
    )
    with _stage_bar() as bar:
        task_id = bar.add_task("explaining images", total=None)
        report = evaluate_explanations(
            bundle,
            data,
            methods=chosen,
            split=split,
            limit=limit,
            budget=Budget(max_evaluations=explain_budget),
            progress=lambda done, total: bar.update(task_id, completed=done, total=total),
            json_out=json_out,
            seed=seed,
            **options,
        )
    table = _table("Method", "Faithfulness (mean ± sd)", "Deletion AUC", "Insertion AUC", "Evaluations")
    for row in report.rows:
        score = "n/a" if row.mean_score is None else f"{row.mean_score:+.3f} ± {row.sd_score or 0:.3f}"
        table.add_row(
            escape(row.method),
            score,
            _number(row.mean_deletion),
            _number(row.mean_insertion),
            f"{row.evaluations_per_image:.0f}",
        )
    out.print(f"{escape(report.model)} on {report.images} images of {escape(report.data)} ({report.split})")
    out.print(table)
    out.print("Higher is more faithful; a useful method scores clearly above the random reference.")
    for skipped in report.skipped:
        err.print(f"[yellow]skipped:[/] {escape(skipped)}")
    if json_out is not None:
        out.print(f"Wrote {escape(str(json_out))}")


@models_app.command("fit-ood")
def models_fit_ood(
    bundle: Annotated[str, typer.Argument(help="Installed model name or bundle folder.")],
    data: Annotated[Path, typer.Argument(help="Images the model should accept: an ImageFolder or a CSV.")],
    percentile: Annotated[
        float, typer.Option(min=1.0, max=100.0, help="Held-out percentile that sets the threshold.")
    ] = 99.0,
    image_column: ImageColumn = None,
    patient_column: PatientColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
) -> None:
    """Fit the model's out-of-domain reference from local images (e.g. for a pulled model)."""
    from sahay.training.reference import fit_ood

    options = _dataset_options(
        labels,
        image_column=image_column,
        patient_column=patient_column,
        split_column=split_column,
        uncertain="ignore",
    )
    updated = fit_ood(bundle, data, percentile=percentile, **options)
    spec = updated.manifest.ood
    assert spec is not None
    out.print(
        f"Fitted the out-of-domain reference of {escape(updated.name)}: {spec.reference_size} images, "
        f"threshold {spec.threshold:.4f} ({spec.percentile:g}th percentile of held-out scores)"
    )


@runs_app.command("list")
def runs_list(limit: Annotated[int, typer.Option(min=1, help="How many runs to show.")] = 20) -> None:
    """Show recent training and evaluation runs tracked in MLflow."""
    from sahay.training.tracking import list_runs, tracking_uri

    settings = get_settings()
    runs = list_runs(settings, limit=limit)
    if not runs:
        out.print(f"No runs yet in {escape(tracking_uri(settings))}.")
        return
    table = _table("Run", "Kind", "Name", "Status", "Started (UTC)", "Key metric")
    table.columns[1].no_wrap = table.columns[4].no_wrap = True
    for run in runs:
        key = next((k for k in ("val_auroc_macro", "macro_auroc") if k in run.metrics), None)
        metric = f"{key} {run.metrics[key]:.3f}" if key else ""
        started = run.started.strftime("%Y-%m-%d %H:%M")
        table.add_row(run.run_id, run.kind, escape(run.name), run.status.lower(), started, metric)
    out.print(table)


BlendWeights = Annotated[
    str | None, typer.Option(help="Blend weights, e.g. image=0.6,text=0.2,findings=0.2.")
]
SearchMode = Annotated[
    str, typer.Option(help="blend (every signal the query has), or only image, text or findings.")
]


@cases_app.command("add")
def cases_add(
    analysis: Annotated[Path, typer.Argument(help="An analysis.json written by `sahay analyze`.")],
    image: Annotated[
        Path | None, typer.Option(help="The analysed image (default: found beside analysis.json by name).")
    ] = None,
    diagnosis: Annotated[str | None, typer.Option(help="The confirmed diagnosis.")] = None,
    comment: Annotated[str | None, typer.Option(help="A clinician's free-text comment.")] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="The case's clinical notes.")] = None,
    notes_file: Annotated[
        Path | None, typer.Option("--notes-file", help="A UTF-8 text file of notes.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
) -> None:
    """Add an analysed image to the case library (de-identified)."""
    from sahay.cases.library import CaseLibrary

    with CaseLibrary() as library:
        case = library.add_analysis(
            analysis,
            image_path=image,
            diagnosis=diagnosis,
            comment=comment,
            notes=_note_text(notes, notes_file),
            tags=tag or [],
        )
    out.print(f"Added case {case.id} ({escape(case.model)}; diagnosis: {escape(case.diagnosis or 'none')})")


@cases_app.command("import")
def cases_import(
    data: Annotated[Path, typer.Argument(help="An ImageFolder or a CSV of labels.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Installed model that embeds the images.")],
    split: Annotated[str | None, typer.Option(help="Import only this split (default: all).")] = None,
    image_column: ImageColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    text_column: FreeTextColumn = None,
) -> None:
    """Import every image of a dataset as a case, its label as the confirmed diagnosis (resumable)."""
    from sahay.cases.library import CaseLibrary

    options = _dataset_options(
        labels, image_column=image_column, split_column=split_column, text_column=text_column
    )
    with CaseLibrary() as library, _stage_bar() as bar:
        task_id = bar.add_task("importing cases", total=None)
        report = library.import_dataset(
            data,
            model=model,
            split=split,
            progress=lambda done, total: bar.update(task_id, completed=done, total=total),
            **options,
        )
    out.print(f"Added {report.added} cases; {report.already_in_library} were already in the library.")
    for refused in report.refused:
        err.print(f"[yellow]not added:[/] {escape(refused)}")


@cases_app.command("list")
def cases_list(
    limit: Annotated[int, typer.Option(min=1, help="How many cases to show, newest first.")] = 50,
    modality: Annotated[str | None, typer.Option(help="Only cases of this modality.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only cases with this tag.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the cases in the library."""
    from sahay.cases.library import CaseLibrary

    with CaseLibrary() as library:
        cases = library.list_cases(limit=limit, modality=modality, tag=tag)
    if as_json:
        sys.stdout.write(json.dumps([_case_json(c) for c in cases], indent=2) + "\n")
        return
    table = _table("Case", "Added", "Modality", "Diagnosis", "Positive findings", "Tags")
    for case in cases:
        table.add_row(
            case.id,
            case.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(case.modality or ""),
            escape(case.diagnosis or ""),
            escape(", ".join(case.positive_findings)),
            escape(", ".join(case.tags)),
        )
    out.print(table)


@cases_app.command("show")
def cases_show(
    case_id: Annotated[str, typer.Argument(help="The case's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one case."""
    from sahay.cases.library import CaseLibrary

    with CaseLibrary() as library:
        case = library.get(case_id)
    details = _case_json(case) | {
        "notes": case.notes,
        "comment": case.comment,
        "image": str(case.image),
        "source": case.source,
    }
    if as_json:
        details["analysis"] = json.loads(case.analysis.to_json())
        sys.stdout.write(json.dumps(details, indent=2) + "\n")
        return
    for key, value in details.items():
        if value not in (None, [], ""):
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            out.print(f"[bold]{key}[/]: {escape(shown)}")


@cases_app.command("remove")
def cases_remove(case_id: Annotated[str, typer.Argument(help="The case's id.")]) -> None:
    """Delete a case, its vectors and its files."""
    from sahay.cases.library import CaseLibrary

    with CaseLibrary() as library:
        library.remove(case_id)
    out.print(f"Removed case {case_id}")


@cases_app.command("reindex")
def cases_reindex() -> None:
    """Write every case's vectors into the configured index again (e.g. after setting SAHAY_QDRANT_URL)."""
    from sahay.cases.library import CaseLibrary

    with CaseLibrary() as library, _stage_bar() as bar:
        task_id = bar.add_task("re-embedding cases", total=None)
        count = library.reindex(progress=lambda done, total: bar.update(task_id, completed=done, total=total))
        where = library.index.description
    out.print(f"Re-embedded {count} cases into the {escape(where)}")


@cases_app.command("search")
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Find the cases most similar to an image, an analysis or words."""
    from sahay.cases.library import CaseLibrary
    from sahay.cases.query import analysis_query, image_query, text_query
    from sahay.cases.search import MODES, Weights

    given = [
        name for name, value in (("--image", image), ("--analysis", analysis), ("--text", text)) if value
    ]
    if len(given) != 1:
        raise BadInput("give exactly one of --image, --analysis or --text")
    if mode not in MODES:
        raise BadInput(f"unknown --mode {mode!r}; use one of {', '.join(MODES)}")
    blend = Weights.parse(weights) if weights else Weights()
    with CaseLibrary() as library:
        query_modality = None
        if image is not None:
            query, query_modality = image_query(image, library, model)
        elif analysis is not None:
            query, query_modality = analysis_query(analysis, library)
        else:
            query = text_query(text or "", library)
        results = library.search(
            query,
            k=k,
            mode=mode,
            weights=blend,
            modality=modality,
            query_modality=query_modality,
        )
    if as_json:
        rows = [_case_json(r.case) | {"similarity": r.similarity, "signals": r.signals} for r in results]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    for rank_number, result in enumerate(results, start=1):
        signals = ", ".join(
            f"{name} {_number(result.signals.get(name))}" for name in ("image", "text", "findings")
        )
        out.print(
            f"{rank_number}. {result.case.id}  similarity {result.similarity:.3f} ({signals})  "
            f"diagnosis: {escape(result.case.diagnosis or 'none')}"
        )
        out.print(f"   thumbnail: {escape(str(result.case.thumbnail))}")


@cases_app.command("eval")
def cases_eval(
    data: Annotated[Path, typer.Argument(help="A labelled ImageFolder or CSV.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Installed model that embeds the images.")],
    k: Annotated[int, typer.Option("--k", min=1, help="Precision at this many results.")] = 5,
    mode: SearchMode = "blend",
    weights: BlendWeights = None,
    split: Annotated[str | None, typer.Option(help="Use only this split (default: all).")] = None,
    image_column: ImageColumn = None,
    labels: LabelColumns = None,
    split_column: SplitColumn = None,
    text_column: FreeTextColumn = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Leave-one-out precision@k of similar-case search on a labelled dataset."""
    from sahay.cases.evaluate import evaluate_cases
    from sahay.cases.search import MODES, Weights

    if mode not in MODES:
        raise BadInput(f"unknown --mode {mode!r}; use one of {', '.join(MODES)}")
    options = _dataset_options(
        labels, image_column=image_column, split_column=split_column, text_column=text_column
    )
    with _stage_bar() as bar:
        task_id = bar.add_task("embedding images", total=None)
        result = evaluate_cases(
            data,
            model=model,
            k=k,
            mode=mode,
            weights=Weights.parse(weights) if weights else None,
            split=split,
            progress=lambda done, total: bar.update(task_id, completed=done, total=total),
            **options,
        )
    if as_json:
        sys.stdout.write(json.dumps(vars(result), indent=2) + "\n")
        return
    out.print(f"precision@{result.k} = {result.precision_at_k:.3f}")
    out.print(f"{result.cases} cases, leave-one-out, mode {result.mode}")
    for diagnosis, value in result.per_diagnosis.items():
        out.print(f"  {escape(diagnosis)}: {value:.3f}")
    for skipped in result.skipped:
        err.print(f"[yellow]skipped:[/] {escape(skipped)}")


@app.command("chat")
def chat_command(
    question: Annotated[
        str | None, typer.Argument(help="The question; without one, an interactive chat.")
    ] = None,
    analysis: Annotated[Path | None, typer.Option(help="The analysis.json the chat is about.")] = None,
    audience: Annotated[str, typer.Option(help="clinician or patient.")] = "clinician",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer, its citations and each sentence's evidence.")
    ] = False,
) -> None:
    """Ask about an analysis or a topic; answers are grounded in the analysis and cited passages."""
    from sahay.analysis import load_analysis
    from sahay.chat.engine import Conversation

    if audience not in ("clinician", "patient"):
        raise BadInput(f"--audience must be clinician or patient, not {audience!r}")
    focus = load_analysis(analysis) if analysis is not None else None
    conversation = Conversation(focus, audience)  # type: ignore[arg-type]
    if question is not None:
        with err.status(_INDEXING_STATUS):
            answer = conversation.ask(question)
        if as_json:
            sys.stdout.write(json.dumps(answer.to_dict(), indent=2) + "\n")
        else:
            _print_answer(answer)
        return
    if as_json:
        raise BadInput("--json needs a QUESTION")
    out.print("[dim]Ask a question; an empty line or 'exit' ends the chat.[/]")
    while True:
        try:
            line = out.input("[bold]> [/]")
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip().lower() in ("", "exit", "quit"):
            break
        with err.status(_INDEXING_STATUS):
            answer = conversation.ask(line)
        _print_answer(answer)


_INDEXING_STATUS = "thinking (the first question indexes the knowledge base: a minute or two)"


def _print_answer(answer: Any) -> None:
    out.print(escape(answer.text))
    for citation in answer.citations():
        sources = "; ".join(f"{s['title']} ({s['publisher']}) {s['url']}" for s in citation["sources"])
        out.print(
            f"[dim]\\[{citation['id']}] {escape(citation['title'])} - {escape(citation['section'])}: "
            f"{escape(sources)}[/]"
        )
    for removed in answer.dropped:
        err.print(
            f"[yellow]removed an unverified sentence ({escape(removed.problem or '')}):[/] "
            f"{escape(removed.text)}"
        )
    if answer.disclaimer:
        out.print(f"[dim]{escape(answer.disclaimer)}[/]")


@kb_app.command("add")
def kb_add(paths: Annotated[list[Path], typer.Argument(help="Markdown, text or PDF files.")]) -> None:
    """Add your own documents to the knowledge base (chunked, embedded, cited by file name)."""
    from sahay.knowledge.index import KnowledgeBase

    with KnowledgeBase() as kb:
        added = kb.add(paths)
    for document in added:
        out.print(f"Added {document.id}: {escape(document.title)} ({document.chunks} passages)")


@kb_app.command("list")
def kb_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the knowledge base's documents: the curated articles and yours."""
    from sahay.knowledge.index import KnowledgeBase

    with KnowledgeBase() as kb:
        documents = kb.documents()
    if as_json:
        sys.stdout.write(json.dumps([vars(d) for d in documents], indent=2) + "\n")
        return
    table = _table("Document", "Title", "Kind", "Passages")
    for document in documents:
        kind = "curated" if document.builtin else "yours"
        table.add_row(document.id, escape(document.title), kind, str(document.chunks))
    out.print(table)


@kb_app.command("remove")
def kb_remove(document: Annotated[str, typer.Argument(help="The id of a document you added.")]) -> None:
    """Remove a document you added."""
    from sahay.knowledge.index import KnowledgeBase

    with KnowledgeBase() as kb:
        kb.remove(document)
    out.print(f"Removed {document}")


@kb_app.command("search")
def kb_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", min=1, help="How many passages.")] = 5,
    audience: Annotated[str | None, typer.Option(help="clinician or patient.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the knowledge base: BM25 and embeddings, fused by reciprocal rank."""
    from sahay.knowledge.index import KnowledgeBase

    if audience not in (None, "clinician", "patient"):
        raise BadInput(f"--audience must be clinician or patient, not {audience!r}")
    with KnowledgeBase() as kb, err.status(_INDEXING_STATUS):
        passages = kb.search(query, k=k, audience=audience)
    if as_json:
        rows = [
            {
                "document": p.chunk.document,
                "title": p.chunk.title,
                "section": p.chunk.section,
                "text": p.chunk.text,
                "score": p.score,
                "sources": [s.model_dump() for s in p.sources],
            }
            for p in passages
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    for number, passage in enumerate(passages, start=1):
        chunk = passage.chunk
        out.print(f"[bold][{number}] {escape(chunk.title)}[/] - {escape(chunk.section)} ({chunk.document})")
        out.print(escape(chunk.text))
        for source in passage.sources:
            out.print(f"    [dim]\\[{source.id}] {escape(source.citation())}[/]")


@app.command("deid")
def deid_command(
    source: Annotated[Path, typer.Argument(help="A DICOM file, or a folder searched recursively.")],
    destination: Annotated[
        Path, typer.Argument(help="The output file, or for a folder the output folder (same layout).")
    ],
    retain_dates: Annotated[
        bool,
        typer.Option("--retain-dates", help="Shift dates back by a per-patient number of days; keep times."),
    ] = False,
    retain_patient_characteristics: Annotated[
        bool,
        typer.Option(
            "--retain-patient-characteristics",
            help="Keep sex, age, size, weight, ethnic group, smoking and pregnancy status.",
        ),
    ] = False,
    allow_burned_in: Annotated[
        bool,
        typer.Option(
            "--allow-burned-in",
            help="Also process images marked Burned In Annotation YES (their pixels are not cleaned).",
        ),
    ] = False,
    keep_private_tag: Annotated[
        list[str] | None,
        typer.Option("--keep-private-tag", help="A private tag to keep, e.g. 00091001; repeat for more."),
    ] = None,
    keep_private_creator: Annotated[
        list[str] | None,
        typer.Option(
            "--keep-private-creator", help="A private creator whose block is kept; repeat for more."
        ),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file",
            help="A file holding the secret that keys new UIDs and pseudonyms, so runs agree "
            "(default: a new random secret each run).",
        ),
    ] = None,
    mapping_out: Annotated[
        Path | None,
        typer.Option(
            "--mapping-out",
            help="Write the original-to-new UID and patient mapping to this CSV (keep it private).",
        ),
    ] = None,
) -> None:
    """De-identify DICOM files (PS3.15 Basic Application Level Confidentiality Profile).

    Exits 1 when a folder had DICOM files that were refused (each is named on stderr).
    """
    from sahay.imaging.deid import DeidOptions, deidentify_path, load_secret, parse_tag

    options = DeidOptions(
        retain_longitudinal_dates=retain_dates,
        retain_patient_characteristics=retain_patient_characteristics,
        allow_burned_in=allow_burned_in,
        keep_private_tags=frozenset(parse_tag(tag) for tag in keep_private_tag or []),
        keep_private_creators=frozenset(keep_private_creator or []),
    )
    secret = load_secret(secret_file) if secret_file is not None else None
    with _stage_bar() as bar:
        task_id = bar.add_task("de-identifying", total=None)
        report = deidentify_path(
            source,
            destination,
            options,
            secret=secret,
            mapping_out=mapping_out,
            progress=lambda done, total: bar.update(task_id, completed=done, total=total),
        )
    for name, warnings in report.warnings.items():
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {escape(name)}: {escape(warning)}", highlight=False)
    for name, reason in report.skipped.items():
        err.print(f"[yellow]skipped:[/] {escape(name)}: {escape(reason)}", highlight=False)
    for reason in report.refused.values():
        err.print(f"[red]refused:[/] {escape(reason)}", highlight=False)
    table = _table("Files", "Count")
    table.add_row("written", str(len(report.written)))
    table.add_row("skipped (not DICOM)", str(len(report.skipped)))
    table.add_row("refused", str(len(report.refused)))
    out.print(table)
    if mapping_out is not None:
        out.print(
            f"Mapping written to {escape(str(mapping_out))}; it re-identifies the output, keep it apart."
        )
    if report.refused:
        raise typer.Exit(1)


@pacs_app.command("query")
def pacs_query(
    patient: Annotated[
        str | None, typer.Option(help="Patient ID or name (Family^Given); * and ? are wildcards.")
    ] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="Study date or range: 20240102, 20240101-20241231.")
    ] = None,
    modality: Annotated[str | None, typer.Option(help="Only studies with this modality, e.g. CR.")] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="List the series of this study instead of searching.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The most studies to show.")] = 25,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the archive (QIDO-RS) for studies by patient, date or modality, newest first."""
    from sahay.pacs.client import Archive

    archive = Archive.from_settings(get_settings())
    if study is not None:
        if patient or date or modality:
            raise BadInput(
                "--study lists one study's series; give no --patient, --date or --modality with it"
            )
        found = archive.search_series(study)
        if as_json:
            sys.stdout.write(json.dumps([s.model_dump() for s in found], indent=2) + "\n")
            return
        # One entry per series, its UID on a line of its own: UIDs are long and copied whole.
        for one in found:
            number = "" if one.number is None else f"series {one.number}  "
            described = _spaced(one.modality, one.description, _count(one.instances, "instance"))
            out.print(f"{number}{escape(described)}")
            out.print(f"   {one.series_uid}")
        if not found:
            err.print(f"no series found for study {escape(study)}")
        return
    studies = archive.search_studies(patient=patient, study_date=date, modality=modality, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps([s.model_dump() for s in studies], indent=2) + "\n")
        return
    for item in studies:
        described = _spaced(
            item.date,
            item.patient_id,
            item.patient_name,
            ",".join(item.modalities),
            item.description,
            _count(item.instances, "instance"),
        )
        out.print(f"[bold]{escape(described)}[/]")
        out.print(f"   study {item.study_uid}")
    if not studies:
        err.print("no studies match")


@pacs_app.command("pull")
def pacs_pull(
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID of the study to download.")],
    series: Annotated[
        str | None, typer.Option("--series", help="Only this SeriesInstanceUID of the study.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the files (default: sahay-pacs/<study>).")
    ] = None,
) -> None:
    """Download a study or one series (WADO-RS): one <SOPInstanceUID>.dcm per instance."""
    from sahay.pacs.client import Archive, default_pull_dir

    archive = Archive.from_settings(get_settings())
    destination = out_dir or default_pull_dir(study)
    with err.status(f"pulling {'series' if series else 'study'} from the archive"):
        paths = archive.retrieve(study, series, dest=destination)
    out.print(f"Pulled {len(paths)} instances into {escape(str(destination))}")


@pacs_app.command("push")
def pacs_push(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files, or folders searched recursively.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Send DICOM files (e.g. Sahay's SR and Secondary Captures) to the archive (STOW-RS).

    Exits 1 when the archive refused some instances (each is named on stderr).
    """
    from sahay.pacs.client import Archive

    archive = Archive.from_settings(get_settings())
    with err.status("pushing to the archive"):
        result = archive.store(paths)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        out.print(f"Stored {len(result.stored)} instances")
    for skipped in result.skipped:
        err.print(f"[yellow]skipped:[/] {escape(skipped)}")
    _print_store_failures(result)
    if not result.ok:
        raise typer.Exit(1)


@pacs_app.command("analyze")
def pacs_analyze(
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID of the study to analyse.")],
    series: Annotated[
        str | None, typer.Option("--series", help="Only this SeriesInstanceUID of the study.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Installed model name or bundle folder.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Folder for the pulled images and results (default: sahay-out/<study>)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Analyse images the model was not made for, with a warning.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Pull a study, analyse each image, and push a DICOM SR and heatmap Secondary Captures back.

    The results join the same study as two new series (SR, and Secondary Capture).

    Exits 1 when no image could be analysed or the archive refused a result.
    """
    from sahay.pacs.client import Archive, analyze_study, default_analysis_dir

    settings = get_settings()
    archive = Archive.from_settings(settings)
    destination = out_dir or default_analysis_dir(study)
    with err.status("pulling the study") as status:
        result = analyze_study(
            archive,
            study,
            series_uid=series,
            model=model,
            out_dir=destination,
            force=force,
            settings=settings,
            on_step=lambda message: status.update(escape(message)),
        )
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        for item in result.instances:
            out.print(f"[bold]{item.status}[/] {item.sop_instance_uid}")
            if item.status == "analysed":
                positive = ", ".join(item.positive_findings) or "no positive findings"
                out.print(f"   {escape(positive)}; {len(item.results)} DICOM results")
            else:
                out.print(f"   {escape(item.reason or '')}")
        out.print(
            f"Pushed {len(result.stored.stored)} results to study {escape(study)}; "
            f"local copies under {escape(str(destination))}"
        )
        out.print("[dim]Decision support, not a diagnosis.[/]")
    _print_store_failures(result.stored)
    if not result.analysed or not result.stored.ok:
        raise typer.Exit(1)


def _spaced(*values: str | None) -> str:
    return "  ".join(v for v in values if v)


def _count(number: int | None, noun: str) -> str | None:
    return None if number is None else f"({number} {noun}{'' if number == 1 else 's'})"


def _print_store_failures(result: Any) -> None:
    for failure in result.failed:
        uid = failure.sop_instance_uid or "an instance"
        err.print(f"[bold red]refused:[/] {escape(uid)}: {escape(failure.reason)}")


def _case_json(case: Any) -> dict[str, Any]:
    return {
        "id": case.id,
        "created_at": case.created_at.isoformat(),
        "modality": case.modality,
        "model": case.model,
        "diagnosis": case.diagnosis,
        "positive_findings": case.positive_findings,
        "tags": case.tags,
        "thumbnail": str(case.thumbnail),
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point: map every error to its exit code with a one-line reason on stderr.

    Usage errors are Typer's own (exit 2 with the usage line); Sahay's errors and any
    unexpected one are caught here, so that no traceback reaches the user without --debug.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="sahay")
    except SahayError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(run again as `sahay --debug ...` for details)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
