"""``sahay analyze`` and ``sahay demo``: classify an image, explain it, and print the result."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sahay.cli.common import NotesFile, NotesText, err, escape, out, progress_display, table
from sahay.services import capabilities
from sahay.services.analyze import (
    DEFAULT_METHOD,
    DEFAULT_OPACITY,
    DEFAULT_TOP_K,
    AnalyzeRequest,
    Budget,
    ExplainOptions,
    default_out_dir,
    run_analysis,
)
from sahay.services.notes import note_text

if TYPE_CHECKING:
    from sahay.analysis import Analysis

EXPLAIN_HELP = "; ".join(f"{m.name} ({m.title}, {m.family})" for m in capabilities.explain_methods())


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
    explain: Annotated[str, typer.Option("--explain", help=f"Explanation method: {EXPLAIN_HELP}.")] = (
        DEFAULT_METHOD
    ),
    explain_budget: Annotated[
        int,
        typer.Option(min=2, help="Occlusion and SHAP: the most model evaluations to spend on one image."),
    ] = 64,
    faithfulness: Annotated[
        bool,
        typer.Option(
            "--faithfulness/--no-faithfulness",
            help="Also score each map by deletion and insertion curves (8 model runs a finding, plus 2).",
        ),
    ] = False,
    top_k: Annotated[
        int,
        typer.Option(
            "--top-k", min=1, help="Explain at most this many findings, most probable positives first."
        ),
    ] = DEFAULT_TOP_K,
    overlay_opacity: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Opacity of the heatmap where attribution is highest.")
    ] = DEFAULT_OPACITY,
    full_resolution: Annotated[
        bool,
        typer.Option("--full-resolution", help="Write overlays at the image's resolution (default 1024 px)."),
    ] = False,
    side_by_side: Annotated[
        bool,
        typer.Option("--side-by-side", help="Also write the original and the overlay next to each other."),
    ] = False,
    keep_identifiers: Annotated[
        bool, typer.Option("--keep-identifiers", help="Keep patient and study identifiers in the result.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Analyse an image the model was not made for, with a warning.")
    ] = False,
    notes: NotesText = None,
    notes_file: NotesFile = None,
) -> None:
    """Classify an image, show where the model looked, and write analysis.json."""
    destination = out_dir or default_out_dir(image)
    request = AnalyzeRequest(
        image,
        model=model,
        out_dir=destination,
        notes=note_text(notes, notes_file),
        heatmaps=heatmaps,
        explain=ExplainOptions(
            method=explain,
            budget=Budget(max_evaluations=explain_budget),
            faithfulness=faithfulness,
            opacity=overlay_opacity,
            top_k=top_k,
        ),
        keep_identifiers=keep_identifiers,
        force=force,
        full_resolution=full_resolution,
        side_by_side=side_by_side,
    )
    with progress_display() as progress:
        analysis = run_analysis(request, progress=progress)
    if as_json:
        sys.stdout.write(analysis.to_json() + "\n")
        return
    print_analysis(analysis, destination)


def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the example and its analysis.")
    ] = Path("sahay-demo"),
    retrain: Annotated[bool, typer.Option("--retrain", help="Train the demonstration bundle again.")] = False,
) -> None:
    """Train a demonstration model on synthetic images and analyse a synthetic example (offline)."""
    from sahay.services.demo import DEMO_MODEL_NAME, EXAMPLE_NAME, run_demo

    with progress_display() as progress:
        analysis = run_demo(out_dir, retrain=retrain, progress=progress)
    print_analysis(analysis, out_dir / "analysis")
    out.print(f"Try: sahay analyze {escape(str(out_dir / EXAMPLE_NAME))} --model {DEMO_MODEL_NAME}")


def print_analysis(analysis: Analysis, destination: Path | None) -> None:
    # Values from the image file are printed with escape(): DICOM text must not be read as markup.
    from sahay.statement import state

    statement = state(analysis)
    for notice in statement.notices:  # each once, before the result they qualify
        style = "bold red" if notice.kind in ("demonstration", "forced", "out-of-domain") else "yellow"
        out.print(f"[{style}]{escape(notice.text)}[/]")
    image = analysis.image
    described = ", ".join(
        str(v) for v in (image.format.upper(), image.modality, image.body_part, image.view_position) if v
    )
    out.print(f"[bold]{escape(image.filename)}[/] ({escape(described)}; {image.columns}x{image.rows})")
    out.print(
        f"Model: {escape(analysis.model.name)} {escape(analysis.model.version)} ({analysis.model.task})"
    )
    findings = table("Finding", "Probability", "Threshold", "Result")
    findings.caption = statement.rule_text
    for column in findings.columns[1:3]:
        column.justify = "right"
    for decision in statement.decisions:
        result = "[bold red]POSITIVE[/]" if decision.positive else "negative"
        threshold = "top class" if decision.threshold is None else f"{decision.threshold:.3f}"
        findings.add_row(escape(decision.display), f"{decision.probability:.3f}", threshold, result)
    out.print(findings)
    _print_explanations(analysis)
    if analysis.fusion is not None:
        _print_fusion(analysis)
    if destination:
        out.print(f"Wrote {escape(str(destination / 'analysis.json'))} (heatmap paths are relative to it)")
    out.print(f"[dim]{escape(analysis.disclaimer)}[/]")


def _print_explanations(analysis: Analysis) -> None:
    for finding in analysis.findings:
        explanation = finding.explanation
        if explanation is None:
            continue
        score = explanation.faithfulness
        faithfulness = "faithfulness not scored"
        if score and not score.informative:
            faithfulness = "faithfulness not informative: the output is saturated"
        elif score:  # rounded first: -0.004 would print as "-0.00"
            faithfulness = f"faithfulness {round(score.score, 2) + 0.0:+.2f}"
        out.print(
            f"{escape(explanation.summary)} [dim]({faithfulness}; {escape(explanation.overlay_png)})[/]"
        )
        if not explanation.class_specific:
            out.print(
                f"  [yellow]note:[/] {escape(explanation.method_title)} gives every finding the same map."
            )


def _print_fusion(analysis: Analysis) -> None:
    fusion = analysis.fusion
    assert fusion is not None
    fused = table("Finding", "Image p", "Notes", "Assessment")
    for item in fusion.findings:
        evidence = "; ".join(f"{e.status}: {e.text!r}" for e in item.evidence) or "not mentioned"
        fused.add_row(escape(item.label), f"{item.image_probability:.3f}", escape(evidence), item.assessment)
    out.print(fused)
    for discordance in fusion.discordances:
        out.print(f"[bold yellow]discordance:[/] {escape(discordance)}")
    for flag in fusion.flags:
        sources = "; ".join(source.title for source in flag.sources)
        out.print(f"[bold]flag:[/] {escape(flag.text)} [dim](source: {escape(sources)})[/]")


__all__ = ["analyze", "demo", "err", "print_analysis"]
