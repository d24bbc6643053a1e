"""The ``sahay`` command line: a thin door onto ``sahay.services``. No logic lives here.

One module per command group; each command parses its arguments, calls one service and prints.
Exit codes: 0 done, 1 a failed check or an internal error, 2 bad input or usage.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from sahay.about import __version__
from sahay.cli import admin, analyze, backup, batch, cases, chat, models, notes, pacs, reports, train
from sahay.cli.common import err, escape, out
from sahay.errors import SahayError
from sahay.fileio import PRIVATE_UMASK

app = typer.Typer(
    rich_markup_mode=None,
    name="sahay",
    help="Sahay: medical image analysis assistant. Decision support, not a diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


app.command("analyze")(analyze.analyze)
app.command("batch")(batch.batch_command)
app.command("demo")(analyze.demo)
app.command("notes")(notes.notes_command)
app.command("chat", epilog=chat.CHAT_EPILOG)(chat.chat_command)
app.command("report")(reports.report_command)
app.command("deid")(reports.deid_command)
app.command("train")(train.train_command)
app.command("evaluate")(train.evaluate_command)
app.command("explain-eval")(train.explain_eval_command)
app.command("serve")(admin.serve_command)
app.command("audit")(admin.audit_command)
app.command("backup")(backup.backup_command)
app.command("restore")(backup.restore_command)
app.add_typer(models.app, name="models")
app.add_typer(train.runs_app, name="runs")
app.add_typer(cases.app, name="cases")
app.add_typer(chat.kb_app, name="kb")
app.add_typer(admin.users_app, name="users")
app.add_typer(pacs.app, name="pacs")


def main(argv: list[str] | None = None) -> None:
    """Entry point: map every error to its exit code with a one-line reason on stderr.

    Usage errors are Typer's own (exit 2 with the usage line); Sahay's errors and any
    unexpected one are caught here, so that no traceback reaches the user without --debug.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        os.umask(PRIVATE_UMASK)  # what Sahay writes holds patient data: owner-only files
        app(args=args, prog_name="sahay")
    except SahayError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {escape(exc.for_door('cli'))}", highlight=False, soft_wrap=True)
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
