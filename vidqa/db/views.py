"""Wide views of the score ledger: one column per metric, for filtering datasets in SQL.

``clip_scores_wide``
    One row per clip of every video whose status is ``'ok'`` (whole-video clips of kind
    ``'video'`` as well as ``'scene'``/``'shot'``/``'window'`` clips), with the clip's span, the
    video's probe facts, and one ``double precision`` column per metric.
``video_scores_wide``
    One row per ``'ok'`` video; its metric columns hold the whole-video scores (the clip of
    kind ``'video'`` with ``split_hash = ''``), ``NULL`` when the video was never scored
    whole. ``clip_id`` is that clip's id.

Both views carry a column for every distinct ``scores.metric`` (sorted by name), so::

    SELECT uri FROM clip_scores_wide WHERE aesthetic > 5.5 AND "EMScore(X,V)_full_F" > 0.3

works as written (names that are not plain lower-case words need double quotes). Column
order: the fixed columns (:data:`FIXED_COLUMNS`), the metric columns, then the provenance
columns ``configs`` and ``mixed_configs``.

Latest score wins
    A clip can hold several scores of one metric: one per scorer configuration and per
    text input (e.g. two CLIP models, or two captions). The wide column holds the most
    recent of them: latest ``scores.created_at``, then the highest ``scores.id``. A score
    re-written in place (same identity) keeps its original ``created_at``.

Provenance
    ``configs`` (``jsonb``) names, for each metric of the row that has a score, the score
    that won: ``{"<metric>": {"config_hash": ..., "summary": ..., "scored_at": ...}}``
    (``summary`` is ``scorer_configs.summary``, e.g. ``technical v1 uniform:16 (3f2a9c1e)``;
    ``scored_at`` is ``scores.created_at``). Keys are metric names (not column names), and
    ``'{}'`` when the row has no score. ``mixed_configs`` (``text[]``, the same on every
    row) lists the metrics whose values in this view come from more than one
    configuration, sorted; ``'{}'`` when no column mixes.

Selecting configurations
    ``clip_scores_wide_for(configs text[])`` and ``video_scores_wide_for(configs text[])``
    return the rows of the view of the same name (same columns, same types) computed from
    the scores of the named configurations only; latest score wins among those, and
    ``configs``/``mixed_configs`` describe that selection. Each element of ``configs`` is a
    full ``config_hash`` or a prefix of at least 8 characters that names exactly one; an
    unknown or ambiguous one, or an empty selection, is an error
    (``resolve_scorer_configs(text[])`` does the resolving and can be called alone)::

        SELECT uri, sharpness FROM clip_scores_wide_for(ARRAY(
            SELECT config_hash FROM scorer_configs WHERE summary LIKE 'technical v1 uniform:16 %'))

    A metric's column is ``NULL`` where none of the selected configurations scored it.

``NaN`` is shown as ``NULL`` (``NULL`` is what the ledger stores for undefined values; a
``NaN`` would otherwise compare greater than every number).

Column names
    A metric's column is its name exactly, unless the name is longer than Postgres'
    63-byte identifier limit, is empty, or equals a fixed or provenance column (``uri``,
    ``width``, ``configs``, ... or ``video_path``, which ``vidqa export`` adds): then the
    column is the name cut to at most 54 bytes (on a character boundary), ``~``, and the
    first 8 hex digits of the SHA-256 of the full name, e.g. ``width~1a2b3c4d``. Every
    metric column's comment (``\\d+ clip_scores_wide``) records the metric it holds, with
    its unit and range when the scorer that makes it declares them
    (``vidqa.scorers.metric_docs``). See :func:`metric_column`.

Regeneration
    The views are plain (not materialised) views, so values are always current; only
    the *set of columns* is fixed when they are created. :func:`refresh_wide_views`
    recreates them, and the ``_for`` functions, from the metrics present now. It runs in
    migrations 0004, 0008 and 0009, in ``vidqa db refresh-views``, and after each run
    (``vidqa.scoring.runs.close_run``) when the metric set changed
    (:func:`refresh_if_stale`). They are dropped and recreated in the caller's transaction
    under an advisory lock, so concurrent refreshes queue rather than collide and readers
    never see them missing. A user-defined view that depends on them makes the refresh
    fail (nothing is dropped with ``CASCADE``).

Schema changes
    A future migration that alters a column these views read (``videos``, ``clips``,
    ``scores``, ``scorer_configs``, ``video_locations``) must call :func:`drop_wide_views`
    first and ``refresh_wide_views(conn, revision=<its revision>)`` after (its downgrade:
    the revision it goes back to). The views of a revision have the columns :data:`SINCE`
    allows it: 0004-0007 no provenance and no ``_for`` functions, 0008 no ``locations``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Optional

from psycopg import sql

CLIP_VIEW = "clip_scores_wide"
VIDEO_VIEW = "video_scores_wide"
VIEWS = (CLIP_VIEW, VIDEO_VIEW)
# The set-returning function of each view that selects configurations.
FUNCTIONS = {CLIP_VIEW: "clip_scores_wide_for", VIDEO_VIEW: "video_scores_wide_for"}
RESOLVE_FUNCTION = "resolve_scorer_configs"
MIN_PREFIX = 8  # shortest config_hash prefix a selector may be

# pg_advisory_xact_lock key for refreshes: b"vidqawv" read as an integer.
REFRESH_LOCK_KEY = int.from_bytes(b"vidqawv", "big")
MAX_IDENTIFIER_BYTES = 63
_PREFIX_BYTES = MAX_IDENTIFIER_BYTES - 9  # room for "~" and 8 hex digits

_LOCATIONS = ("ARRAY(SELECT l.uri FROM video_locations l WHERE l.video_id = v.id "
              "ORDER BY l.first_seen_at, l.uri)")
# The current deduplication: the setting `vidqa dedup` ran last (migration 0014).
_CURRENT_DEDUP = "(SELECT s.dedup_key FROM dedup_settings s ORDER BY s.updated_at DESC, s.dedup_key LIMIT 1)"
_CLIP_DUPLICATE_OF = ("(SELECT g.duplicate_of FROM duplicate_groups g WHERE g.clip_id = c.id "
                      f"AND g.dedup_key = {_CURRENT_DEDUP})")
_VIDEO_DUPLICATE_OF = ("(SELECT kc.video_id FROM duplicate_groups g JOIN clips kc ON kc.id = g.duplicate_of "
                       f"WHERE g.clip_id = wc.id AND g.dedup_key = {_CURRENT_DEDUP})")
_CLIP_DUPLICATE_COMMENT = ("the keeper (clips.id) of this clip's duplicate group under the latest vidqa dedup "
                           "setting; NULL for a keeper, a clip with no duplicate, or one never compared")
_VIDEO_DUPLICATE_COMMENT = ("the video (videos.id) of the keeper of this video's whole-video clip's duplicate group "
                            "under the latest vidqa dedup setting; NULL for a keeper, no duplicate, or never compared")
_LOCATIONS_COMMENT = "every URI the video's bytes were seen at, first seen first (uri is the first; docs/identity.md)"

# (column, SQL expression, comment) of each view before its metric columns.
CLIP_FIXED: tuple[tuple[str, str, str], ...] = (
    ("clip_id", "c.id", "clip id (clips.id)"),
    ("video_id", "c.video_id", "video id (videos.id)"),
    ("uri", "v.uri", "where the video was first seen: its real path or s3:// URI (locations has every one)"),
    ("content_id", "v.content_id", "sha256:<hex of the bytes> or etag:<S3 ETag>"),
    ("kind", "c.kind", "video (the whole video) | scene | shot | window"),
    ("start_time_s", "c.start_time_s", "presentation time of the clip's first frame, seconds"),
    ("end_time_s", "c.end_time_s", "end of the clip's last frame, seconds"),
    ("start_frame", "c.start_frame", "first frame of the clip, an index into the video's frames"),
    ("end_frame", "c.end_frame", "end frame of the clip, exclusive"),
    ("duration_s", "v.duration_s", "duration of the video, seconds"),
    ("width", "v.width", "stored width of the video, pixels"),
    ("height", "v.height", "stored height of the video, pixels"),
    ("fps_avg", "v.fps_avg", "average frame rate of the video, frames per second"),
    ("has_audio", "v.has_audio", "whether the video has an audio stream"),
    ("split_hash", "c.split_hash", "identity of the split settings that made the clip; '' for the whole video"),
    ("clip_duration_s", "c.end_time_s - c.start_time_s", "end_time_s - start_time_s, seconds"),
    ("display_width", "v.display_width", "width as displayed (rotation and sample aspect ratio applied), pixels"),
    ("display_height", "v.display_height", "height as displayed (rotation and sample aspect ratio applied), pixels"),
    ("locations", _LOCATIONS, _LOCATIONS_COMMENT),
    ("duplicate_of", _CLIP_DUPLICATE_OF, _CLIP_DUPLICATE_COMMENT),
)
VIDEO_FIXED: tuple[tuple[str, str, str], ...] = (
    ("video_id", "v.id", "video id (videos.id)"),
    ("clip_id", "wc.id", "the video's whole-video clip (kind 'video', split_hash ''); NULL when it has none"),
    ("uri", "v.uri", "where the video was first seen: its real path or s3:// URI (locations has every one)"),
    ("content_id", "v.content_id", "sha256:<hex of the bytes> or etag:<S3 ETag>"),
    ("duration_s", "v.duration_s", "duration, seconds"),
    ("width", "v.width", "stored width, pixels"),
    ("height", "v.height", "stored height, pixels"),
    ("display_width", "v.display_width", "width as displayed (rotation and sample aspect ratio applied), pixels"),
    ("display_height", "v.display_height", "height as displayed (rotation and sample aspect ratio applied), pixels"),
    ("fps_avg", "v.fps_avg", "average frame rate, frames per second"),
    ("has_audio", "v.has_audio", "whether the video has an audio stream"),
    ("locations", _LOCATIONS, _LOCATIONS_COMMENT),
    ("duplicate_of", _VIDEO_DUPLICATE_OF, _VIDEO_DUPLICATE_COMMENT),
)
_FIXED = {CLIP_VIEW: CLIP_FIXED, VIDEO_VIEW: VIDEO_FIXED}
FIXED_COLUMNS = {view: tuple(name for name, _, _ in fixed) for view, fixed in _FIXED.items()}
# The revision that added each column not in the views of 0004; a migration below it makes
# the views of its own revision (see "Schema changes" in the module docstring).
SINCE = {"locations": "0009", "duplicate_of": "0014", "configs": "0008", "mixed_configs": "0008"}


def at_revision(revision: Optional[str], column: str) -> bool:
    """Whether the views of ``revision`` (``None``: the newest) have ``column``."""
    return revision is None or column not in SINCE or revision >= SINCE[column]


def fixed_columns(view: str, revision: Optional[str] = None) -> tuple[str, ...]:
    """The columns before the metric columns in ``view`` as of ``revision``."""
    return tuple(name for name in FIXED_COLUMNS[view] if at_revision(revision, name))
# The columns after the metric columns (see "Provenance" in the module docstring).
CONFIGS_COLUMN = "configs"
MIXED_COLUMN = "mixed_configs"
PROVENANCE_COLUMNS = (CONFIGS_COLUMN, MIXED_COLUMN)
_PROVENANCE_COMMENTS = {
    CONFIGS_COLUMN: "per metric of this row, the score shown: {metric: {config_hash, summary, scored_at}} "
                    "(JSONB; scorer_configs has the full configuration)",
    MIXED_COLUMN: "metrics whose values in this view come from more than one scorer configuration "
                  "(the same on every row; empty when none)",
}
# Names a metric column may not take: the fixed and provenance columns, and the column export adds.
RESERVED = (frozenset(FIXED_COLUMNS[CLIP_VIEW]) | frozenset(FIXED_COLUMNS[VIDEO_VIEW]) | frozenset(PROVENANCE_COLUMNS)
            | {"video_path"})


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


# Inside a ``_for`` function: the configurations its argument ($1) names, resolved once
# (an uncorrelated sub-select, not a call per score row).
_SELECTED = sql.SQL(" WHERE s.config_hash IN (SELECT unnest({}($1)))").format(sql.Identifier(RESOLVE_FUNCTION))


def _latest_scores(whole_video_only: bool, selected: bool) -> sql.Composable:
    """The latest score per (clip, metric): one ordered pass over ``scores`` (over the
    selected configurations' scores only inside a ``_for`` function)."""
    join = sql.SQL(
        " JOIN clips sc ON sc.id = s.clip_id AND sc.kind = 'video' AND sc.split_hash = ''"
        if whole_video_only else ""
    )
    return sql.SQL(
        "SELECT DISTINCT ON (s.clip_id, s.metric) s.clip_id, s.metric, NULLIF(s.value, 'NaN'::float8) AS value, "
        "s.config_hash, s.created_at "
        "FROM scores s{join}{where} ORDER BY s.clip_id, s.metric, s.created_at DESC, s.id DESC"
    ).format(join=join, where=_SELECTED if selected else sql.SQL(""))


def _pivot(columns: dict[str, str], whole_video_only: bool, provenance: bool, selected: bool) -> sql.Composable:
    """One row per clip, one column per metric, from the latest scores; with provenance,
    the ``configs`` object of the scores shown."""
    picks = [
        sql.SQL("max(l.value) FILTER (WHERE l.metric = {m}) AS {c}").format(m=sql.Literal(m), c=sql.Identifier(c))
        for m, c in columns.items()
    ]
    join = sql.SQL("")
    if provenance:
        shown = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, columns)))
        picks.append(sql.SQL(
            "jsonb_object_agg(l.metric, jsonb_build_object('config_hash', l.config_hash, 'summary', cfg.summary, "
            "'scored_at', l.created_at)) FILTER (WHERE l.metric = ANY({shown})) AS {configs}"
        ).format(shown=shown, configs=sql.Identifier(CONFIGS_COLUMN)))
        join = sql.SQL(" LEFT JOIN scorer_configs cfg ON cfg.config_hash = l.config_hash")
    return sql.SQL("SELECT l.clip_id, {picks} FROM ({latest}) l{join} GROUP BY l.clip_id").format(
        picks=sql.SQL(", ").join(picks), latest=_latest_scores(whole_video_only, selected), join=join
    )


def _fixed(view: str, revision: Optional[str]) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{expr} AS {name}").format(expr=sql.SQL(expr), name=sql.Identifier(name))
        for name, expr, _ in _FIXED[view] if at_revision(revision, name)
    )


def _mixed(view: str, columns: dict[str, str], selected: bool) -> sql.Composable:
    """The metrics whose latest scores over the view's rows (clips of ok videos; for the video
    view, each ok video's newest whole-video clip) come from more than one configuration.
    Uncorrelated, so Postgres evaluates it once per query (and not at all when the column is
    not selected)."""
    if not columns:
        return sql.SQL("'{}'::text[]")
    newest_whole = sql.SQL(
        " AND mc.id = (SELECT max(c3.id) FROM clips c3 WHERE c3.video_id = mc.video_id "
        "AND c3.kind = 'video' AND c3.split_hash = '')" if view == VIDEO_VIEW else ""
    )
    return sql.SQL(
        "(SELECT COALESCE(array_agg(x.metric ORDER BY x.metric), '{{}}'::text[]) FROM ("
        "SELECT l.metric FROM ({latest}) l JOIN clips mc ON mc.id = l.clip_id{newest_whole} "
        "JOIN videos mv ON mv.id = mc.video_id AND mv.status = 'ok' "
        "GROUP BY l.metric HAVING count(DISTINCT l.config_hash) > 1) x)"
    ).format(latest=_latest_scores(view == VIDEO_VIEW, selected), newest_whole=newest_whole)


def _metric_select(view: str, columns: dict[str, str], provenance: bool, selected: bool) -> sql.Composable:
    out = [sql.SQL(", w.{}").format(sql.Identifier(c)) for c in columns.values()]
    if provenance:
        configs = sql.SQL("w.{}").format(sql.Identifier(CONFIGS_COLUMN)) if columns else sql.SQL("NULL::jsonb")
        out.append(sql.SQL(", COALESCE({}, '{{}}'::jsonb) AS {}").format(configs, sql.Identifier(CONFIGS_COLUMN)))
        out.append(sql.SQL(", {} AS {}").format(_mixed(view, columns, selected), sql.Identifier(MIXED_COLUMN)))
    return sql.SQL("").join(out)


def wide_select(view: str, columns: dict[str, str], revision: Optional[str] = None,
                selected: bool = False) -> sql.Composed:
    """The query of ``view`` as of ``revision`` (``None``: the newest) with the given
    ``{metric: column}``; ``selected``: over the configurations named by the ``_for``
    function's argument ``$1`` only."""
    provenance = at_revision(revision, CONFIGS_COLUMN)
    if view == CLIP_VIEW:
        body = sql.SQL("SELECT {fixed}{metrics} FROM clips c JOIN videos v ON v.id = c.video_id")
        on = sql.SQL("c.id")
    elif view == VIDEO_VIEW:
        body = sql.SQL(
            "SELECT {fixed}{metrics} FROM videos v LEFT JOIN LATERAL ("
            "SELECT c.id FROM clips c WHERE c.video_id = v.id AND c.kind = 'video' AND c.split_hash = '' "
            "ORDER BY c.id DESC LIMIT 1) wc ON true"
        )
        on = sql.SQL("wc.id")
    else:
        raise ValueError(f"unknown view {view!r}")
    body = body.format(fixed=_fixed(view, revision), metrics=_metric_select(view, columns, provenance, selected))
    if columns:
        body = sql.SQL("{body} LEFT JOIN ({pivot}) w ON w.clip_id = {on}").format(
            body=body, pivot=_pivot(columns, view == VIDEO_VIEW, provenance, selected), on=on
        )
    return sql.SQL("{} WHERE v.status = 'ok'").format(body)


def view_definition(view: str, columns: dict[str, str], revision: Optional[str] = None) -> sql.Composed:
    """``CREATE VIEW`` for ``view`` as of ``revision`` with the given ``{metric: column}``."""
    return sql.SQL("CREATE VIEW {view} AS {body}").format(
        view=sql.Identifier(view), body=wide_select(view, columns, revision)
    )


def function_definition(raw: Any, view: str, columns: dict[str, str], revision: Optional[str] = None) -> sql.Composed:
    """``CREATE FUNCTION <view>_for(configs text[]) RETURNS SETOF <view>`` (as of ``revision``)."""
    body = wide_select(view, columns, revision, selected=True).as_string(raw)
    return sql.SQL(
        "CREATE FUNCTION {fn}(configs text[]) RETURNS SETOF {view} LANGUAGE sql STABLE AS {body}"
    ).format(fn=sql.Identifier(FUNCTIONS[view]), view=sql.Identifier(view), body=sql.Literal(body))


# Each selector: a full config_hash, else a prefix of >= MIN_PREFIX characters naming exactly one.
_RESOLVE = sql.SQL("""
CREATE OR REPLACE FUNCTION {fn}(selectors text[]) RETURNS text[] LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    selector text;
    found text[];
    resolved text[] := '{{}}';
BEGIN
    IF selectors IS NULL OR cardinality(selectors) = 0 THEN
        RAISE EXCEPTION 'no scorer configuration selected: give config_hash values (or prefixes of at least {n} characters)'
            USING HINT = 'e.g. ARRAY(SELECT config_hash FROM scorer_configs WHERE summary LIKE ''technical v1 uniform:16 %'')';
    END IF;
    FOREACH selector IN ARRAY selectors LOOP
        SELECT array_agg(config_hash ORDER BY config_hash) INTO found FROM scorer_configs WHERE config_hash = selector;
        IF found IS NULL THEN
            IF selector IS NULL OR length(selector) < {n} THEN
                RAISE EXCEPTION 'unknown scorer configuration %: not a config_hash, and a prefix needs at least {n} characters',
                    quote_nullable(selector);
            END IF;
            SELECT array_agg(config_hash ORDER BY config_hash) INTO found
            FROM scorer_configs WHERE left(config_hash, length(selector)) = selector;
        END IF;
        IF found IS NULL THEN
            RAISE EXCEPTION 'unknown scorer configuration %: no config_hash starts with it', quote_literal(selector);
        ELSIF cardinality(found) > 1 THEN
            RAISE EXCEPTION 'ambiguous scorer configuration %: % config hashes start with it (%)',
                quote_literal(selector), cardinality(found), array_to_string(found, ', ');
        END IF;
        resolved := resolved || found;
    END LOOP;
    RETURN resolved;
END
$fn$
""")

_VIEW_COMMENTS = {
    CLIP_VIEW: "One row per clip of each ok video, one column per metric (latest score wins; configs says which "
               "configuration each value came from). Generated by vidqa.db.views; recreate with "
               "`vidqa db refresh-views`.",
    VIDEO_VIEW: "One row per ok video, one column per metric of its whole-video clip (latest score wins; configs "
                "says which configuration each value came from). Generated by vidqa.db.views; recreate with "
                "`vidqa db refresh-views`.",
}
_FUNCTION_COMMENTS = {
    view: f"The rows of {view} from the scores of the given scorer configurations only (config_hash values, or "
          f"prefixes of at least {MIN_PREFIX} characters). Generated by vidqa.db.views."
    for view in VIEWS
}


def metric_comment(metric: str, docs: Mapping[str, str]) -> str:
    """A metric column's comment: the metric it holds, and its unit and range when declared."""
    doc = docs.get(metric)
    return f"latest score of metric {metric}: {doc}" if doc else f"latest score of metric {metric}"


def default_metric_docs() -> dict[str, str]:
    """``{metric: unit, range and meaning}`` as the registered scorers declare them."""
    from vidqa.scorers.metric_docs import all_metric_docs  # a table: imports no scorer module (no torch)

    return all_metric_docs()


def drop_wide_views(conn: Any) -> None:
    """Drop the ``_for`` functions, the views and the selector resolver, where they exist."""
    raw = _raw(conn)
    raw.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(sql.SQL(", ").join(
        sql.SQL("{}(text[])").format(sql.Identifier(FUNCTIONS[v])) for v in VIEWS)))
    raw.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.SQL(", ").join(map(sql.Identifier, VIEWS))))
    raw.execute(sql.SQL("DROP FUNCTION IF EXISTS {}(text[])").format(sql.Identifier(RESOLVE_FUNCTION)))


def _comment(raw: Any, what: str, name: sql.Composable, text: str) -> None:
    raw.execute(sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(what), name, sql.Literal(text)))


def refresh_wide_views(conn: Any, *, revision: Optional[str] = None,
                       metric_docs: Optional[Mapping[str, str]] = None) -> list[str]:
    """(Re)create both views (and, from 0008 on, the ``_for`` functions) with a column per
    metric now in ``scores``, inside the caller's transaction; returns the metric columns in
    order. ``revision`` makes the views as that migration left them (a migration passes its
    own revision, so upgrading through it never reads a table a later one creates);
    ``None`` makes the newest. ``metric_docs`` (default: the registered scorers'
    declarations) gives the metric columns' comments their units and ranges."""
    provenance = at_revision(revision, CONFIGS_COLUMN)
    raw = _raw(conn)
    raw.execute("SELECT pg_advisory_xact_lock(%s)", [REFRESH_LOCK_KEY])
    docs = default_metric_docs() if metric_docs is None else metric_docs
    columns = metric_columns(list_metrics(raw))
    drop_wide_views(raw)
    if provenance:
        raw.execute(_RESOLVE.format(fn=sql.Identifier(RESOLVE_FUNCTION), n=sql.SQL(str(MIN_PREFIX))))
        _comment(raw, "FUNCTION", sql.SQL("{}(text[])").format(sql.Identifier(RESOLVE_FUNCTION)),
                 f"The config_hash of each selector (a config_hash, or a prefix of at least {MIN_PREFIX} characters "
                 "naming exactly one); fails on an unknown, ambiguous or empty selection.")
    for view in VIEWS:
        raw.execute(view_definition(view, columns, revision))
        _comment(raw, "VIEW", sql.Identifier(view), _VIEW_COMMENTS[view])
        comments = {name: text for name, _, text in _FIXED[view] if at_revision(revision, name)}
        comments.update({column: metric_comment(metric, docs) for metric, column in columns.items()})
        if provenance:
            comments.update(_PROVENANCE_COMMENTS)
        for column, text in comments.items():
            _comment(raw, "COLUMN", sql.SQL("{}.{}").format(sql.Identifier(view), sql.Identifier(column)), text)
        if provenance:
            raw.execute(function_definition(raw, view, columns, revision))
            _comment(raw, "FUNCTION", sql.SQL("{}(text[])").format(sql.Identifier(FUNCTIONS[view])),
                     _FUNCTION_COMMENTS[view])
    return list(columns.values())


def expected_columns(metrics: list[str]) -> dict[str, list[str]]:
    cols = list(metric_columns(metrics).values())
    return {view: [*FIXED_COLUMNS[view], *cols, *PROVENANCE_COLUMNS] for view in VIEWS}


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
