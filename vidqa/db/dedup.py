"""Near-duplicate groups (``dedup_settings``, ``duplicate_groups``; revision 0014): which clips
a setting has compared, their neighbours through the HNSW index, and each group's keeper."""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from vidqa.db.embeddings import EmbeddingSpace
from vidqa.db.tables import dedup_settings, duplicate_groups

# pg_advisory_xact_lock namespace of dedup runs: b"vidqadd" read as an integer.
DEDUP_LOCK_KEY = int.from_bytes(b"vidqadd", "big")


def lock_setting(conn: Connection, dedup_key: str) -> None:
    """Serialise dedup runs of one setting (until the transaction ends)."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))"),
                 {"ns": DEDUP_LOCK_KEY % 2**31, "key": dedup_key})


def upsert_setting(conn: Connection, dedup_key: str, space: EmbeddingSpace, threshold: float, keep_by: str,
                   neighbours: int) -> None:
    """Record this run of the setting (it becomes the current deduplication)."""
    stmt = insert(dedup_settings).values(dedup_key=dedup_key, model_hash=space.model_hash,
                                         sampling_hash=space.sampling_hash, threshold=threshold, keep_by=keep_by,
                                         neighbours=neighbours)
    conn.execute(stmt.on_conflict_do_update(index_elements=["dedup_key"], set_={
        "keep_by": keep_by, "neighbours": neighbours, "updated_at": sa.func.clock_timestamp()}))


def uncompared_clips(conn: Connection, dedup_key: str, space: EmbeddingSpace) -> list[int]:
    """Clips with an embedding in ``space`` that this setting has not compared yet."""
    return list(conn.execute(sa.text(
        "SELECT e.clip_id FROM clip_embeddings e WHERE e.model_hash = :m AND e.sampling_hash = :s "
        "AND NOT EXISTS (SELECT 1 FROM duplicate_groups g WHERE g.dedup_key = :key AND g.clip_id = e.clip_id) "
        "ORDER BY e.clip_id"), {"m": space.model_hash, "s": space.sampling_hash, "key": dedup_key}).scalars())


def content_pairs(conn: Connection, clip_ids: list[int], space: EmbeddingSpace) -> list[tuple[int, int]]:
    """Pairs of clips in ``space`` that are the same frames of the same video (one span under
    two split settings), one of them in ``clip_ids``."""
    return [tuple(r) for r in conn.execute(sa.text(
        "SELECT a.id, b.id FROM clips a JOIN clips b ON b.video_id = a.video_id AND b.start_frame = a.start_frame "
        "AND b.end_frame = a.end_frame AND b.id <> a.id "
        "JOIN clip_embeddings eb ON eb.clip_id = b.id AND eb.model_hash = :m AND eb.sampling_hash = :s "
        "WHERE a.id = ANY(:ids)"), {"ids": clip_ids, "m": space.model_hash, "s": space.sampling_hash})]


def neighbour_pairs(conn: Connection, clip_ids: list[int], space: EmbeddingSpace, k: int,
                    threshold: float) -> list[tuple[int, int, float]]:
    """``(clip, neighbour, cosine similarity)`` for each of ``clip_ids`` and its ``k`` nearest
    clips in ``space`` (through the HNSW index of the width) that are at least ``threshold``
    similar. Clips of one video whose spans overlap are not neighbours: a video and its own
    scenes are one footage, not copies."""
    d = int(space.dim)
    # The index holds every encoder of this width: look further when several share it.
    sharing = conn.execute(sa.text("SELECT count(*) FROM embedding_models WHERE dim = :d"), {"d": d}).scalar()
    conn.execute(sa.text("SELECT set_config('hnsw.ef_search', :ef, true)"),
                 {"ef": str(min(1000, max(40, k + 1) * max(1, sharing)))})
    rows = conn.execute(sa.text(
        "SELECT q.clip_id, n.clip_id, 1 - n.dist FROM clip_embeddings q JOIN clips qc ON qc.id = q.clip_id "
        "CROSS JOIN LATERAL ("
        f"  SELECT e.clip_id, e.embedding::vector({d}) <=> q.embedding::vector({d}) AS dist "
        "   FROM clip_embeddings e "
        f"  WHERE e.dim = {d} AND e.model_hash = :m AND e.sampling_hash = :s AND e.clip_id <> q.clip_id "
        f"  ORDER BY e.embedding::vector({d}) <=> q.embedding::vector({d}) LIMIT :k) n "
        "JOIN clips nc ON nc.id = n.clip_id "
        "WHERE q.clip_id = ANY(:ids) AND q.model_hash = :m AND q.sampling_hash = :s AND n.dist <= 1 - :t "
        "AND NOT (nc.video_id = qc.video_id AND nc.start_frame < qc.end_frame AND qc.start_frame < nc.end_frame)"),
        {"ids": clip_ids, "m": space.model_hash, "s": space.sampling_hash, "k": k, "t": threshold})
    return [(int(a), int(b), float(sim)) for a, b, sim in rows]


def groups_of(conn: Connection, dedup_key: str, clip_ids: Iterable[int]) -> dict[int, int]:
    """``{clip: group}`` of the clips already compared, and every member of their groups."""
    rows = conn.execute(sa.text(
        "SELECT g.clip_id, g.group_id FROM duplicate_groups g WHERE g.dedup_key = :key AND g.group_id IN ("
        "  SELECT x.group_id FROM duplicate_groups x WHERE x.dedup_key = :key AND x.clip_id = ANY(:ids))"),
        {"key": dedup_key, "ids": list(clip_ids)})
    return {int(c): int(g) for c, g in rows}


def write_members(conn: Connection, dedup_key: str, members: dict[int, int]) -> None:
    """Place each clip in its group (new clips start as their group's only member)."""
    rows = [{"dedup_key": dedup_key, "clip_id": c, "group_id": g, "similarity": 1.0, "reason": "unique"}
            for c, g in members.items()]
    for start in range(0, len(rows), 5000):
        stmt = insert(duplicate_groups).values(rows[start:start + 5000])
        conn.execute(stmt.on_conflict_do_update(index_elements=["dedup_key", "clip_id"],
                                                set_={"group_id": stmt.excluded.group_id}))


def choose_keepers(conn: Connection, dedup_key: str, space: EmbeddingSpace, keep_by: str) -> None:
    """Pick each group's keeper and set its members' ``duplicate_of``, ``similarity`` and
    ``reason``.

    The keeper is the member with the highest latest ``keep_by`` score (NaN and missing last),
    then the longest clip, then the oldest (first stored), then the lowest clip id."""
    d = int(space.dim)
    conn.execute(sa.text(
        "WITH m AS ("
        "  SELECT g.clip_id, g.group_id, c.video_id, c.start_frame, c.end_frame, "
        "         c.end_time_s - c.start_time_s AS duration, c.created_at, "
        "         (SELECT s.value FROM scores s WHERE s.clip_id = g.clip_id AND s.metric = :keep_by "
        "           AND s.value <> 'NaN'::float8 ORDER BY s.created_at DESC, s.id DESC LIMIT 1) AS merit "
        "  FROM duplicate_groups g JOIN clips c ON c.id = g.clip_id WHERE g.dedup_key = :key "
        # Groups of one stay 'unique' (as written) unless they were more once (a member deleted).
        "    AND g.group_id IN (SELECT x.group_id FROM duplicate_groups x WHERE x.dedup_key = :key "
        "      GROUP BY x.group_id HAVING count(*) > 1 OR bool_or(x.reason <> 'unique'))), "
        "k AS (SELECT DISTINCT ON (group_id) group_id, clip_id AS keeper, video_id, start_frame, end_frame "
        "      FROM m ORDER BY group_id, merit DESC NULLS LAST, duration DESC, created_at, clip_id), "
        "n AS (SELECT group_id, count(*) AS size FROM m GROUP BY group_id) "
        "UPDATE duplicate_groups g SET "
        "  duplicate_of = CASE WHEN m.clip_id = k.keeper THEN NULL ELSE k.keeper END, "
        "  similarity = CASE WHEN m.clip_id = k.keeper THEN 1 "
        f"    ELSE 1 - (me.embedding::vector({d}) <=> ke.embedding::vector({d})) END, "
        "  reason = CASE WHEN n.size = 1 THEN 'unique' WHEN m.clip_id = k.keeper THEN 'keeper' "
        "    WHEN m.video_id = k.video_id AND m.start_frame = k.start_frame AND m.end_frame = k.end_frame "
        "    THEN 'content' ELSE 'embedding' END "
        "FROM m JOIN k USING (group_id) JOIN n USING (group_id) "
        "JOIN clip_embeddings me ON me.clip_id = m.clip_id AND me.model_hash = :mh AND me.sampling_hash = :sh "
        "JOIN clip_embeddings ke ON ke.clip_id = k.keeper AND ke.model_hash = :mh AND ke.sampling_hash = :sh "
        "WHERE g.dedup_key = :key AND g.clip_id = m.clip_id"),
        {"key": dedup_key, "keep_by": keep_by, "mh": space.model_hash,
         "sh": space.sampling_hash})


def update_counts(conn: Connection, dedup_key: str) -> dict[str, int]:
    counts = conn.execute(sa.text(
        "SELECT count(*) AS n_clips, count(DISTINCT group_id) FILTER (WHERE reason <> 'unique') AS n_groups, "
        "count(duplicate_of) AS n_duplicates FROM duplicate_groups WHERE dedup_key = :key"),
        {"key": dedup_key}).mappings().one()
    conn.execute(sa.update(dedup_settings).where(dedup_settings.c.dedup_key == dedup_key).values(**counts))
    return dict(counts)


def largest_groups(conn: Connection, dedup_key: str, limit: int = 10) -> list[dict[str, Any]]:
    """The largest groups, biggest first: keeper, size and members with their similarity."""
    rows = conn.execute(sa.text(
        "SELECT g.group_id, count(*) AS size, "
        "  max(g.clip_id) FILTER (WHERE g.reason = 'keeper') AS keeper, "
        "  min(g.similarity) AS min_similarity, "
        "  jsonb_agg(jsonb_build_object('clip_id', g.clip_id, 'uri', v.uri, 'start_time_s', c.start_time_s, "
        "    'end_time_s', c.end_time_s, 'similarity', g.similarity, 'reason', g.reason) "
        "    ORDER BY g.duplicate_of NULLS FIRST, g.similarity DESC, g.clip_id) AS members "
        "FROM duplicate_groups g JOIN clips c ON c.id = g.clip_id JOIN videos v ON v.id = c.video_id "
        "WHERE g.dedup_key = :key AND g.reason <> 'unique' "
        "GROUP BY g.group_id ORDER BY count(*) DESC, g.group_id LIMIT :limit"),
        {"key": dedup_key, "limit": limit}).mappings().all()
    return [dict(r) for r in rows]
