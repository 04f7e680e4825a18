"""Aggregate shard outcomes into the run summary that the CLI prints and the runs table keeps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable


@dataclass
class RunSummary:
    run_id: str
    source: str
    n_videos: int = 0
    n_scored: int = 0
    n_skipped: int = 0
    n_failed: int = 0
    n_scores_written: int = 0
    n_clips: int = 0
    wall_time_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    @classmethod
    def from_outcomes(
        cls, run_id: str, source: str, outcomes: Iterable[dict[str, Any]], metrics: list[str], wall_time_s: float
    ) -> "RunSummary":
        s = cls(run_id=run_id, source=source, metrics=metrics, wall_time_s=wall_time_s)
        for o in outcomes:
            s.n_videos += 1
            s.n_scores_written += o["scores_written"]
            s.n_clips += o.get("clips", 0)
            if o["status"] == "scored":
                s.n_scored += 1
            elif o["status"] == "skipped":
                s.n_skipped += 1
            else:
                s.n_failed += 1
                s.failures.append({"uri": o["uri"], "reason": o["reason"] or "unknown"})
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
