"""A clip's embedding from its frames' embeddings (what ``clip_embeddings`` stores).

.. math:: e = \\frac{\\bar f}{\\lVert \\bar f \\rVert_2}, \\qquad
          \\bar f = \\frac{1}{T} \\sum_{t=1}^{T} \\frac{f_t}{\\lVert f_t \\rVert_2}

in float64: the mean of the L2-normalised frame embeddings, normalised again (Cosmos-Curate
and NeMo Curator pool clip embeddings the same way for semantic deduplication).
"""

from __future__ import annotations

import numpy as np


def unit_rows(frames: np.ndarray) -> np.ndarray:
    """Each row of ``(T, D)`` divided by its L2 norm (float64); a zero row stays zero."""
    x = np.asarray(frames, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def pooled_embedding(frames: np.ndarray) -> np.ndarray:
    """The unit mean direction of ``(T, D)`` frame embeddings, ``(D,)`` float64. Raises
    ValueError for no frames, or frames whose mean direction is zero (opposite frames)."""
    if len(frames) == 0:
        raise ValueError("no frame embeddings to pool")
    mean = unit_rows(frames).mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm == 0:
        raise ValueError("the frames' embeddings cancel out: their mean has no direction")
    return mean / norm
