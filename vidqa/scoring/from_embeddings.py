"""Scoring from stored frame embeddings (``vidqa run ... --from-embeddings``): a clip's frames
are the per-frame CLIP embeddings an earlier run stored (``VIDQA_STORE_FRAME_EMBEDDINGS=1``)
under the scorer's encoder and sampling, so new texts are scored against every stored clip
with no video fetched or decoded. The scores are the rows a decoded run writes: same scorer
configuration, inputs and frames summary in the details."""

from __future__ import annotations

from typing import Optional

import numpy as np
from sqlalchemy.engine import Connection

from vidqa.db.embeddings import read_frame_embeddings
from vidqa.hashing import stable_hash
from vidqa.scorers import Scorer
from vidqa.video.decode import Frames


def refusals(scorers: list[Scorer]) -> list[str]:
    """Why each scorer that cannot score from stored embeddings cannot."""
    return [why for why in (s.from_embeddings_refusal() for s in scorers) if why]


def embedding_keys(scorer: Scorer) -> tuple[str, str]:
    """``(model_hash, sampling_hash)`` the scorer's frame embeddings are stored under, named
    before its model loads (the identity a CLIP has before loading is the one it has after)."""
    identity = scorer.declared_weights["clip"].identity()
    return stable_hash(identity), stable_hash(scorer.sampling.model_dump(mode="json"))


def stored_frames(conn: Connection, clip_id: int, scorer: Scorer) -> Optional[Frames]:
    """The clip's frames as its stored embeddings (no pixels), or None when none are stored."""
    model_hash, sampling_hash = embedding_keys(scorer)
    row = read_frame_embeddings(conn, clip_id, model_hash, sampling_hash)
    if row is None:
        return None
    indices = np.asarray(row["frame_indices"], dtype=np.int64)
    summary = row["frames"] or {}
    frames = Frames(
        array=np.zeros((len(indices), 0, 0, 3), dtype=np.uint8), indices=indices,
        timestamps=np.full(len(indices), np.nan), requested=int(summary.get("requested", len(indices))),
        missing_indices=list(summary.get("skipped_corrupt", [])), capped=int(summary.get("capped", 0)))
    import torch  # here, not at module level: a shard without CLIP scorers never loads torch

    from vidqa.scorers.clip_based import StoredEmbeddings

    frames.derived["clip_embeddings"] = (StoredEmbeddings(model_hash),
                                         torch.tensor(row["frame_embeddings"], dtype=torch.float32))
    return frames
