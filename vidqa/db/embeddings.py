"""Clip embeddings (``clip_embeddings``, ``embedding_models``): writing them, and whether this
database has pgvector (revision 0013 indexes the widths 512, 768 and 1024 where it does)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from vidqa.db.tables import clip_embeddings, embedding_models


def vector_installed(conn: Connection) -> bool:
    """pgvector is created in this database."""
    return conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first() is not None


def register_embedding_model(conn: Connection, model_hash: str, identity: dict[str, Any], dim: int,
                             summary: str) -> None:
    stmt = insert(embedding_models).values(model_hash=model_hash, identity=identity, dim=dim, summary=summary)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["model_hash"]))


def write_clip_embedding(
    conn: Connection,
    clip_id: int,
    model_hash: str,
    sampling_hash: str,
    sampling: dict[str, Any],
    embedding: np.ndarray,
    frame_indices: list[int],
    frame_embeddings: Optional[np.ndarray],
    run_id: Optional[uuid.UUID],
    frames: Optional[dict[str, Any]] = None,
) -> bool:
    """Store a clip's pooled embedding once per (clip, encoder, sampling); True when written now
    (a second scorer over the same frames finds it there)."""
    row = {
        "clip_id": clip_id, "model_hash": model_hash, "sampling_hash": sampling_hash, "sampling": sampling,
        "dim": int(embedding.shape[0]), "embedding": [float(v) for v in embedding],
        "frame_indices": [int(i) for i in frame_indices],
        "frame_embeddings": None if frame_embeddings is None else np.asarray(frame_embeddings, np.float64).tolist(),
        "run_id": run_id, "frames": frames,
    }
    stmt = insert(clip_embeddings).values(row).on_conflict_do_nothing(
        index_elements=["clip_id", "model_hash", "sampling_hash"])
    return conn.execute(stmt).rowcount > 0



VECTOR_HELP = (
    "{what} needs pgvector (the Postgres extension 'vector'), which this database does not have. "
    "Install pgvector on the server (the embedded Postgres ships it; managed services list it as 'vector'), "
    "run CREATE EXTENSION vector as a role that may, then create the HNSW index of the embeddings' width "
    "(README, Clip embeddings). Scoring and the stored embeddings work without it."
)


class VectorMissing(RuntimeError):
    """The database has no pgvector: a command that compares embeddings cannot run."""


def require_vector(conn: Connection, what: str) -> None:
    if not vector_installed(conn):
        raise VectorMissing(VECTOR_HELP.format(what=what))


@dataclass(frozen=True)
class EmbeddingSpace:
    """Embeddings that can be compared: one encoder, one sampling (so one width)."""

    model_hash: str
    sampling_hash: str
    dim: int
    identity: dict[str, Any]
    summary: str
    sampling: dict[str, Any]
    n_clips: int


def embedding_spaces(conn: Connection) -> list[EmbeddingSpace]:
    """Every (encoder, sampling) with stored embeddings, most clips first, then newest."""
    rows = conn.execute(sa.text(
        "SELECT e.model_hash, e.sampling_hash, m.dim, m.identity, m.summary, "
        "       (array_agg(e.sampling ORDER BY e.created_at DESC))[1] AS sampling, count(*) AS n_clips "
        "FROM clip_embeddings e JOIN embedding_models m ON m.model_hash = e.model_hash "
        "GROUP BY e.model_hash, e.sampling_hash, m.dim, m.identity, m.summary "
        "ORDER BY count(*) DESC, max(e.created_at) DESC")).mappings().all()
    return [EmbeddingSpace(**row) for row in rows]


def resolve_space(conn: Connection, model: Optional[str] = None) -> EmbeddingSpace:
    """The embeddings to compare: those of the encoder whose model_hash or summary starts with
    ``model`` (default: any), the (encoder, sampling) with most clips among them."""
    spaces = embedding_spaces(conn)
    if not spaces:
        raise LookupError("no clip embeddings are stored: score with -s embedding (or EMScore, text_video, "
                          "aesthetic: the CLIP scorers store them as they go) first")
    chosen = [s for s in spaces if model is None or s.model_hash.startswith(model) or s.summary.startswith(model)]
    if not chosen:
        known = "; ".join(f"{s.summary}: {s.n_clips} clips" for s in spaces)
        raise LookupError(f"no stored clip embeddings match model {model!r} (stored: {known})")
    return chosen[0]


def search(conn: Connection, query: np.ndarray, k: int, space: EmbeddingSpace,
           predicate: Optional[str] = None) -> list[dict[str, Any]]:
    """``vidqa_search`` (revision 0014), each clip with ``scores``: its latest value of every
    metric (the wide views' rule, read for these clips only: the views compute over every
    score). ``predicate`` (already checked by ``vidqa.db.export.check_predicate``) is a
    condition over ``clip_scores_wide`` that limits the clips searched (an exact scan of those
    instead of the index). Runs read-only, as export does: the predicate is user text. Call it
    first in a transaction."""
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    candidates = "NULL" if predicate is None else f"ARRAY(SELECT w.clip_id FROM clip_scores_wide w WHERE {predicate})"
    stmt = sa.text(
        f"SELECT * FROM vidqa_search(CAST(CAST(:q AS vector) AS real[]), :k, :m, {candidates}, :s) ORDER BY rank"
    ).bindparams(sa.bindparam("q", type_=Vector(space.dim)))
    rows = [dict(r) for r in conn.execute(stmt, {"q": np.asarray(query, dtype=np.float32), "k": k,
                                                 "m": space.model_hash, "s": space.sampling_hash}).mappings()]
    scores: dict[int, dict[str, Optional[float]]] = {r["clip_id"]: {} for r in rows}
    latest = conn.execute(sa.text(
        "SELECT DISTINCT ON (s.clip_id, s.metric) s.clip_id, s.metric, NULLIF(s.value, 'NaN'::float8) "
        "FROM scores s WHERE s.clip_id = ANY(:ids) ORDER BY s.clip_id, s.metric, s.created_at DESC, s.id DESC"),
        {"ids": list(scores)})
    for clip_id, metric, value in latest:
        scores[clip_id][metric] = value
    return [{**r, "scores": scores[r["clip_id"]]} for r in rows]


def read_frame_embeddings(conn: Connection, clip_id: int, model_hash: str,
                          sampling_hash: str) -> Optional[dict[str, Any]]:
    """A clip's stored frame embeddings and frames summary under one encoder and sampling;
    None when none are stored (or only the pooled embedding is)."""
    row = conn.execute(sa.select(clip_embeddings.c.frame_indices, clip_embeddings.c.frame_embeddings,
                                 clip_embeddings.c.frames).where(
        clip_embeddings.c.clip_id == clip_id, clip_embeddings.c.model_hash == model_hash,
        clip_embeddings.c.sampling_hash == sampling_hash)).mappings().first()
    return None if row is None or row["frame_embeddings"] is None else dict(row)
