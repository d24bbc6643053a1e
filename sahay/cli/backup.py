"""``sahay backup`` and ``sahay restore``: a snapshot of the database and SAHAY_HOME, and putting one back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sahay.cli.common import AsJson, escape, out, print_json, print_warnings, progress_display


def backup_command(
    dest: Annotated[
        Path, typer.Argument(help="A new folder for the backup (created owner-only: it holds patient data).")
    ],
    as_json: AsJson = False,
) -> None:
    """Back up the database, files, models and token key into DEST, a consistent snapshot.

    The database is copied while the service runs (SQLite's online backup, or pg_dump for
    PostgreSQL), then uploads, analyses, models, the case library's files and the token key,
    with a manifest of sha256 sums. The vector index is left out: `sahay cases reindex` rebuilds it."""
    from sahay.services.backup import create_backup

    with progress_display() as show:
        result = create_backup(dest, progress=show)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    database = result.database or "no database yet"
    revision = f", schema {result.schema_revision}" if result.schema_revision else ""
    out.print(
        f"Backed up {result.files} files ({result.bytes / 1e6:.1f} MB; {database}{revision}) "
        f"to {escape(str(result.path))}"
    )
    print_warnings("skipped", result.skipped)


def restore_command(
    src: Annotated[Path, typer.Argument(help="A folder written by `sahay backup`.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the data already in SAHAY_HOME and the database."),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Restore a backup into SAHAY_HOME and the database, after checking every sha256.

    Refuses a SAHAY_HOME or database that holds data unless --force. Stop the web service first."""
    from sahay.services.backup import restore_backup

    with progress_display() as show:
        result = restore_backup(src, force=force, progress=show)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    database = result.database or "no database"
    out.print(
        f"Restored {result.files} files ({result.bytes / 1e6:.1f} MB; {database}) from the backup of "
        f"{result.backup_created_at:%Y-%m-%d %H:%M} UTC (Sahay {escape(result.backup_sahay_version)}) "
        f"into {escape(str(result.home))}"
    )
    for command in result.rebuild:
        out.print(f"Then run `{escape(command)}` to rebuild the vector index of the case library.")
