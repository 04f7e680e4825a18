"""Near-duplicate clips: groups of clips whose pooled embeddings are at least ``threshold``
cosine-similar, one keeper per group.

How a run works (``vidqa dedup``):

1. The embeddings compared are one encoder's under one sampling (:func:`resolve_space`:
   ``--model`` picks the encoder; the sampling with most clips is used).
2. Clips this setting (encoder, sampling, threshold) has not compared yet are the new ones;
   a rerun compares only those (each against the index of every stored clip, new and old),
   so adding clips costs their lookups, not all pairs.
3. Edges: the same frames of the same video (a span stored under two split settings) are
   exact duplicates; otherwise a clip's ``neighbours`` nearest clips by cosine similarity,
   through pgvector's HNSW index, that reach the threshold. Clips of one video whose spans
   overlap are never an edge (a video and its own scenes).
4. Groups are the connected components of the edges with the groups already stored
   (so a chain a~b, b~c is one group, as in transitive dedup; a new clip can merge two
   groups). A group is named by its lowest clip id.
5. Every group's keeper is chosen again (scores may have changed since): the highest latest
   ``keep_by`` score (default ``aesthetic``), else the longest clip, else the oldest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy.engine import Engine

from vidqa.db import dedup as store
from vidqa.db.embeddings import EmbeddingSpace, require_vector, resolve_space
from vidqa.hashing import stable_hash

DEFAULT_THRESHOLD = 0.95
DEFAULT_KEEP_BY = "aesthetic"
DEFAULT_NEIGHBOURS = 50


@dataclass
class DedupResult:
    dedup_key: str
    space: EmbeddingSpace
    threshold: float
    keep_by: str
    compared: int  # clips compared in this run (the new ones)
    edges: int
    n_clips: int
    n_groups: int
    n_duplicates: int
    largest: list[dict[str, Any]] = field(default_factory=list)


def dedup_key(space: EmbeddingSpace, threshold: float) -> str:
    return stable_hash({"model_hash": space.model_hash, "sampling_hash": space.sampling_hash,
                        "threshold": float(threshold)})


def components(members: dict[int, int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """``{clip: group}``: connected components of the stored groups (``members``:
    ``{clip: group}``) and the new edges, each named by its lowest clip id."""
    nodes = sorted(set(members) | {c for e in edges for c in e} | set(members.values()))
    index = {c: n for n, c in enumerate(nodes)}
    pairs = [(index[c], index[g]) for c, g in members.items()] + [(index[a], index[b]) for a, b in edges]
    if pairs:
        rows, cols = np.array(pairs, dtype=np.int64).T
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    lowest: dict[int, int] = {}
    for c, label in zip(nodes, labels):
        lowest.setdefault(int(label), c)  # nodes are sorted: the first seen is the lowest
    return {c: lowest[int(label)] for c, label in zip(nodes, labels)}


def deduplicate(
    engine: Engine,
    threshold: float = DEFAULT_THRESHOLD,
    model: Optional[str] = None,
    keep_by: str = DEFAULT_KEEP_BY,
    neighbours: int = DEFAULT_NEIGHBOURS,
    batch_size: int = 500,
    progress: Optional[Callable[[int, int], None]] = None,
) -> DedupResult:
    """Compare the clips not yet compared under this setting and update the groups (one
    transaction; concurrent runs of one setting queue)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if neighbours < 1:
        raise ValueError(f"neighbours must be at least 1, got {neighbours}")
    with engine.begin() as conn:
        require_vector(conn, "vidqa dedup")
        space = resolve_space(conn, model)
        key = dedup_key(space, threshold)
        store.lock_setting(conn, key)
        store.upsert_setting(conn, key, space, threshold, keep_by, neighbours)
        new = store.uncompared_clips(conn, key, space)
        edges: list[tuple[int, int]] = []
        for start in range(0, len(new), batch_size):
            chunk = new[start:start + batch_size]
            edges += store.content_pairs(conn, chunk, space)
            edges += [(a, b) for a, b, _ in store.neighbour_pairs(conn, chunk, space, neighbours, threshold)]
            if progress:
                progress(min(start + batch_size, len(new)), len(new))
        touched = set(new) | {c for e in edges for c in e}
        before = store.groups_of(conn, key, touched)
        after = components({**before, **{c: c for c in new if c not in before}}, edges)
        changed = {c: g for c, g in after.items() if before.get(c) != g}
        store.write_members(conn, key, changed)
        store.choose_keepers(conn, key, space, keep_by)
        counts = store.update_counts(conn, key)
        largest = store.largest_groups(conn, key)
    return DedupResult(dedup_key=key, space=space, threshold=threshold, keep_by=keep_by, compared=len(new),
                       edges=len(edges), largest=largest, **counts)
