"""Reads and writes of the score ledger. Every write is an idempotent upsert."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Engine

from vidqa.video.clips import WHOLE_VIDEO
from vidqa.db.tables import (
    clips, run_shards, runs, score_inputs, scorer_configs, scorer_failures, scores, video_locations, video_splits,
    videos,
)

UNREADABLE = ""  # content_id of a video whose bytes could not be read
SCORING = "scoring"  # a video probed and being scored: 'ok' once its shard has written its scores


def now() -> datetime:
    return datetime.now(timezone.utc)


def create_run(
    engine: Engine,
    source: str,
    parameters: dict[str, Any],
    version: str,
    flow_run_id: Optional[str] = None,
    flow_name: Optional[str] = None,
    run_id: Optional[uuid.UUID] = None,
    host: Optional[str] = None,
    pid: Optional[int] = None,
) -> uuid.UUID:
    run_id = run_id or uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            insert(runs)
            .values(
                id=run_id,
                flow_run_id=uuid.UUID(str(flow_run_id)) if flow_run_id else None,
                flow_name=flow_name,
                source=source,
                parameters=parameters,
                vidqa_version=version,
                status="running",
                started_at=now(),
                host=host,
                pid=pid,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
    return run_id


def finish_run(engine: Engine, run_id: uuid.UUID, status: str, counts: dict[str, int]) -> None:
    with engine.begin() as conn:
        conn.execute(
            runs.update().where(runs.c.id == run_id).values(status=status, finished_at=now(), **counts)
        )


def close_running_runs(engine: Engine, status: str, error: str, *, run_id: Optional[uuid.UUID] = None,
                       flow_run_id: Optional[uuid.UUID] = None) -> int:
    """Close the still-running run ``run_id``, or those of a Prefect flow run, with a reason."""
    which = runs.c.id == run_id if run_id is not None else runs.c.flow_run_id == flow_run_id
    with engine.begin() as conn:
        return conn.execute(runs.update().where(which, runs.c.status == "running")
                            .values(status=status, error=error, finished_at=now())).rowcount


def beat(engine: Engine, run_id: uuid.UUID) -> bool:
    """Record a sign of life of a running run; False once the run is closed."""
    with engine.begin() as conn:
        return conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "running")
                            .values(heartbeat_at=now())).rowcount > 0


def running_runs(conn: Connection) -> list[sa.Row]:
    return list(conn.execute(sa.select(runs.c.id, runs.c.flow_run_id, runs.c.started_at, runs.c.heartbeat_at,
                                       runs.c.host, runs.c.pid)
                             .where(runs.c.status == "running")))


def submit_shard(engine: Engine, run_id: uuid.UUID, shard_index: int, n_videos: int, flow_run_id: uuid.UUID) -> None:
    """Record that a flow run was submitted for a shard (counting its attempts). A shard that
    already completed keeps its outcomes (a resubmission can only add)."""
    stmt = insert(run_shards).values(
        run_id=run_id, shard_index=shard_index, n_videos=n_videos, status="submitted", attempts=1,
        flow_run_id=flow_run_id, updated_at=now(),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "shard_index"],
        set_={"attempts": run_shards.c.attempts + 1, "flow_run_id": flow_run_id, "updated_at": now(),
              "status": sa.case((run_shards.c.status == "completed", "completed"), else_="submitted")},
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def complete_shard(
    engine: Engine, run_id: uuid.UUID, shard_index: int, outcomes: list[dict[str, Any]],
    flow_run_id: Optional[uuid.UUID], host: str,
) -> None:
    """Store a shard's per-video outcomes (written by the flow run that scored it)."""
    values = {"status": "completed", "outcomes": outcomes, "flow_run_id": flow_run_id, "host": host,
              "error": None, "updated_at": now()}
    stmt = insert(run_shards).values(run_id=run_id, shard_index=shard_index, n_videos=len(outcomes), **values)
    with engine.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "shard_index"], set_=values))


def fail_shard(engine: Engine, run_id: uuid.UUID, shard_index: int, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(run_shards.update()
                     .where(run_shards.c.run_id == run_id, run_shards.c.shard_index == shard_index,
                            run_shards.c.status != "completed")
                     .values(status="failed", error=error, updated_at=now()))


def shard_outcomes(conn: Connection, run_id: uuid.UUID, shard_index: int) -> Optional[list[dict[str, Any]]]:
    """The outcomes of a completed shard, or None while it has none."""
    return conn.execute(sa.select(run_shards.c.outcomes).where(
        run_shards.c.run_id == run_id, run_shards.c.shard_index == shard_index,
        run_shards.c.status == "completed")).scalar_one_or_none()


def database_identity(conn: Connection) -> str:
    """Which ledger this is: the server address, the database's oid and the scores table's
    oid. A dropped and recreated database or schema gets new oids, so caches keyed on this
    never claim work that the current database does not hold."""
    row = conn.execute(sa.text(
        "SELECT coalesce(host(inet_server_addr()), 'local'), coalesce(inet_server_port(), 0), "
        "(SELECT oid FROM pg_database WHERE datname = current_database()), 'scores'::regclass::oid"
    )).one()
    return ":".join(str(v) for v in row)


def known_content_id(conn: Connection, uri: str, size: Optional[int], mtime: Optional[float]) -> Optional[str]:
    """The content id last seen at this URI when size and mtime are unchanged (skips rehashing)."""
    if size is None or mtime is None:
        return None
    return conn.execute(
        sa.select(videos.c.content_id)
        .select_from(video_locations.join(videos, videos.c.id == video_locations.c.video_id))
        .where(
            video_locations.c.uri == uri,
            video_locations.c.size_bytes == size,
            video_locations.c.source_mtime == mtime,
            videos.c.content_id != UNREADABLE,
        )
        .order_by(video_locations.c.last_seen_at.desc())
        .limit(1)
    ).scalar()


def find_video(conn: Connection, uri: str, content_id: str) -> Optional[sa.Row]:
    """The video of these bytes, wherever they were seen first (the placeholder of an
    unreadable ``uri`` when ``content_id`` is ``UNREADABLE``), and whether ``uri`` is one of
    its known locations (column ``located``)."""
    located = sa.exists().where(video_locations.c.video_id == videos.c.id, video_locations.c.uri == uri)
    which = videos.c.content_id == content_id
    if content_id == UNREADABLE:
        which = sa.and_(which, videos.c.uri == uri)
    return conn.execute(sa.select(videos, located.label("located")).where(which)).first()


def upsert_video(
    conn: Connection,
    uri: str,
    content_id: str,
    run_id: Optional[uuid.UUID],
    **columns: Any,
) -> int:
    """Insert or update the video of ``content_id`` (of ``uri`` when the bytes are
    unreadable) and record ``uri`` as one of its locations; returns its id. The video's
    ``uri`` stays where its bytes were first seen."""
    values = {"uri": uri, "content_id": content_id, "first_run_id": run_id, "last_run_id": run_id, **columns}
    update = {k: v for k, v in values.items() if k not in ("uri", "content_id", "first_run_id")}
    update["updated_at"] = now()
    if update.get("status") == SCORING:
        # Bytes already in the views stay there while a new scorer runs on them.
        update["status"] = sa.case((videos.c.status == "ok", "ok"), else_=SCORING)
    stmt = insert(videos).values(**values)
    if content_id == UNREADABLE:
        stmt = stmt.on_conflict_do_update(constraint="uq_videos_uri_content", set_=update)
    else:
        stmt = stmt.on_conflict_do_update(index_elements=["content_id"], index_where=videos.c.content_id != UNREADABLE,
                                          set_=update)
    try:
        with conn.begin_nested():
            video_id = conn.execute(stmt.returning(videos.c.id)).scalar_one()
    except sa.exc.IntegrityError:
        # Two decode threads inserting the same new video (a manifest naming it twice): ON
        # CONFLICT settles only its arbiter index, so the loser can trip the other unique
        # one. The winner has committed by then: the same statement now updates its row.
        video_id = conn.execute(stmt.returning(videos.c.id)).scalar_one()
    add_location(conn, video_id, uri, run_id, columns.get("size_bytes"), columns.get("source_mtime"))
    if content_id != UNREADABLE:
        # The bytes are readable now: forget the placeholder of an earlier read failure.
        conn.execute(videos.delete().where(videos.c.uri == uri, videos.c.content_id == UNREADABLE))
    return video_id


def run_writes(conn: Connection, run_id: uuid.UUID) -> tuple[int, int]:
    """``(scores, videos)``: the score rows the run wrote (or rewrote) that are stored now,
    and the videos they belong to."""
    row = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(clips.c.video_id)))
                       .select_from(scores.join(clips, clips.c.id == scores.c.clip_id))
                       .where(scores.c.run_id == run_id)).one()
    return int(row[0]), int(row[1])


def mark_scored(conn: Connection, video_ids: Iterable[int]) -> None:
    """The videos whose scores are written now are ``ok`` (and in the wide views)."""
    ids = list(video_ids)
    if ids:
        conn.execute(videos.update().where(videos.c.id.in_(ids), videos.c.status == SCORING)
                     .values(status="ok", updated_at=now()))


def add_location(conn: Connection, video_id: int, uri: str, run_id: Optional[uuid.UUID],
                 size: Optional[int] = None, mtime: Optional[float] = None) -> None:
    """Record that the video's bytes are at ``uri`` (seen now, by ``run_id``)."""
    stmt = insert(video_locations).values(video_id=video_id, uri=uri, size_bytes=size, source_mtime=mtime,
                                          first_run_id=run_id, last_run_id=run_id)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["video_id", "uri"],
        set_={"size_bytes": sa.func.coalesce(stmt.excluded.size_bytes, video_locations.c.size_bytes),
              "source_mtime": sa.func.coalesce(stmt.excluded.source_mtime, video_locations.c.source_mtime),
              "last_run_id": sa.func.coalesce(stmt.excluded.last_run_id, video_locations.c.last_run_id),
              "last_seen_at": now()},
    ))


def ensure_clip(
    conn: Connection,
    video_id: int,
    kind: str,
    start_frame: int,
    end_frame: int,
    start_time: float,
    end_time: float,
    split_hash: str = "",
) -> int:
    stmt = (
        insert(clips)
        .values(
            video_id=video_id, kind=kind, start_frame=start_frame, end_frame=end_frame,
            start_time_s=start_time, end_time_s=end_time, split_hash=split_hash,
        )
        .on_conflict_do_update(
            constraint="uq_clips_span", set_={"start_time_s": start_time, "end_time_s": end_time}
        )
        .returning(clips.c.id)
    )
    return conn.execute(stmt).scalar_one()


def whole_video_clip_id(conn: Connection, video_id: int) -> Optional[int]:
    return conn.execute(
        sa.select(clips.c.id).where(
            clips.c.video_id == video_id, clips.c.kind == WHOLE_VIDEO, clips.c.split_hash == ""
        ).order_by(clips.c.id.desc()).limit(1)
    ).scalar()


def record_split(
    conn: Connection, video_id: int, split_hash: str, method: str, config: dict[str, Any], n_clips: int
) -> None:
    """Remember that a video was split with these settings (also when no clip was kept)."""
    stmt = insert(video_splits).values(
        video_id=video_id, split_hash=split_hash, method=method, config=config, n_clips=n_clips
    )
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["video_id", "split_hash"], set_={"n_clips": n_clips, "config": config}
    ))


def split_clips(conn: Connection, video_id: int, split_hash: str) -> Optional[list[sa.Row]]:
    """The clips a split made, in time order; ``None`` when the video was never split so."""
    if split_hash == "":
        # The newest whole-video clip, as video_scores_wide shows (a merge may leave two).
        clip = conn.execute(
            sa.select(clips).where(clips.c.video_id == video_id, clips.c.split_hash == "",
                                   clips.c.kind == WHOLE_VIDEO).order_by(clips.c.id.desc())
        ).first()
        return None if clip is None else [clip]
    done = conn.execute(
        sa.select(video_splits.c.n_clips).where(
            video_splits.c.video_id == video_id, video_splits.c.split_hash == split_hash
        )
    ).scalar()
    if done is None:
        return None
    return list(conn.execute(
        sa.select(clips).where(clips.c.video_id == video_id, clips.c.split_hash == split_hash)
        .order_by(clips.c.start_frame)
    ))


def finished_scorers_of_clips(conn: Connection, clip_ids: list[int]) -> dict[int, set[tuple[str, str, str]]]:
    """Per clip, ``(scorer, config_hash, input_hash)`` already done: scored, or failed for good."""
    done: dict[int, set[tuple[str, str, str]]] = {clip_id: set() for clip_id in clip_ids}
    if not clip_ids:
        return done
    scored = sa.select(scores.c.clip_id, scores.c.scorer, scores.c.config_hash, scores.c.input_hash) \
        .where(scores.c.clip_id.in_(clip_ids)).distinct()
    failed = sa.select(scorer_failures.c.clip_id, scorer_failures.c.scorer, scorer_failures.c.config_hash,
                       scorer_failures.c.input_hash).where(scorer_failures.c.clip_id.in_(clip_ids))
    for clip_id, *key in [*conn.execute(scored), *conn.execute(failed)]:
        done[clip_id].add(tuple(key))
    return done


def register_inputs(conn: Connection, input_hash: str, inputs: dict[str, Any]) -> None:
    if not input_hash:
        return
    conn.execute(
        insert(score_inputs).values(input_hash=input_hash, inputs=inputs)
        .on_conflict_do_nothing(index_elements=["input_hash"])
    )


def register_scorer_config(conn: Connection, scorer: str, config_hash: str, config: dict[str, Any],
                           summary: Optional[str] = None) -> None:
    """Record what ``config_hash`` means (once); ``summary`` is its readable form
    (``vidqa.scoring.provenance.config_summary``), shown by the wide views' ``configs``."""
    values = {"config_hash": config_hash, "scorer": scorer, "config": config}
    if summary is not None:
        values["summary"] = summary
    conn.execute(insert(scorer_configs).values(**values).on_conflict_do_nothing(index_elements=["config_hash"]))


def write_scores(
    conn: Connection,
    clip_id: int,
    scorer: str,
    config_hash: str,
    values: dict[str, tuple[Optional[float], Optional[dict]]],
    run_id: Optional[uuid.UUID],
    input_hash: str = "",
) -> int:
    """Upsert one scorer's metrics for one clip; returns the number of rows written."""
    if not values:
        return 0
    rows = [
        {"clip_id": clip_id, "scorer": scorer, "config_hash": config_hash, "input_hash": input_hash,
         "metric": metric, "value": value, "details": details, "run_id": run_id}
        for metric, (value, details) in values.items()
    ]
    stmt = insert(scores).values(rows)
    stmt = stmt.on_conflict_do_update(
        constraint="uq_scores_identity",
        set_={"value": stmt.excluded.value, "details": stmt.excluded.details, "run_id": stmt.excluded.run_id},
    )
    conn.execute(stmt)
    conn.execute(
        scorer_failures.delete().where(
            scorer_failures.c.clip_id == clip_id,
            scorer_failures.c.scorer == scorer,
            scorer_failures.c.config_hash == config_hash,
            scorer_failures.c.input_hash == input_hash,
        )
    )
    return len(rows)


def write_scorer_failure(
    conn: Connection, clip_id: int, scorer: str, config_hash: str, reason: str, run_id: Optional[uuid.UUID],
    input_hash: str = "",
) -> None:
    stmt = insert(scorer_failures).values(
        clip_id=clip_id, scorer=scorer, config_hash=config_hash, input_hash=input_hash, reason=reason, run_id=run_id
    )
    conn.execute(
        stmt.on_conflict_do_update(
            constraint="uq_scorer_failures_identity", set_={"reason": reason, "run_id": run_id}
        )
    )


def video_rows(conn: Connection) -> list[dict[str, Any]]:
    cols = [c for c in videos.c if c.name != "probe"]
    return [dict(r._mapping) for r in conn.execute(sa.select(*cols).order_by(videos.c.uri, videos.c.id))]


def list_scores(
    conn: Connection, metrics: Optional[Iterable[str]] = None, scorer: Optional[str] = None,
    limit: Optional[int] = None,
) -> list[dict[str, Any]]:
    """Score records with their scorer configuration (``config``: the scorer_configs row)."""
    q = (
        sa.select(
            videos.c.uri.label("video"),
            clips.c.kind,
            clips.c.start_frame,
            clips.c.end_frame,
            scores.c.scorer,
            scores.c.config_hash,
            scorer_configs.c.config,
            scores.c.metric,
            scores.c.value,
        )
        .select_from(scores.join(clips, scores.c.clip_id == clips.c.id).join(videos, clips.c.video_id == videos.c.id)
                     .join(scorer_configs, scorer_configs.c.config_hash == scores.c.config_hash))
        .order_by(videos.c.uri, clips.c.start_frame, scores.c.scorer, scores.c.metric, scores.c.config_hash)
    )
    if metrics:
        q = q.where(scores.c.metric.in_(list(metrics)))
    if scorer:
        q = q.where(scores.c.scorer == scorer)
    if limit is not None:
        q = q.limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


def stored_metrics(conn: Connection) -> set[str]:
    return set(conn.execute(sa.select(scores.c.metric).distinct()).scalars())
