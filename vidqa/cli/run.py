"""`vidqa run`, `videos`, `scores` and `export`: score a source, and read what is stored."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Optional

import typer
from rich.table import Table

from vidqa.cli.common import Format, console, emit, err_console, fail, open_database, quiet_prefect
from vidqa.cli.params import build_params, load_config
from vidqa.scorers import SCORER_NAMES
from vidqa.scoring.outcomes import RunSummary

def run(
    source: str = typer.Argument(
        ..., help="Folder, glob or video file; s3://bucket/prefix; or a .jsonl/.csv manifest."
    ),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file of flow parameters."),
    scorers: Optional[str] = typer.Option(
        None, "--scorers", "-s", help=f"Comma-separated: {', '.join(SCORER_NAMES)}."
    ),
    sampling: Optional[str] = typer.Option(
        None, "--sampling", help="For every scorer: uniform:N, every_n_seconds:S, every_n_frames:K, fps_step:R, keyframes, "
        "fractions:a,b,c, all (an error past 1024 frames), all:MAX_FRAMES."
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
    clips: Optional[str] = typer.Option(None, "--clips", help="none (whole videos), scenes (PySceneDetect), shots (TransNetV2), or windows."),
    window: Optional[float] = typer.Option(None, "--window", help="--clips windows: window length in seconds."),
    video_key: Optional[str] = typer.Option(None, "--video-key", help="Manifests: the column naming each video."),
    shard_size: Optional[int] = typer.Option(None, "--shard-size", help="Videos per Prefect task."),
    from_embeddings: bool = typer.Option(
        False, "--from-embeddings", help="text_video: score the manifest's texts against the frame embeddings an "
        "earlier run stored (VIDQA_STORE_FRAME_EMBEDDINGS=1, same CLIP and sampling); no video is decoded."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="The summary as a table or json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (the exit status tells)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any video failed (for CI), not only when "
                                "nothing could be scored."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect logs."),
) -> None:
    """Score every video under SOURCE and store the results. Exit status: 0 done, 1 nothing
    scored (or, with --strict, any video failed), 2 bad input or configuration."""
    if fmt is Format.csv:
        fail("--format: the summary is table or json")
    quiet_prefect(verbose)
    try:
        clip_opts = {k: v for k, v in (("method", clips), ("window_s", window)) if v is not None}
        params = build_params(
            source, load_config(config), scorers=scorers, sampling=sampling, frames=frames, max_size=max_size,
            clip_model=clip_model, audio_model=audio_model, videoscore_model=videoscore_model, device=device,
            video_key=video_key, shard_size=shard_size,
            clips=clip_opts or None, from_embeddings=from_embeddings or None,
        )
    except (ValueError, OSError) as exc:
        fail(exc)
    open_database()
    from flows.score_videos import score_videos
    from vidqa.errors import DatabaseLost, ScorerError
    from vidqa.storage import ManifestError

    try:
        summary = score_videos(params)
    except (FileNotFoundError, PermissionError, ValueError, ManifestError, ScorerError, DatabaseLost) as exc:
        fail(exc)
    except Exception as exc:
        if verbose:
            raise
        fail(f"the run stopped: {type(exc).__name__}: {exc}. Stored scores are kept; rerunning finishes the rest "
             "(add -v for the traceback)")
    if fmt is Format.json and not quiet:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    elif not quiet:
        _print_summary(summary)
    if summary.n_videos == 0:
        err_console.print("[red]no videos found[/red]")
        raise typer.Exit(1)
    if not summary.succeeded or (strict and summary.n_failed):
        raise typer.Exit(1)


def _print_summary(s: RunSummary) -> None:
    table = Table(title=f"vidqa run {s.run_id}", show_header=False)
    table.add_row("source", s.source)
    table.add_row("videos found", str(s.n_videos))
    table.add_row("scored now", str(s.n_scored))
    table.add_row("already scored (skipped)", str(s.n_skipped))
    table.add_row("failed", str(s.n_failed))
    if s.n_clips:
        table.add_row("clips scored", str(s.n_clips))
    table.add_row("scores written", str(s.n_scores_written))
    if s.n_capped_scores:
        table.add_row("scores from capped frames", f"{s.n_capped_scores} (max_frames cut their sampling; "
                      "details.capped)")
    if s.n_from_embeddings:
        table.add_row("from stored embeddings", f"{s.n_from_embeddings} videos scored from their stored frame "
                      "embeddings (none fetched or decoded)")
    table.add_row("metrics", ", ".join(s.metrics))
    table.add_row("wall time", f"{s.wall_time_s:.1f} s")
    console.print(table)
    if s.failures:
        failed = Table("failed video", "reason", title="failures")
        for f in s.failures:
            failed.add_row(f["uri"], f["reason"])
        console.print(failed)


def videos(fmt: Format = typer.Option(Format.table, "--format", "-f")) -> None:
    """List every known video with its status, probe metadata and failure reason."""
    open_database()
    from vidqa.db import get_engine, repository as repo

    with get_engine().connect() as conn:
        rows = repo.video_rows(conn)
    columns = ["uri", "status", "failure_reason", "duration_s", "fps_avg", "frame_count",
               "display_width", "display_height", "video_codec", "has_audio"]
    emit(rows, fmt, columns)


def scores(
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    metric: Optional[list[str]] = typer.Option(None, "--metric", "-m",
                                               help="Only these metrics (repeat, or comma-separate)."),
    scorer: Optional[str] = typer.Option(None, "--scorer", help="Only this scorer."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=0, help="At most this many records."),
) -> None:
    """List stored scores as records {video, clip, scorer, config, metric, value}; config says
    which scorer settings each value came from (config_hash: the scorer_configs row)."""
    open_database()
    from vidqa.db import get_engine, repository as repo
    from vidqa.scorers import SCORERS
    from vidqa.scoring.provenance import config_summary

    wanted = [m.strip() for value in metric or [] for m in value.split(",") if m.strip()]
    with get_engine().connect() as conn:
        known = repo.stored_metrics(conn)
        unknown = [m for m in wanted if m not in known]
        if unknown:
            produced = {m for name in SCORERS for m in SCORERS[name].metrics}
            what = ", ".join(f"{m!r} ({'no score stored yet' if m in produced else 'no scorer makes it'})"
                             for m in unknown)
            fail(f"unknown metric {what}; stored: {', '.join(sorted(known)) or 'none'}")
        raw = repo.list_scores(conn, metrics=wanted or None, scorer=scorer, limit=limit)
    rows = [
        {
            "video": r["video"],
            "clip": f"{r['kind']}:{r['start_frame']}-{r['end_frame']}",
            "scorer": r["scorer"],
            "config": config_summary(r["config_hash"], r["config"]),
            "config_hash": r["config_hash"],
            "metric": r["metric"],
            "value": r["value"],
        }
        for r in raw
    ]
    columns = ["video", "clip", "scorer", "config", "metric", "value"]
    emit(rows, fmt, columns if fmt is Format.table else columns[:4] + ["config_hash"] + columns[4:])


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"


class ExportLevel(str, Enum):
    clip = "clip"
    video = "video"


def export(
    where: str = typer.Option(
        ..., "--where", "-w", help="SQL condition over the wide view, e.g. 'aesthetic > 5.5 AND \"EMScore(X,V)_full_F\" "
        "> 0.3'. Only a condition: no sub-queries, other tables or statements."
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output file: a local path, s3://bucket/key, or - for "
                            "standard output (jsonl)."),
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

    open_database()
    from vidqa.db import get_engine
    from vidqa.db.views import refresh_if_stale
    from vidqa.db.export import export_selection

    engine = get_engine()
    try:
        refresh_if_stale(engine)  # metrics written by an interrupted run get their columns
    except Exception as exc:  # noqa: BLE001 - a read-only role can still export with the views as they are
        err_console.print(f"[yellow]warning:[/yellow] wide views not refreshed: {escape(str(exc))}", soft_wrap=True)
    try:
        n = export_selection(engine, where, out, fmt.value if fmt else None, level.value, limit=limit)
    except (ValueError, OSError) as exc:
        fail(exc)
    # On stderr when the rows go to stdout, so that a pipe gets the rows only.
    (err_console if out == "-" else console).print(f"{n} rows written to {'standard output' if out == '-' else out}",
                                                  markup=False, highlight=False, soft_wrap=True)


