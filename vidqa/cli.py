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
models_app = typer.Typer(help="Model weights: what a run needs, and fetching it for offline machines.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")
from vidqa.cli_sets import metrics_app, reference_app  # noqa: E402 - sub-apps register after the root app

app.add_typer(reference_app, name="reference")
app.add_typer(metrics_app, name="metrics")
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


def _parse_sampling(text: str) -> dict[str, Any]:
    """``uniform:16``, ``every_n_seconds:1``, ``every_n_frames:5``, ``keyframes``,
    ``fractions:0.1,0.5,0.9``, ``all``."""
    method, _, arg = text.partition(":")
    if method == "uniform":
        return {"method": method, "n": int(arg or 16)}
    if method == "every_n_seconds":
        return {"method": method, "seconds": float(arg)}
    if method == "every_n_frames":
        return {"method": method, "step": int(arg)}
    if method == "fractions":
        return {"method": method, "fractions": [float(x) for x in arg.split(",")]}
    if method in ("keyframes", "all") and not arg:
        return {"method": method}
    raise ValueError(f"--sampling {text!r}: use uniform:N, every_n_seconds:S, every_n_frames:K, keyframes, "
                     "fractions:a,b,c or all")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_config(path: Optional[str]) -> dict[str, Any]:
    """A run configuration file: the flow's parameters as YAML or JSON (any subset)."""
    if not path:
        return {}
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of flow parameters")
    return data


SCORER_NAMES = ("technical", "emscore", "text_video", "video_audio", "aesthetic", "videoscore")
CLIP_SCORERS = ("emscore", "text_video", "video_audio")


def build_params(source: str, config: dict[str, Any], *, scorers: Optional[str] = None,
                 sampling: Optional[str] = None, frames: Optional[int] = None, max_size: Optional[int] = None,
                 clip_model: Optional[str] = None, device: Optional[str] = None,
                 audio_model: Optional[str] = None, videoscore_model: Optional[str] = None,
                 **top: Any) -> "ScoreVideosParams":  # noqa: F821 - imported lazily
    """Flow parameters from a config file's values overridden by command-line flags."""
    from flows.score_videos import ScoreVideosParams

    params = _merge(config, {"source": source, **{k: v for k, v in top.items() if v is not None}})
    if scorers:
        params["scorers"] = [s.strip() for s in scorers.split(",") if s.strip()]
    chosen = params.get("scorers") or ScoreVideosParams.model_fields["scorers"].default
    per_scorer: dict[str, Any] = {}
    if frames is not None:
        per_scorer["sampling"] = {"method": "uniform", "n": frames}
    if sampling:
        per_scorer["sampling"] = _parse_sampling(sampling)
    if max_size is not None:
        per_scorer.setdefault("sampling", {})["max_size"] = max_size
    if device:
        per_scorer["runtime"] = {"device": device}
    for name in chosen:
        update = dict(per_scorer)
        if name == "videoscore":
            # VideoScore picks its frames as its checkpoint was trained; --frames caps them.
            update.pop("sampling", None)
            if frames is not None:
                update["max_frames"] = frames
            if videoscore_model:
                update["model"] = videoscore_model
        if clip_model and name in CLIP_SCORERS:
            model, _, pretrained = clip_model.partition("@")
            update["clip"] = {"model": model, "pretrained": pretrained or None}
        if audio_model and name == "video_audio":
            update["audio"] = {"model": audio_model}
        if update:
            params[name] = _merge(params.get(name, {}), update)
    return ScoreVideosParams.model_validate(params)


@app.command()
def run(
    source: str = typer.Argument(
        ..., help="Folder, glob or video file; s3://bucket/prefix; or a .jsonl/.csv manifest."
    ),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file of flow parameters."),
    scorers: Optional[str] = typer.Option(
        None, "--scorers", "-s", help="Comma-separated: technical, emscore, text_video, video_audio, aesthetic, videoscore."
    ),
    sampling: Optional[str] = typer.Option(
        None, "--sampling", help="For every scorer: uniform:N, every_n_seconds:S, every_n_frames:K, keyframes, "
        "fractions:a,b,c, all."
    ),
    frames: Optional[int] = typer.Option(None, "--frames", "-n", help="Shorthand for --sampling uniform:N."),
    max_size: Optional[int] = typer.Option(None, "--max-size", help="Downscale frames so the longer side is at most this."),
    clip_model: Optional[str] = typer.Option(
        None, "--clip-model", help="CLIP for emscore/text_video/video_audio: NAME[@PRETRAINED], e.g. ViT-B-32@openai, "
        "openai/clip-vit-base-patch32, ViT-L-14@/path/to/weights.pt."
    ),
    audio_model: Optional[str] = typer.Option(
        None, "--audio-model", help="video_audio: transformers speech-recognition model (Hub id or folder) "
        "for rows without an audio_text description, e.g. openai/whisper-tiny."
    ),
    videoscore_model: Optional[str] = typer.Option(
        None, "--videoscore-model", help="videoscore: TIGER-Lab/VideoScore, TIGER-Lab/VideoScore-v1.1, "
        "TIGER-Lab/VideoScore-Qwen2-VL or a checkpoint folder."
    ),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda."),
    clips: Optional[str] = typer.Option(None, "--clips", help="none (whole videos), scenes, or windows."),
    window: Optional[float] = typer.Option(None, "--window", help="--clips windows: window length in seconds."),
    video_key: Optional[str] = typer.Option(None, "--video-key", help="Manifests: the column naming each video."),
    shard_size: Optional[int] = typer.Option(None, "--shard-size", help="Videos per Prefect task."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect logs."),
) -> None:
    """Score every video under SOURCE and store the results."""
    _quiet_prefect(verbose)
    try:
        clip_opts = {k: v for k, v in (("method", clips), ("window_s", window)) if v is not None}
        params = build_params(
            source, _load_config(config), scorers=scorers, sampling=sampling, frames=frames, max_size=max_size,
            clip_model=clip_model, audio_model=audio_model, videoscore_model=videoscore_model, device=device,
            video_key=video_key, shard_size=shard_size,
            clips=clip_opts or None,
        )
    except (ValueError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    _connect()
    from vidqa.db.migrate import ensure_schema

    ensure_schema()
    from flows.score_videos import score_videos
    from vidqa.errors import ScorerError
    from vidqa.storage import ManifestError
    from vidqa.summary import RunSummary

    try:
        summary = RunSummary(**score_videos(params))
    except (FileNotFoundError, PermissionError, ManifestError, ScorerError) as exc:
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


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"


class ExportLevel(str, Enum):
    clip = "clip"
    video = "video"


@app.command()
def export(
    where: str = typer.Option(
        ..., "--where", "-w", help="SQL condition over the wide view, e.g. 'aesthetic > 5.5 AND \"EMScore(X,V)_full_F\" "
        "> 0.3'. Only a condition: no sub-queries, other tables or statements."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output file: a local path or s3://bucket/key."),
    fmt: Optional[ExportFormat] = typer.Option(
        None, "--format", "-f", help="jsonl or parquet (default: parquet for .parquet/.pq, else jsonl)."
    ),
    level: ExportLevel = typer.Option(
        ExportLevel.clip, "--level", help="clip: rows of clip_scores_wide; video: rows of video_scores_wide."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Write at most this many rows."),
) -> None:
    """Write the videos/clips the condition selects, with their scores, as a training manifest."""
    from rich.markup import escape

    _connect()
    from vidqa.db import get_engine
    from vidqa.db.migrate import ensure_schema
    from vidqa.db.views import refresh_if_stale
    from vidqa.export import export_selection

    ensure_schema()
    engine = get_engine()
    try:
        refresh_if_stale(engine)  # metrics written by an interrupted run get their columns
    except Exception as exc:  # noqa: BLE001 - a read-only role can still export with the views as they are
        err_console.print(f"[yellow]warning:[/yellow] wide views not refreshed: {escape(str(exc))}", soft_wrap=True)
    try:
        n = export_selection(engine, where, out, fmt.value if fmt else None, level.value, limit=limit)
    except (ValueError, OSError) as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2)
    console.print(f"{n} rows written to {out}", markup=False, highlight=False, soft_wrap=True)


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


@db_app.command("refresh-views")
def db_refresh_views() -> None:
    """Recreate clip_scores_wide and video_scores_wide with a column per metric now stored."""
    _connect()
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

    url = _connect()
    sys.stdout.write(make_url(url).render_as_string(hide_password=not show_password) + "\n")


if __name__ == "__main__":
    app()


def _weight_files(config: Optional[str], scorers: Optional[str], clip_model: Optional[str],
                  audio_model: Optional[str], videoscore_model: Optional[str], models_dir):
    from pathlib import Path

    from vidqa.models.download import aesthetic_head_files, clip_weight_files, hf_model_files

    params = build_params("-", _load_config(config), scorers=scorers, clip_model=clip_model, audio_model=audio_model,
                          videoscore_model=videoscore_model)
    files = []
    for name in params.scorers:
        cfg = getattr(params, name)
        if hasattr(cfg, "clip"):
            files += clip_weight_files(cfg.clip.model, cfg.clip.pretrained, Path(models_dir))
        if hasattr(cfg, "head"):
            files += aesthetic_head_files(cfg.head, Path(models_dir))
        if getattr(getattr(cfg, "audio", None), "model", None):
            files += hf_model_files(cfg.audio.model, "audio model", Path(models_dir))
        if name == "videoscore":
            files += hf_model_files(cfg.model, "VideoScore model", Path(models_dir))
    return list(dict.fromkeys(files))


@models_app.command("download")
def models_download(
    directory: str = typer.Option(..., "--dir", "-d", help="Models directory to fill (then set VIDQA_MODELS_DIR to it)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file of flow parameters."),
    scorers: Optional[str] = typer.Option(None, "--scorers", "-s", help="Comma-separated scorers (default: all)."),
    clip_model: Optional[str] = typer.Option(None, "--clip-model", help="As for `vidqa run`."),
    audio_model: Optional[str] = typer.Option(None, "--audio-model", help="As for `vidqa run`."),
    videoscore_model: Optional[str] = typer.Option(None, "--videoscore-model", help="As for `vidqa run`."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be fetched."),
) -> None:
    """Fetch the weights of every configured scorer into DIR (run it where there is network)."""
    files = _weight_files(config, scorers or ",".join(SCORER_NAMES), clip_model, audio_model, videoscore_model,
                          directory)
    table = Table("model", "from", "to", "present")
    for f in files:
        table.add_row(f.what, f.source, str(f.target), "yes" if f.target.exists() else "no")
    console.print(table)
    if dry_run:
        return
    from vidqa.models.download import download

    try:
        download(files)
    except Exception as exc:  # no network, auth, disk: say which and stop
        err_console.print(f"[red]download failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1)
    console.print(f"done; now: export VIDQA_MODELS_DIR={directory}")


@models_app.command("check")
def models_check(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file of flow parameters."),
    scorers: Optional[str] = typer.Option(None, "--scorers", "-s", help="Comma-separated scorers."),
    clip_model: Optional[str] = typer.Option(None, "--clip-model", help="As for `vidqa run`."),
    audio_model: Optional[str] = typer.Option(None, "--audio-model", help="As for `vidqa run`."),
    videoscore_model: Optional[str] = typer.Option(None, "--videoscore-model", help="As for `vidqa run`."),
) -> None:
    """Load every configured model as a run would; say what is missing and how to get it."""
    from vidqa.errors import ScorerError
    from vidqa.scorers import build_scorer

    params = build_params("-", _load_config(config), scorers=scorers, clip_model=clip_model, audio_model=audio_model,
                          videoscore_model=videoscore_model)
    failed = False
    for name in params.scorers:
        try:
            build_scorer(name, getattr(params, name).model_dump(mode="json"))
            console.print(f"{name}: ready")
        except ScorerError as exc:
            failed = True
            err_console.print(f"[red]{name}:[/red] {exc}")
    if failed:
        raise typer.Exit(2)
