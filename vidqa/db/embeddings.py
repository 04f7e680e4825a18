"""Clip embeddings (``clip_embeddings``, ``embedding_models``): writing them, and whether this
database has pgvector (revision 0013 indexes the widths 512, 768 and 1024 where it does)."""

from __future__ import annotations

import uuid
from typing import Any, Optional

import numpy as np
import sqlalchemy as sa
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

