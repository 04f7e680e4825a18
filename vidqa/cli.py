"""The ``vidqa`` command line."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import warnings
from enum import Enum
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

# pgserver asks platformdirs for a runtime dir; on headless machines that only warns.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

app = typer.Typer(help="Score video datasets; scores land in Postgres.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Manage the database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True)


class Format(str, Enum):
    json = "json"
    csv = "csv"
    table = "table"


def _quiet_prefect(verbose: bool) -> None:
    # Must happen before prefect is imported: its settings are read at import.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _connect() -> str:
    """Resolve the database (starting the embedded one if needed) and share it with workers."""
    from vidqa.config import reload_settings
    from vidqa.db import database_url

    url = database_url()
    os.environ["VIDQA_DATABASE_URL"] = url
    reload_settings()
    return url


def _emit(rows: list[dict[str, Any]], fmt: Format, columns: list[str]) -> None:
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
        console.print(table)


@app.command()
def run(
    source: str = typer.Argument(
        ..., help="Folder, glob or video file; s3://bucket/prefix; or a .jsonl/.csv manifest."
    ),
    frames: int = typer.Option(16, "--frames", "-n", help="Frames sampled uniformly per video."),
    max_size: Optional[int] = typer.Option(None, "--max-size", help="Downscale frames so the longer side is at most this."),
    dyn_step: int = typer.Option(1, "--dyn-step", help="Frame step for MSE-dyn / SSIM-dyn."),
    clips: str = typer.Option("none", "--clips", help="none (whole videos), scenes, or windows."),
    window: float = typer.Option(10.0, "--window", help="--clips windows: window length in seconds."),
    video_key: str = typer.Option("video_path", "--video-key", help="Manifests: the column naming each video."),
    shard_size: int = typer.Option(16, "--shard-size", help="Videos per Prefect task."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect logs."),
) -> None:
    """Score every video under SOURCE and store the results."""
    _quiet_prefect(verbose)
    _connect()
    from vidqa.db.migrate import ensure_schema

    ensure_schema()
    from flows.score_videos import ScoreVideosParams, score_videos
    from vidqa.scorers import TechnicalConfig
    from vidqa.storage import ManifestError
    from vidqa.summary import RunSummary

    try:
        params = ScoreVideosParams(
            source=source,
            video_key=video_key,
            clips={"method": clips, "window_s": window},
            technical=TechnicalConfig(sampling={"n": frames, "max_size": max_size}, dyn_step=dyn_step),
            shard_size=shard_size,
        )
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    try:
        summary = RunSummary(**score_videos(params))
    except (FileNotFoundError, PermissionError, ManifestError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    _print_summary(summary)
    if summary.n_videos == 0:
        err_console.print("[red]no videos found[/red]")
        raise typer.Exit(1)
    if not summary.succeeded:
        raise typer.Exit(1)


def _print_summary(s: "RunSummary") -> None:  # noqa: F821 - imported lazily
    table = Table(title=f"vidqa run {s.run_id}", show_header=False)
    table.add_row("source", s.source)
    table.add_row("videos found", str(s.n_videos))
    table.add_row("scored now", str(s.n_scored))
    table.add_row("already scored (skipped)", str(s.n_skipped))
    table.add_row("failed", str(s.n_failed))
    if s.n_clips:
        table.add_row("clips scored", str(s.n_clips))
    table.add_row("scores written", str(s.n_scores_written))
    table.add_row("metrics", ", ".join(s.metrics))
    table.add_row("wall time", f"{s.wall_time_s:.1f} s")
    console.print(table)
    if s.failures:
        failed = Table("failed video", "reason", title="failures")
        for f in s.failures:
            failed.add_row(f["uri"], f["reason"])
        console.print(failed)


@app.command()
def videos(fmt: Format = typer.Option(Format.table, "--format", "-f")) -> None:
    """List every known video with its status, probe metadata and failure reason."""
    _connect()
    from vidqa.db import get_engine, repository as repo
    from vidqa.db.migrate import ensure_schema

    ensure_schema()
    with get_engine().connect() as conn:
        rows = repo.list_videos(conn)
    columns = ["uri", "status", "failure_reason", "duration_s", "fps_avg", "frame_count",
               "display_width", "display_height", "video_codec", "has_audio"]
    _emit(rows, fmt, columns)


@app.command()
def scores(
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    metric: Optional[list[str]] = typer.Option(None, "--metric", "-m", help="Only these metrics."),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="Only this scorer."),
) -> None:
    """List stored scores as records {video, clip, scorer, metric, value}."""
    _connect()
    from vidqa.db import get_engine, repository as repo
    from vidqa.db.migrate import ensure_schema

    ensure_schema()
    with get_engine().connect() as conn:
        raw = repo.list_scores(conn, metrics=metric, scorer=scorer)
    rows = [
        {
            "video": r["video"],
            "clip": f"{r['kind']}:{r['start_frame']}-{r['end_frame']}",
            "scorer": r["scorer"],
            "config_hash": r["config_hash"],
            "metric": r["metric"],
            "value": r["value"],
        }
        for r in raw
    ]
    _emit(rows, fmt, ["video", "clip", "scorer", "metric", "value"])


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    _connect()
    from vidqa.db.migrate import current_revision, upgrade

    upgrade(revision)
    console.print(f"database at revision {current_revision()}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base or -1.")) -> None:
    """Revert migrations down to REVISION."""
    _connect()
    from vidqa.db.migrate import current_revision, downgrade

    downgrade(revision)
    console.print(f"database at revision {current_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    _connect()
    from vidqa.db.migrate import current_revision

    console.print(current_revision() or "base (empty)")


@db_app.command("url")
def db_url(show_password: bool = typer.Option(False, "--show-password")) -> None:
    """Print the database URL in use (the embedded server's when none is configured)."""
    from sqlalchemy.engine import make_url

    url = _connect()
    sys.stdout.write(make_url(url).render_as_string(hide_password=not show_password) + "\n")


if __name__ == "__main__":
    app()
