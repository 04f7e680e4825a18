"""Clip embeddings (``clip_embeddings``, ``embedding_models``): writing them, and whether this
server can index and search them (pgvector)."""

from __future__ import annotations

import uuid
from typing import Any, Optional

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from vidqa.db.tables import clip_embeddings, embedding_models

# Widths with an HNSW index (revision 0013): ViT-B, ViT-L, ViT-H; other widths are stored and
# searched without one.
INDEXED_DIMS = (512, 768, 1024)
INSTALL_VECTOR = ("install pgvector on the server (https://github.com/pgvector/pgvector; most managed Postgres "
                  "services have it) and run `CREATE EXTENSION vector` as a superuser")


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
) -> bool:
    """Store a clip's pooled embedding once per (clip, encoder, sampling); True when written now
    (a second scorer over the same frames finds it there)."""
    row = {
        "clip_id": clip_id, "model_hash": model_hash, "sampling_hash": sampling_hash, "sampling": sampling,
        "dim": int(embedding.shape[0]), "embedding": [float(v) for v in embedding],
        "frame_indices": [int(i) for i in frame_indices],
        "frame_embeddings": None if frame_embeddings is None else np.asarray(frame_embeddings, np.float64).tolist(),
        "run_id": run_id,
    }
    stmt = insert(clip_embeddings).values(row).on_conflict_do_nothing(
        index_elements=["clip_id", "model_hash", "sampling_hash"])
    return conn.execute(stmt).rowcount > 0


def stored_embeddings(conn: Connection, model_hash: Optional[str] = None) -> list[sa.Row]:
    """Every stored clip embedding (of one encoder when given), by clip."""
    query = sa.select(clip_embeddings).order_by(clip_embeddings.c.clip_id, clip_embeddings.c.sampling_hash)
    if model_hash is not None:
        query = query.where(clip_embeddings.c.model_hash == model_hash)
    return list(conn.execute(query))
