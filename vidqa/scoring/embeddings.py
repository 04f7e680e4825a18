"""Clip embeddings as a by-product of scoring: when a CLIP scorer has encoded a clip's frames,
their pooled embedding is stored once per (clip, encoder, sampling)."""

from __future__ import annotations

import logging
import uuid
from typing import Optional

import numpy as np
from sqlalchemy.engine import Connection

from vidqa.config import get_settings
from vidqa.db import embeddings as store
from vidqa.hashing import stable_hash
from vidqa.metrics.pooling import pooled_embedding, unit_rows
from vidqa.scorers import Scorer
from vidqa.video.decode import Frames

log = logging.getLogger(__name__)


def encoder_summary(identity: dict) -> str:
    name, pretrained = identity.get("name", "?"), identity.get("pretrained")
    return f"{name}@{pretrained}" if pretrained else f"{name} (random init)"


def store_clip_embedding(conn: Connection, clip_id: int, scorer: Scorer, frames: Frames,
                         run_id: Optional[uuid.UUID]) -> bool:
    """Store the pooled embedding of ``frames`` when ``scorer`` just encoded them (its resident
    CLIP is the one their embeddings came from); True when a row was written."""
    settings = get_settings()
    kept = frames.derived.get("clip_embeddings")
    if not settings.store_embeddings or kept is None or kept[0] is not scorer.models.get("clip"):
        return False
    model, per_frame = kept
    per_frame = per_frame.detach().float().cpu().numpy().astype(np.float64)
    try:
        pooled = pooled_embedding(per_frame)
    except ValueError as exc:  # no direction to keep; the clip's scores are written all the same
        log.warning("clip %d: no embedding stored: %s", clip_id, exc)
        return False
    identity = model.identity()
    model_hash = stable_hash(identity)
    sampling = scorer.sampling.model_dump(mode="json")
    store.register_embedding_model(conn, model_hash, identity, per_frame.shape[1],
                                   f"{encoder_summary(identity)} ({model_hash[:8]})")
    return store.write_clip_embedding(
        conn, clip_id, model_hash, stable_hash(sampling), sampling, pooled,
        frames.indices.tolist(), unit_rows(per_frame) if settings.store_frame_embeddings else None, run_id,
        frames.summary())
