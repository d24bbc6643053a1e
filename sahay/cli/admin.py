"""``sahay serve``, ``sahay users`` and ``sahay audit``: running the web service and looking after it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sahay.about import __version__
from sahay.cli.common import escape, out, table
from sahay.errors import BadInput

users_app = typer.Typer(
    rich_markup_mode=None,
    help="Web service accounts: create, list, disable and enable users, set passwords, end sessions.",
    no_args_is_help=True,
)


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
    _check_port_free(host, port)
    out.print(f"Sahay {__version__} on http://{host}:{port} (data in {escape(str(settings.home_dir))})")
    # By name: the command line does not import the web door; the app reads the same settings.
    # X-Forwarded-For is believed only from SAHAY_TRUSTED_PROXIES; with none, the peer is the client.
    trusted = [entry for entry in settings.trusted_proxies.split(",") if entry]
    uvicorn.run(
        "sahay.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        server_header=False,  # no software name and version for scanners
        limit_concurrency=settings.max_connections,  # past it, 503 instead of unbounded tasks
    )


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port in use or an address this machine does not have before printing the URL:
    uvicorn would print it, then exit with code 3 and a log line."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        problem = f"--host {host} is not an address this machine can listen on ({exc.strerror})"
        raise BadInput(problem) from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                problem = f"port {port} on {host} is in use: stop what uses it, or choose another with --port"
                raise BadInput(problem) from exc
            raise BadInput(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc


PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input instead of asking for it.",
    ),
]
UserName = Annotated[str, typer.Argument(help="The user's name.", show_default=False)]


def _read_password(from_stdin: bool, prompt: str = "Password") -> str:
    """From standard input's first line, or asked for twice (hidden). Never from the command line,
    where shell history and process lists would keep it."""
    if not from_stdin:
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    import sys

    from sahay.errors import BadInput

    line = sys.stdin.readline(4096).removesuffix("\n").removesuffix("\r")
    if not line:
        raise BadInput("--password-stdin: standard input holds no password")
    return line


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option("--username", help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password_stdin: PasswordStdin = False,
    password: Annotated[str | None, typer.Option("--password", hidden=True)] = None,
) -> None:
    """Create a user (the first administrator, or any user); the password is asked for (hidden)."""
    from sahay.errors import BadInput
    from sahay.services import accounts

    if password is not None:
        raise BadInput(
            "--password is not taken: a password on the command line stays in shell history and "
            "process lists; answer the prompt or use --password-stdin"
        )
    user = accounts.create_user(username, _read_password(password_stdin), "admin" if admin else "clinician")
    out.print(f"Created {user.role} {escape(user.username)} ({user.id})")


@users_app.command("list")
def users_list() -> None:
    """List the web service's users."""
    from sahay.services import accounts

    listed = table("User", "Role", "State", "Created", "Id")
    for user in accounts.list_users():
        state = "active" if user.active else "disabled"
        listed.add_row(escape(user.username), user.role, state, f"{user.created_at:%Y-%m-%d %H:%M}", user.id)
    out.print(listed)


@users_app.command("disable")
def users_disable(username: UserName) -> None:
    """Disable a user: no more sign-ins or refreshes, and their tokens stop working at once."""
    from sahay.services import accounts

    user = accounts.disable_user(username=username)
    out.print(f"Disabled {escape(user.username)}; their sessions have ended")


@users_app.command("enable")
def users_enable(username: UserName) -> None:
    """Let a disabled user sign in again."""
    from sahay.services import accounts

    user = accounts.enable_user(username=username)
    out.print(f"Enabled {escape(user.username)}")


@users_app.command("set-password")
def users_set_password(username: UserName, password_stdin: PasswordStdin = False) -> None:
    """Give a user a new password (asked for, hidden); every session of theirs ends."""
    from sahay.services import accounts

    user = accounts.set_password(_read_password(password_stdin, "New password"), username=username)
    out.print(f"Set a new password for {escape(user.username)}; their sessions have ended")


@users_app.command("revoke-sessions")
def users_revoke_sessions(username: UserName) -> None:
    """End every session of a user: refresh tokens revoked, access tokens ended at once."""
    from sahay.services import accounts

    revoked = accounts.revoke_sessions(username=username)
    out.print(f"Ended the sessions of {escape(username)} ({revoked} refresh tokens revoked)")


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
