"""``sahay serve``, ``sahay users`` and ``sahay audit``: running the web service and looking after it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sahay.about import __version__
from sahay.cli.common import escape, out, table

users_app = typer.Typer(help="Web service accounts: create and list users.", no_args_is_help=True)


def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """Run the web service and browser UI (API under /api/v1, documentation at /docs)."""
    import uvicorn

    from sahay.config import get_settings

    settings = get_settings()
    out.print(f"Sahay {__version__} on http://{host}:{port} (data in {escape(str(settings.home_dir))})")
    # By name: the command line does not import the web door; the app reads the same settings.
    uvicorn.run(
        "sahay.api.app:create_app", factory=True, host=host, port=port, log_level="info", proxy_headers=True
    )


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option("--username", help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password: Annotated[
        str | None, typer.Option(help="The password; asked for (hidden) when not given.")
    ] = None,
) -> None:
    """Create a user (the first administrator, or any user)."""
    from sahay.services import accounts

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = accounts.create_user(username, password, "admin" if admin else "clinician")
    out.print(f"Created {user.role} {escape(user.username)} ({user.id})")


@users_app.command("list")
def users_list() -> None:
    """List the web service's users."""
    from sahay.services import accounts

    listed = table("User", "Role", "Created", "Id")
    for user in accounts.list_users():
        listed.add_row(escape(user.username), user.role, f"{user.created_at:%Y-%m-%d %H:%M}", user.id)
    out.print(listed)


def audit_command(
    limit: Annotated[int, typer.Option(min=1, help="How many entries, newest first.")] = 50,
    actor: Annotated[str | None, typer.Option(help="Only this user's actions.")] = None,
    object_id: Annotated[
        str | None, typer.Option("--object", help="Only entries about this object id.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Show the audit log: who created, viewed, exported or deleted what, and when."""
    from sahay.services import accounts

    entries = accounts.audit_log(limit=limit, actor=actor, object_id=object_id)
    if as_json:
        for entry in entries:
            out.print_json(entry.model_dump_json(exclude={"id"}))
        return
    listed = table("When (UTC)", "Who", "Action", "Object", "Detail")
    for entry in entries:
        detail = json.dumps(entry.detail) if entry.detail else ""
        listed.add_row(
            entry.at.isoformat()[:19],
            escape(entry.actor),
            entry.action,
            f"{entry.object_type} {entry.object_id or ''}".strip(),
            escape(detail),
        )
    out.print(listed)
