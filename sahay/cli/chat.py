"""``sahay chat`` and ``sahay kb``: grounded answers, and the cited knowledge base behind them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sahay.cli.common import AsJson, err, escape, out, print_json, progress_display, table
from sahay.errors import BadInput
from sahay.services import capabilities

kb_app = typer.Typer(
    rich_markup_mode=None,
    help="The cited knowledge base: add documents, list and search.",
    no_args_is_help=True,
)

THINKING = "thinking"
INDEXING = "building the knowledge index (once for each installed version: a minute or two)"
AUDIENCE_HELP = " or ".join(capabilities.AUDIENCES) + "."


def chat_command(
    question: Annotated[
        str | None, typer.Argument(help="The question; without one, an interactive chat.")
    ] = None,
    analysis: Annotated[Path | None, typer.Option(help="The analysis.json the chat is about.")] = None,
    audience: Annotated[str, typer.Option(help=AUDIENCE_HELP)] = "clinician",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer, its citations and each sentence's evidence.")
    ] = False,
) -> None:
    """Ask about an analysis or a topic; answers are grounded in the analysis and cited passages."""
    from sahay.services import chat

    if question is None and as_json:
        raise BadInput("--json needs a QUESTION")
    conversation = chat.conversation(analysis, audience)
    if question is not None:
        with err.status(THINKING if conversation.knowledge.is_built() else INDEXING):
            answer = conversation.ask(question)
        if as_json:
            print_json(answer.to_dict())
        else:
            _print_answer(answer)
        return
    out.print("[dim]Ask a question; an empty line or 'exit' ends the chat.[/]")
    while True:
        try:
            line = out.input("[bold]> [/]")
        except (EOFError, KeyboardInterrupt):
            break
        if line.strip().lower() in ("", "exit", "quit"):
            break
        with err.status(THINKING if conversation.knowledge.is_built() else INDEXING):
            answer = conversation.ask(line)
        _print_answer(answer)


CHAT_EPILOG = (
    f"Who writes the answers is set by SAHAY_LLM: {capabilities.described(capabilities.llm_backends())}."
)


def _print_answer(answer: Any) -> None:
    out.print(escape(answer.text))
    for citation in answer.citations():
        year = f", {citation['year']}" if citation["year"] else ""
        out.print(
            f"[dim]\\[{citation['id']}] {escape(citation['title'])}. {escape(citation['publisher'])}{year}. "
            f"{escape(citation['url'])} (quoted in: {escape(citation['document_title'])} - "
            f"{escape(citation['section'])})[/]"
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
    from sahay.services import chat

    for document in chat.add_documents(paths):
        out.print(f"Added {document.id}: {escape(document.title)} ({document.chunks} passages)")


@kb_app.command("build")
def kb_build(as_json: AsJson = False) -> None:
    """Build the knowledge index now (setup runs this once per installed version), so that no
    question waits for it: exports the text embedding model to ONNX once, embeds what changed."""
    from sahay.services import chat

    with chat.knowledge_base() as kb, progress_display() as progress:
        summary = kb.build(progress)
        runtime = kb.embedder().runtime
    if as_json:
        print_json({**summary, "runtime": runtime})
        return
    out.print(
        f"Knowledge index ready: {summary['documents']} documents, {summary['chunks']} passages "
        f"({summary['embedded']} embedded now, with {runtime})"
    )


@kb_app.command("list")
def kb_list(as_json: AsJson = False) -> None:
    """List the knowledge base's documents: the curated articles and yours."""
    from sahay.services import chat

    documents = chat.documents()
    if as_json:
        print_json([vars(d) for d in documents])
        return
    listed = table("Document", "Title", "Kind", "Passages")
    for document in documents:
        kind = "curated" if document.builtin else "yours"
        listed.add_row(document.id, escape(document.title), kind, str(document.chunks))
    out.print(listed)


@kb_app.command("remove")
def kb_remove(document: Annotated[str, typer.Argument(help="The id of a document you added.")]) -> None:
    """Remove a document you added."""
    from sahay.services import chat

    chat.remove_document(document)
    out.print(f"Removed {document}")


@kb_app.command("search")
def kb_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", min=1, help="How many passages.")] = 5,
    audience: Annotated[str | None, typer.Option(help=AUDIENCE_HELP)] = None,
    as_json: AsJson = False,
) -> None:
    """Search the knowledge base: BM25 and embeddings, fused by reciprocal rank."""
    from sahay.services import chat

    chat.check_audience(audience)
    with err.status(THINKING):
        passages = chat.search_knowledge(query, k=k, audience=audience)
    if as_json:
        print_json(
            [
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
        )
        return
    for number, passage in enumerate(passages, start=1):
        chunk = passage.chunk
        out.print(f"[bold][{number}] {escape(chunk.title)}[/] - {escape(chunk.section)} ({chunk.document})")
        out.print(escape(chunk.text))
        for source in passage.sources:
            out.print(f"    [dim]\\[{source.id}] {escape(source.citation())}[/]")
