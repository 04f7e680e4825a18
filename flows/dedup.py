"""Near-duplicate clips from the stored embeddings: find groups -> publish the largest."""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow
from pydantic import BaseModel, Field

from tasks.curation import find_duplicates, publish_dedup_report
from vidqa.curation.dedup import DEFAULT_KEEP_BY, DEFAULT_NEIGHBOURS, DEFAULT_THRESHOLD


class DedupParams(BaseModel):
    """Parameters of a dedup run (rendered as a form in the Prefect UI)."""

    threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=1, title="Similarity threshold",
                             description="Two clips are duplicates when their embeddings' cosine similarity is at "
                             "least this.")
    model: Optional[str] = Field(None, title="Encoder", description="A model_hash or summary prefix of "
                                 "embedding_models; empty: the encoder with most stored clips.")
    keep_by: str = Field(DEFAULT_KEEP_BY, title="Keep by metric", description="The metric whose highest value keeps "
                         "a clip of each group (then the longest, then the oldest).")
    neighbours: int = Field(DEFAULT_NEIGHBOURS, ge=1, le=1000, title="Neighbours per clip",
                            description="Nearest clips looked up per new clip.")


@flow(name="dedup")
def dedup(params: DedupParams = DedupParams()) -> dict[str, Any]:
    """Group near-duplicate clips (only clips not yet compared are looked up) and publish the
    largest groups; `duplicate_of` in the wide views says which clip each duplicate repeats."""
    result = find_duplicates(params.threshold, params.model, params.keep_by, params.neighbours)
    publish_dedup_report(result)
    return {"dedup_key": result.dedup_key, "compared": result.compared, "clips": result.n_clips,
            "groups": result.n_groups, "duplicates": result.n_duplicates}
