"""A throwaway PostgreSQL server for tests: ``initdb`` into a temporary folder, start, yield a URL, stop.

Example::

    with postgres_server() as url:  # postgresql+psycopg://sahay:<pw>@127.0.0.1:<port>/sahay_test
        ...

The server listens on 127.0.0.1 only, on a free port, with a generated password and its Unix
socket inside the temporary folder; nothing outside the folder is touched. PostgreSQL refuses to
run as root, so as root the server runs as the ``postgres`` system user (Debian's package creates
it). ``SAHAY_TEST_POSTGRES_URL``, when set, names an existing server to use instead; its user must
be allowed to create databases.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

USER = "sahay"
DATABASE = "sahay_test"
NOT_INSTALLED = "PostgreSQL is not installed; scripts/setup-system installs it"
# Durability is useless for a server that lives for one test session: skip every fsync.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresNotInstalled(RuntimeError):
    """No ``initdb``/``pg_ctl`` found: neither ``pg_config --bindir`` nor ``/usr/lib/postgresql/*/bin``."""


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            )
            candidates.append(Path(found.stdout.strip()))
    # Debian keeps the server binaries off PATH; prefer the newest major version.
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(path) for path in sorted(versions, key=_major_version, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of an empty database on a PostgreSQL server started for the caller.

    Raises :class:`PostgresNotInstalled` when no server binaries are found.
    """
    given = os.environ.get("SAHAY_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bindir = find_bindir()
    if bindir is None:
        raise PostgresNotInstalled(NOT_INSTALLED)
    run_as = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="sahay-pg-"))
    try:
        password = secrets.token_hex(16)
        data, sockets, log = folder / "data", folder / "sockets", folder / "server.log"
        sockets.mkdir()
        password_file = folder / "password"
        password_file.write_text(password + "\n")
        if run_as:
            shutil.chown(folder, run_as, run_as)
            for path in (sockets, password_file):
                shutil.chown(path, run_as, run_as)
        _run(
            run_as,
            [
                str(bindir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                USER,
                "--pwfile",
                str(password_file),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            folder,
        )
        port = _free_port()
        options = f"-h 127.0.0.1 -p {port} -k {sockets} " + " ".join(f"-c {item}" for item in FAST_SETTINGS)
        pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w"]
        try:
            _run(run_as, [*pg_ctl, "-o", options, "start"], folder)
        except RuntimeError as exc:
            server_log = log.read_text(errors="replace") if log.is_file() else ""
            raise RuntimeError(f"{exc}\n{server_log}") from exc
        try:
            url = f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{port}"
            _wait_and_create_database(f"{url}/postgres", DATABASE)
            yield f"{url}/{DATABASE}"
        finally:
            _run(run_as, [*pg_ctl, "-m", "fast", "stop"], folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _major_version(path: str) -> int:
    name = Path(path).parent.name
    return int(name) if name.isdigit() else 0


def _run_as() -> str | None:
    """The user to run the server as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root, and PostgreSQL refuses to; no 'postgres' user exists to run it as "
            "(the Debian package creates one: scripts/setup-system)"
        ) from None
    return "postgres"


def _run(run_as: str | None, command: Sequence[str], cwd: Path) -> None:
    """Run a PostgreSQL program (as ``run_as`` when given); RuntimeError with its output if it fails."""
    prefix = ["runuser", "-u", run_as, "--"] if run_as else []
    try:
        subprocess.run([*prefix, *command], cwd=cwd, capture_output=True, text=True, check=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or "").strip()
        raise RuntimeError(f"{Path(command[0]).name} failed (exit {exc.returncode}): {output}") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{Path(command[0]).name} did not finish in 120 s") from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_and_create_database(admin_url: str, name: str, timeout_s: float = 30.0) -> None:
    engine = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
                    return
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        engine.dispose()
