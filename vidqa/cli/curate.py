"""``vidqa dedup`` and ``vidqa search``: near-duplicate groups and text search over the stored
clip embeddings (no video is decoded)."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer

from rich.markup import escape

from vidqa.cli.common import Format, console, emit, err_console, fail, open_database


def _engine():
    open_database()
    from vidqa.db import get_engine
    from vidqa.db.views import refresh_if_stale

    engine = get_engine()
    try:
        refresh_if_stale(engine)  # metrics written by an interrupted run get their columns
    except Exception as exc:  # noqa: BLE001 - a read-only role reads the views as they are
        err_console.print(f"[yellow]warning:[/yellow] wide views not refreshed: {escape(str(exc))}", soft_wrap=True)
    return engine


def dedup(
    threshold: float = typer.Option(0.95, "--threshold", "-t", help="Cosine similarity at or above which two clips "
                                    "are duplicates."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The encoder whose embeddings are compared: a "
                                        "model_hash or summary prefix (embedding_models); default: most clips."),
    keep_by: str = typer.Option("aesthetic", "--keep-by", help="Metric whose highest value keeps a clip of each group "
                                "(then the longest, then the oldest)."),
    neighbours: int = typer.Option(50, "--neighbours", help="Nearest clips looked up per clip."),
    top: int = typer.Option(10, "--top", help="Largest groups to show."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table or json."),
) -> None:
    """Group near-duplicate clips by their stored embeddings and pick a keeper per group;
    clips already compared under this setting are not compared again.
    Then: vidqa export --where "duplicate_of is null" gives one clip per group."""
    from vidqa.curation.dedup import deduplicate
    from vidqa.db.embeddings import VectorMissing

    engine = _engine()
    try:
        result = deduplicate(engine, threshold=threshold, model=model, keep_by=keep_by, neighbours=neighbours)
    except (ValueError, LookupError, VectorMissing) as exc:
        fail(exc)
    summary = {"model": result.space.summary, "threshold": result.threshold, "keep_by": result.keep_by,
               "compared": result.compared, "clips": result.n_clips, "groups": result.n_groups,
               "duplicates": result.n_duplicates}
    largest = result.largest[:top]
    if fmt is Format.json:
        sys.stdout.write(json.dumps({**summary, "dedup_key": result.dedup_key, "largest_groups": largest},
                                    indent=2, default=str) + "\n")
        return
    emit([summary], Format.table, list(summary))
    if largest:
        emit([{"group": g["group_id"], "size": g["size"], "min similarity": f"{g['min_similarity']:.4f}",
               "keeper": _span(g["members"][0])} for g in largest], Format.table,
             ["group", "size", "min similarity", "keeper"])
    console.print('one clip per group: vidqa export --where "duplicate_of is null" --out deduplicated.jsonl',
                  markup=False, highlight=False)


def _span(row: dict[str, Any]) -> str:
    return f"{row['uri']} [{row['start_time_s']:.2f}-{row['end_time_s']:.2f} s]"


def search(
    text: str = typer.Argument(..., help="What the clips should show, e.g. 'a dog running on a beach'."),
    top: int = typer.Option(20, "--top", "-k", help="How many clips."),
    where: Optional[str] = typer.Option(None, "--where", "-w", help="Condition over clip_scores_wide, as in export "
                                        "(searches those clips exactly)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The encoder: a model_hash or summary prefix."),
    clip_model: Optional[str] = typer.Option(None, "--clip-model", help="NAME@PRETRAINED of that encoder, when it "
                                             "came from a local checkpoint."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table or json."),
) -> None:
    """The clips whose stored embeddings are nearest to TEXT (CLIP's text tower), with their scores."""
    from vidqa.curation.search import search_text
    from vidqa.db.embeddings import VectorMissing
    from vidqa.db.export import PredicateError
    from vidqa.errors import ScorerError

    engine = _engine()
    try:
        _, rows = search_text(engine, text, top=top, model=model, where=where, clip_model=clip_model)
    except (ValueError, LookupError, VectorMissing, PredicateError, ScorerError) as exc:
        fail(exc)
    if fmt is not Format.table:
        emit(rows, fmt, list(rows[0]) if rows else [])
        return
    emit([{"rank": r["rank"], "similarity": f"{r['similarity']:.4f}", "clip": r["clip_id"], "clip span": _span(r),
           "scores": " ".join(f"{k}={v:.4g}" for k, v in r["scores"].items() if v is not None)}
          for r in rows], Format.table, ["rank", "similarity", "clip", "clip span", "scores"])
