"""Wide views of the score ledger: one column per metric, for filtering datasets in SQL.

``clip_scores_wide``
    One row per clip of every video whose status is ``'ok'`` (whole-video clips of kind
    ``'video'`` as well as ``'scene'``/``'window'`` clips), with the clip's span, the
    video's probe facts, and one ``double precision`` column per metric.
``video_scores_wide``
    One row per ``'ok'`` video; its metric columns hold the whole-video scores (the clip of
    kind ``'video'`` with ``split_hash = ''``), ``NULL`` when the video was never scored
    whole. ``clip_id`` is that clip's id.

Both views carry a column for every distinct ``scores.metric`` (sorted by name), so::

    SELECT uri FROM clip_scores_wide WHERE aesthetic > 5.5 AND "EMScore(X,V)_full_F" > 0.3

works as written (names that are not plain lower-case words need double quotes).

Latest score wins
    A clip can hold several scores of one metric: one per scorer configuration and per
    text input (e.g. two CLIP models, or two captions). The wide column holds the most
    recent of them: latest ``scores.created_at``, then the highest ``scores.id``. A score
    re-written in place (same identity) keeps its original ``created_at``. Use the long
    ``scores`` table to compare configurations side by side.

``NaN`` is shown as ``NULL`` (``NULL`` is what the ledger stores for undefined values; a
``NaN`` would otherwise compare greater than every number).

Column names
    A metric's column is its name exactly, unless the name is longer than Postgres'
    63-byte identifier limit, is empty, or equals a fixed column (``uri``, ``width``,
    ... or ``video_path``, which ``vidqa export`` adds): then the column is the name cut
    to at most 54 bytes (on a character boundary), ``~``, and the first 8 hex digits of
    the SHA-256 of the full name, e.g. ``width~1a2b3c4d``. Every metric column's comment
    (``\\d+ clip_scores_wide``) records the metric it holds. See :func:`metric_column`.

Regeneration
    The views are plain (not materialised) views, so values are always current; only
    the *set of columns* is fixed when they are created. :func:`refresh_wide_views`
    recreates them from the metrics present now. It runs in migration 0004, in
    ``vidqa db refresh-views``, and after each run (``vidqa.scoring.runs.close_run``) when the
    metric set changed (:func:`refresh_if_stale`). The views are dropped and recreated in
    the caller's transaction under an advisory lock, so concurrent refreshes queue
    rather than collide and readers never see them missing. A user-defined view that
    depends on them makes the refresh fail (nothing is dropped with ``CASCADE``).

Schema changes
    A future migration that alters a column these views read (``videos``, ``clips``,
    ``scores``) must call :func:`drop_wide_views` first and :func:`refresh_wide_views`
    after.
"""

from __future__ import annotations

import hashlib
from typing import Any, Optional

from psycopg import sql

CLIP_VIEW = "clip_scores_wide"
VIDEO_VIEW = "video_scores_wide"
VIEWS = (CLIP_VIEW, VIDEO_VIEW)

# pg_advisory_xact_lock key for refreshes: b"vidqawv" read as an integer.
REFRESH_LOCK_KEY = int.from_bytes(b"vidqawv", "big")
MAX_IDENTIFIER_BYTES = 63
_PREFIX_BYTES = MAX_IDENTIFIER_BYTES - 9  # room for "~" and 8 hex digits

# (column, SQL expression) of each view before its metric columns.
CLIP_FIXED: tuple[tuple[str, str], ...] = (
    ("clip_id", "c.id"),
    ("video_id", "c.video_id"),
    ("uri", "v.uri"),
    ("content_id", "v.content_id"),
    ("kind", "c.kind"),
    ("start_time_s", "c.start_time_s"),
    ("end_time_s", "c.end_time_s"),
    ("start_frame", "c.start_frame"),
    ("end_frame", "c.end_frame"),
    ("duration_s", "v.duration_s"),
    ("width", "v.width"),
    ("height", "v.height"),
    ("fps_avg", "v.fps_avg"),
    ("has_audio", "v.has_audio"),
    ("split_hash", "c.split_hash"),
    ("clip_duration_s", "c.end_time_s - c.start_time_s"),
    ("display_width", "v.display_width"),
    ("display_height", "v.display_height"),
)
VIDEO_FIXED: tuple[tuple[str, str], ...] = (
    ("video_id", "v.id"),
    ("clip_id", "wc.id"),
    ("uri", "v.uri"),
    ("content_id", "v.content_id"),
    ("duration_s", "v.duration_s"),
    ("width", "v.width"),
    ("height", "v.height"),
    ("display_width", "v.display_width"),
    ("display_height", "v.display_height"),
    ("fps_avg", "v.fps_avg"),
    ("has_audio", "v.has_audio"),
)
FIXED_COLUMNS = {
    CLIP_VIEW: tuple(name for name, _ in CLIP_FIXED),
    VIDEO_VIEW: tuple(name for name, _ in VIDEO_FIXED),
}
# Names a metric column may not take: the fixed columns, and the column export adds.
RESERVED = frozenset(FIXED_COLUMNS[CLIP_VIEW]) | frozenset(FIXED_COLUMNS[VIDEO_VIEW]) | {"video_path"}


def metric_column(metric: str) -> str:
    """The column that holds ``metric`` (see "Column names" in the module docstring)."""
    raw = metric.encode("utf-8")
    if metric and len(raw) <= MAX_IDENTIFIER_BYTES and metric not in RESERVED:
        return metric
    digest = hashlib.sha256(raw).hexdigest()[:8]
    prefix = raw[:_PREFIX_BYTES].decode("utf-8", errors="ignore")
    return f"{prefix}~{digest}"


def metric_columns(metrics: list[str]) -> dict[str, str]:
    """``{metric: column}`` in metric order; fails if two metrics would share a column."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for metric in sorted(metrics):
        column = metric_column(metric)
        if column in seen:
            raise ValueError(f"metrics {seen[column]!r} and {metric!r} would both be column {column!r}")
        seen[column] = metric
        out[metric] = column
    return out


def _raw(conn: Any):
    """The psycopg connection under a SQLAlchemy ``Connection`` (or the one given)."""
    if hasattr(conn, "exec_driver_sql"):
        conn.exec_driver_sql("SELECT 1")  # make SQLAlchemy begin its transaction first
        return conn.connection.driver_connection
    return conn


# A loose index scan over ix_scores_metric_value: one index probe per distinct metric,
# instead of reading every score (Postgres has no skip scan).
_DISTINCT_METRICS = """
WITH RECURSIVE m(metric) AS (
    (SELECT metric FROM scores ORDER BY metric LIMIT 1)
    UNION ALL
    SELECT (SELECT s.metric FROM scores s WHERE s.metric > m.metric ORDER BY s.metric LIMIT 1)
    FROM m WHERE m.metric IS NOT NULL
)
SELECT metric FROM m WHERE metric IS NOT NULL
"""


def list_metrics(conn: Any) -> list[str]:
    """Every distinct metric name in ``scores``, sorted."""
    rows = _raw(conn).execute(_DISTINCT_METRICS).fetchall()
    return sorted(r[0] for r in rows)


def view_columns(conn: Any) -> dict[str, Optional[list[str]]]:
    """``{view: its columns in order}``; ``None`` for a view that does not exist."""
    rows = _raw(conn).execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(%s) ORDER BY table_name, ordinal_position",
        [list(VIEWS)],
    ).fetchall()
    out: dict[str, Optional[list[str]]] = {v: None for v in VIEWS}
    for view, column in rows:
        out[view] = (out[view] or []) + [column]
    return out


def _latest_scores(whole_video_only: bool) -> sql.Composable:
    """The latest value per (clip, metric): one ordered pass over ``scores``."""
    join = sql.SQL(
        " JOIN clips sc ON sc.id = s.clip_id AND sc.kind = 'video' AND sc.split_hash = ''"
        if whole_video_only else ""
    )
    return sql.SQL(
        "SELECT DISTINCT ON (s.clip_id, s.metric) s.clip_id, s.metric, NULLIF(s.value, 'NaN'::float8) AS value "
        "FROM scores s{join} ORDER BY s.clip_id, s.metric, s.created_at DESC, s.id DESC"
    ).format(join=join)


def _pivot(columns: dict[str, str], whole_video_only: bool) -> sql.Composable:
    """One row per clip, one column per metric, from the latest scores."""
    picks = sql.SQL(", ").join(
        sql.SQL("max(l.value) FILTER (WHERE l.metric = {m}) AS {c}").format(m=sql.Literal(m), c=sql.Identifier(c))
        for m, c in columns.items()
    )
    return sql.SQL("SELECT l.clip_id, {picks} FROM ({latest}) l GROUP BY l.clip_id").format(
        picks=picks, latest=_latest_scores(whole_video_only)
    )


def _fixed(columns: tuple[tuple[str, str], ...]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{expr} AS {name}").format(expr=sql.SQL(expr), name=sql.Identifier(name)) for name, expr in columns
    )


def _metric_select(columns: dict[str, str]) -> sql.Composable:
    return sql.SQL("").join(sql.SQL(", w.{}").format(sql.Identifier(c)) for c in columns.values())


def view_definition(view: str, columns: dict[str, str]) -> sql.Composed:
    """``CREATE VIEW`` for ``view`` with the given ``{metric: column}``."""
    if view == CLIP_VIEW:
        body = sql.SQL("SELECT {fixed}{metrics} FROM clips c JOIN videos v ON v.id = c.video_id").format(
            fixed=_fixed(CLIP_FIXED), metrics=_metric_select(columns)
        )
        on = sql.SQL("c.id")
    elif view == VIDEO_VIEW:
        body = sql.SQL(
            "SELECT {fixed}{metrics} FROM videos v LEFT JOIN LATERAL ("
            "SELECT c.id FROM clips c WHERE c.video_id = v.id AND c.kind = 'video' AND c.split_hash = '' "
            "ORDER BY c.id DESC LIMIT 1) wc ON true"
        ).format(fixed=_fixed(VIDEO_FIXED), metrics=_metric_select(columns))
        on = sql.SQL("wc.id")
    else:
        raise ValueError(f"unknown view {view!r}")
    if columns:
        body = sql.SQL("{body} LEFT JOIN ({pivot}) w ON w.clip_id = {on}").format(
            body=body, pivot=_pivot(columns, whole_video_only=view == VIDEO_VIEW), on=on
        )
    return sql.SQL("CREATE VIEW {view} AS {body} WHERE v.status = 'ok'").format(view=sql.Identifier(view), body=body)


_VIEW_COMMENTS = {
    CLIP_VIEW: "One row per clip of each ok video, one column per metric (latest score wins). "
               "Generated by vidqa.db.views; recreate with `vidqa db refresh-views`.",
    VIDEO_VIEW: "One row per ok video, one column per metric of its whole-video clip (latest score wins). "
                "Generated by vidqa.db.views; recreate with `vidqa db refresh-views`.",
}


def drop_wide_views(conn: Any) -> None:
    raw = _raw(conn)
    raw.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.SQL(", ").join(map(sql.Identifier, VIEWS))))


def refresh_wide_views(conn: Any) -> list[str]:
    """(Re)create both views with a column per metric now in ``scores``, inside the
    caller's transaction; returns the metric columns in order."""
    raw = _raw(conn)
    raw.execute("SELECT pg_advisory_xact_lock(%s)", [REFRESH_LOCK_KEY])
    columns = metric_columns(list_metrics(raw))
    drop_wide_views(raw)
    for view in VIEWS:
        raw.execute(view_definition(view, columns))
        raw.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(sql.Identifier(view), sql.Literal(_VIEW_COMMENTS[view])))
        for metric, column in columns.items():
            raw.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                sql.Identifier(view), sql.Identifier(column), sql.Literal(f"latest score of metric {metric}")
            ))
    return list(columns.values())


def expected_columns(metrics: list[str]) -> dict[str, list[str]]:
    cols = list(metric_columns(metrics).values())
    return {view: [*FIXED_COLUMNS[view], *cols] for view in VIEWS}


def is_stale(conn: Any) -> bool:
    """Whether the views are missing or their columns differ from the metrics in ``scores``."""
    return view_columns(conn) != expected_columns(list_metrics(conn))


def refresh_if_stale(engine) -> Optional[list[str]]:
    """Refresh the views when :func:`is_stale`; returns the new metric columns, else ``None``."""
    with engine.connect() as conn:
        stale = is_stale(conn)
    if not stale:
        return None
    with engine.begin() as conn:
        return refresh_wide_views(conn)
