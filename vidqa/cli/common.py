"""What every command shares: consoles, output formats, the database connection."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from enum import Enum
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class Format(str, Enum):
    json = "json"
    csv = "csv"
    table = "table"


def quiet_prefect(verbose: bool) -> None:
    # Must happen before prefect is imported: its settings are read at import.
    # Quiet, a failure is the one line `fail` prints; Prefect's tracebacks only with -v.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    # vidqa's own loggers too (they log through the root logger): what went wrong is in the
    # summary, the failures table and the database; -v shows the log.
    os.environ.setdefault("PREFECT_LOGGING_ROOT_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The first run on a fresh PREFECT_HOME starts Prefect's ephemeral server, which first
    # migrates its SQLite database: over Prefect's 20 s default on two slow cores.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def connect() -> str:
    """Resolve the database (starting the embedded one if needed) and share it with workers."""
    from vidqa.config import reload_settings
    from vidqa.db import database_url

    url = database_url()
    os.environ["VIDQA_DATABASE_URL"] = url
    reload_settings()
    return url


def open_database() -> str:
    """Connect, migrate, and close the runs whose process is gone (a killed ``vidqa run``
    leaves its run ``running``: the next command says it crashed)."""
    from vidqa.db.migrate import ensure_schema
    from vidqa.scoring.runs import close_dead_runs

    url = connect()
    ensure_schema()
    try:
        close_dead_runs({})
    except Exception as exc:  # noqa: BLE001 - a read-only role reads on; the next run closes them
        err_console.print(f"[yellow]warning:[/yellow] runs of dead processes not closed: {escape(str(exc))}",
                          soft_wrap=True)
    return url


def emit(rows: list[dict[str, Any]], fmt: Format, columns: list[str]) -> None:
    if fmt is Format.json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    elif fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
        # Piped or captured, a table keeps whole values on one line (a terminal wraps to its width).
        (console if console.is_terminal else Console(width=100_000)).print(table)


def fail(exc: BaseException | str, code: int = 2) -> NoReturn:
    """Print a user error and exit (2: bad input or configuration)."""
    err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    raise typer.Exit(code)
