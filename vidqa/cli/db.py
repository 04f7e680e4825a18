"""`vidqa db`: the schema (Alembic migrations), the wide views and the connection URL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Optional

import typer

from vidqa.cli.common import connect, console, err_console, fail

db_app = typer.Typer(help="Manage the database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    connect()
    from vidqa.db.migrate import current_revision, upgrade

    upgrade(revision)
    console.print(f"database at revision {current_revision()}")


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. base or -1."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask: revert the migrations (dropping their data)."),
) -> None:
    """Revert migrations down to REVISION (asks first: reverting drops the tables and columns
    those migrations added, with their data)."""
    connect()
    from vidqa.db.migrate import current_revision, downgrade

    current = current_revision() or "base"
    if not yes and not typer.confirm(
        f"Revert the database from revision {current} to {revision}? The tables and columns added since are "
        "dropped with their data", default=False,
    ):
        err_console.print("nothing changed")
        raise typer.Exit(1)
    downgrade(revision)
    console.print(f"database at revision {current_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    connect()
    from vidqa.db.migrate import current_revision

    console.print(current_revision() or "base (empty)")


@db_app.command("refresh-views")
def db_refresh_views() -> None:
    """Recreate clip_scores_wide and video_scores_wide with a column per metric now stored."""
    connect()
    from vidqa.db import get_engine
    from vidqa.db.migrate import ensure_schema
    from vidqa.db.views import refresh_wide_views

    ensure_schema()
    with get_engine().begin() as conn:
        columns = refresh_wide_views(conn)
    console.print(f"clip_scores_wide, video_scores_wide: {len(columns)} metric columns")
    for column in columns:
        console.print(f"  {column}", markup=False, highlight=False)


@db_app.command("schema")
def db_schema() -> None:
    """Print every table and column with what it means (the database's own comments), as markdown."""
    connect()
    from vidqa.db import get_engine
    from vidqa.db.migrate import ensure_schema
    from vidqa.db.schema_doc import schema_markdown

    ensure_schema()
    sys.stdout.write(schema_markdown(get_engine()))


@db_app.command("url")
def db_url(
    show_password: bool = typer.Option(False, "--show-password", help="Print the password instead of ***."),
    sqlalchemy: bool = typer.Option(False, "--sqlalchemy", help="The SQLAlchemy form (postgresql+psycopg://)."),
) -> None:
    """Print the database URL in use, as psql, pandas and other libpq tools take it (the
    embedded server's socket URL when none is configured; it stays up only while some vidqa
    process uses it: keep `vidqa db serve` running to reach it from other tools)."""
    from sqlalchemy.engine import make_url

    from vidqa.db.clients import libpq_url

    url = connect()
    if sqlalchemy:
        sys.stdout.write(make_url(url).render_as_string(hide_password=not show_password) + "\n")
    else:
        sys.stdout.write(libpq_url(url, show_password=show_password) + "\n")


@db_app.command("shell", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_shell(
    ctx: typer.Context,
    command: Optional[str] = typer.Option(None, "--command", "-c", help="Run this SQL and exit (as psql -c)."),
) -> None:
    """Open psql on the database (starting the embedded server and keeping it up meanwhile).
    psql comes from PATH, else the copy pgserver ships; further arguments go to psql."""
    from vidqa.db.clients import client_program, libpq_url, run_env

    url = connect()
    args = [client_program("psql"), libpq_url(url, show_password=True), *(["-c", command] if command else []),
            *ctx.args]
    raise typer.Exit(subprocess.call(args, env=run_env()))


@db_app.command("dump")
def db_dump(
    file: str = typer.Argument(..., help="Output file."),
    fmt: str = typer.Option("plain", "--format", "-F", help="pg_dump format: plain (SQL), custom, directory, tar."),
) -> None:
    """Write a pg_dump of the database to FILE (with pgserver's pg_dump, as new as its server)."""
    from vidqa.db.clients import client_program, libpq_url, run_env

    url = connect()
    code = subprocess.call([client_program("pg_dump", prefer_bundled=True), "--format", fmt, "--file", file,
                            "--no-owner", libpq_url(url, show_password=True)], env=run_env())
    if code == 0:
        console.print(f"database written to {file}", markup=False, highlight=False)
    raise typer.Exit(code)


@db_app.command("serve")
def db_serve(
    port: Optional[int] = typer.Option(None, "--port", "-p", min=1, max=65535,
                                       help="Also accept connections on 127.0.0.1:PORT (forwarded to the socket)."),
) -> None:
    """Keep the embedded server up in the foreground until Ctrl-C, for psql, notebooks and BI
    tools: on its Unix socket (`vidqa db url` prints that URL) and, with --port, on loopback TCP."""
    import asyncio

    from vidqa.config import get_settings
    from vidqa.db.clients import forward_until_signalled, libpq_url, socket_path, tcp_url

    if get_settings().database_url:
        fail("the database is an external server (VIDQA_DATABASE_URL); connect to it directly")
    url = connect()

    def stop(signum, frame):  # SIGTERM too ends in a clean stop of the server (not an orphan)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    console.print(f"serving {libpq_url(url)}", markup=False, highlight=False)
    try:
        if port is None:
            console.print("Ctrl-C to stop", markup=False)
            while True:
                time.sleep(3600)
        else:
            console.print(f"and {tcp_url(url, port)}\nCtrl-C to stop", markup=False, highlight=False)
            asyncio.run(forward_until_signalled(port, socket_path(url)))
    except KeyboardInterrupt:
        pass
    console.print("stopped", markup=False)
