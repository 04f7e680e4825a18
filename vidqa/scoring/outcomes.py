"""What scoring a video came to, and a run's summary of them (printed by the CLI, kept in the
runs table, returned by the flows)."""

from __future__ import annotations

from typing import Iterable, Literal, Optional

from pydantic import BaseModel, Field


class VideoOutcome(BaseModel):
    uri: str
    status: Literal["scored", "skipped", "failed"]
    reason: Optional[str] = None
    scores_written: int = 0
    scorers_run: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    # True when the outcome comes from the ledger, not from work done in this run.
    from_ledger: bool = False
    clips: int = 0
    # A failure that a later run should try again (network, throttling).
    transient: bool = False
    # Scores computed from frames a max_frames cap shortened (details.capped says by how much).
    capped_scores: int = 0
    # Scored from stored frame embeddings (--from-embeddings): nothing fetched or decoded.
    from_embeddings: bool = False


class ShardResult(BaseModel):
    """A shard's outcomes. Prefect's result cache keeps it as plain JSON (``model_dump``), so
    a cached shard survives refactors of these classes."""

    outcomes: list[VideoOutcome] = Field(default_factory=list)


def failed_outcomes(uris: Iterable[str], reason: str) -> list[VideoOutcome]:
    """The outcomes of a shard that never finished: each video reported failed, not lost (the
    ledger lets the next run pick them up)."""
    return [VideoOutcome(uri=uri, status="failed", reason=reason) for uri in uris]


class RunSummary(BaseModel):
    run_id: str
    source: str
    n_videos: int = 0
    n_scored: int = 0
    n_skipped: int = 0
    n_failed: int = 0
    n_scores_written: int = 0
    n_clips: int = 0
    n_capped_scores: int = 0
    n_from_embeddings: int = 0  # videos scored from stored embeddings, none decoded
    wall_time_s: float = 0.0
    failures: list[dict[str, str]] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    # Incremental runs (ingest-new): videos listed, and those new or unfinished among them.
    n_listed: Optional[int] = None
    n_new: Optional[int] = None

    @classmethod
    def from_outcomes(
        cls, run_id: str, source: str, outcomes: Iterable[VideoOutcome], metrics: list[str], wall_time_s: float
    ) -> "RunSummary":
        s = cls(run_id=run_id, source=source, metrics=metrics, wall_time_s=wall_time_s)
        for o in outcomes:
            s.n_videos += 1
            s.n_scores_written += o.scores_written
            s.n_clips += o.clips
            s.n_capped_scores += o.capped_scores
            if o.status == "scored":
                s.n_scored += 1
                s.n_from_embeddings += o.from_embeddings
            elif o.status == "skipped":
                s.n_skipped += 1
            else:
                s.n_failed += 1
                s.failures.append({"uri": o.uri, "reason": o.reason or "unknown"})
        return s

    @property
    def succeeded(self) -> bool:
        """Something was scored now or earlier; a run fails only when nothing could be."""
        return self.n_scored + self.n_skipped > 0

    def counts(self) -> dict[str, int]:
        return {
            "n_videos": self.n_videos,
            "n_scored": self.n_scored,
            "n_skipped": self.n_skipped,
            "n_failed": self.n_failed,
            "n_scores_written": self.n_scores_written,
        }
