"""`vidqa db`: the schema (Alembic migrations), the wide views and the connection URL."""

from __future__ import annotations

import sys

import typer

from vidqa.cli.common import connect, console

db_app = typer.Typer(help="Manage the database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    connect()
    from vidqa.db.migrate import current_revision, upgrade

    upgrade(revision)
    console.print(f"database at revision {current_revision()}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base or -1.")) -> None:
    """Revert migrations down to REVISION."""
    connect()
    from vidqa.db.migrate import current_revision, downgrade

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


@db_app.command("url")
def db_url(show_password: bool = typer.Option(False, "--show-password")) -> None:
    """Print the database URL in use (the embedded server's when none is configured)."""
    from sqlalchemy.engine import make_url

    url = connect()
    sys.stdout.write(make_url(url).render_as_string(hide_password=not show_password) + "\n")
