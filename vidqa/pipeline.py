"""The scoring path for a shard of videos: identify -> probe -> sample frames -> score -> persist.

The score tables are the ledger: a video whose scorers are all finished for the same
configuration is skipped before it is probed or decoded, and every write is an upsert,
so a rerun after a crash finishes the rest and never duplicates a row.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from sqlalchemy.engine import Engine

from vidqa.db import repository as repo
from vidqa.errors import VideoError
from vidqa.probe import VideoProbe, probe_video
from vidqa.sampling import SamplingSpec
from vidqa.scorers import ScoreItem, Scorer, build_scorer
from vidqa.storage import VideoRef, content_id, local_path

log = logging.getLogger(__name__)


@dataclass
class ScorerSpec:
    """A scorer by name and configuration: what crosses task boundaries (never the model)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class VideoOutcome:
    uri: str
    status: str  # scored | skipped | failed
    reason: Optional[str] = None
    scores_written: int = 0
    scorers_run: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # True when the outcome comes from the ledger, not from work done in this run.
    from_ledger: bool = False


@dataclass
class ShardResult:
    outcomes: list[VideoOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"outcomes": [asdict(o) for o in self.outcomes]}


def _identify(engine: Engine, ref: VideoRef) -> str:
    """Content id of the video's bytes; raises VideoError (transient) when it cannot be read."""
    with engine.connect() as conn:
        known = repo.known_content_id(conn, ref.uri, ref.size, ref.mtime)
    if known:
        return known
    try:
        return content_id(ref)
    except FileNotFoundError:
        raise VideoError("file not found", stage="read", transient=True) from None
    except PermissionError:
        raise VideoError("permission denied", stage="read", transient=True) from None
    except IsADirectoryError:
        raise VideoError("is a directory, not a file", stage="read") from None
    except OSError as exc:
        raise VideoError(f"cannot read: {exc.strerror or exc}", stage="read", transient=True) from None


def _record_failure(engine: Engine, ref: VideoRef, cid: str, exc: VideoError, run_id: Optional[uuid.UUID]) -> None:
    with engine.begin() as conn:
        repo.upsert_video(
            conn, ref.uri, cid, run_id,
            status="failed", failure_stage=exc.stage, failure_reason=exc.reason,
            failure_transient=exc.transient, size_bytes=ref.size, source_mtime=ref.mtime,
        )


def score_video(
    engine: Engine, ref: VideoRef, scorers: list[Scorer], run_id: Optional[uuid.UUID]
) -> VideoOutcome:
    started = time.perf_counter()
    outcome = _score_video(engine, ref, scorers, run_id)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _score_video(engine: Engine, ref: VideoRef, scorers: list[Scorer], run_id: Optional[uuid.UUID]) -> VideoOutcome:
    try:
        cid = _identify(engine, ref)
    except VideoError as exc:
        _record_failure(engine, ref, repo.UNREADABLE, exc, run_id)
        return VideoOutcome(ref.uri, "failed", exc.reason)

    with engine.connect() as conn:
        row = repo.find_video(conn, ref.uri, cid)
        if row is not None and row.status == "failed" and not row.failure_transient:
            return VideoOutcome(ref.uri, "failed", row.failure_reason, from_ledger=True)
        done: set[tuple[str, str]] = set()
        if row is not None and row.status == "ok":
            clip_id = repo.whole_video_clip_id(conn, row.id)
            done = repo.finished_scorers(conn, clip_id) if clip_id is not None else set()
    pending = [s for s in scorers if (s.name, s.config_hash) not in done]
    if not pending:
        return VideoOutcome(ref.uri, "skipped", "already scored", from_ledger=True)

    path = local_path(ref)
    try:
        probe = probe_video(path)
    except VideoError as exc:
        _record_failure(engine, ref, cid, exc, run_id)
        return VideoOutcome(ref.uri, "failed", exc.reason)

    with engine.begin() as conn:
        video_id = repo.upsert_video(
            conn, ref.uri, cid, run_id, status="ok", failure_stage=None, failure_reason=None,
            failure_transient=None, size_bytes=ref.size, source_mtime=ref.mtime, **probe.columns(),
        )
        clip_id = repo.ensure_clip(
            conn, video_id, repo.WHOLE_VIDEO, 0, probe.frame_count, 0.0, probe.duration_s
        )

    by_sampling: dict[SamplingSpec, list[Scorer]] = defaultdict(list)
    for scorer in pending:
        by_sampling[scorer.sampling].append(scorer)

    written = 0
    ran: list[str] = []
    for spec, group in by_sampling.items():
        try:
            frames = spec.sample(path, probe)  # decoded once, shared by the group
        except VideoError as exc:
            if len(by_sampling) == 1:
                _record_failure(engine, ref, cid, exc, run_id)
                return VideoOutcome(ref.uri, "failed", exc.reason)
            with engine.begin() as conn:
                for scorer in group:
                    _register(conn, scorer)
                    repo.write_scorer_failure(conn, clip_id, scorer.name, scorer.config_hash, exc.reason, run_id)
            continue
        item = ScoreItem(uri=ref.uri, probe=probe, frames=frames, fields=ref.fields)
        for scorer in group:
            (result,) = scorer.score([item])
            ran.append(scorer.name)
            with engine.begin() as conn:
                _register(conn, scorer)
                if isinstance(result, Exception):
                    repo.write_scorer_failure(conn, clip_id, scorer.name, scorer.config_hash, str(result), run_id)
                    continue
                frame_info = frames.summary()
                values = {
                    metric: (m.value, {**frame_info, **(m.details or {})})
                    for metric, m in result.items()
                }
                written += repo.write_scores(conn, clip_id, scorer.name, scorer.config_hash, values, run_id)
    return VideoOutcome(ref.uri, "scored", None, written, ran)


def _register(conn, scorer: Scorer) -> None:
    repo.register_scorer_config(conn, scorer.name, scorer.config_hash, scorer.identity())


def score_shard(
    engine: Engine, refs: list[VideoRef], specs: list[ScorerSpec], run_id: Optional[uuid.UUID]
) -> ShardResult:
    """Score every video of a shard; a bad video is recorded and the shard goes on."""
    scorers = [build_scorer(s.name, s.config) for s in specs]
    result = ShardResult()
    for ref in refs:
        result.outcomes.append(score_video(engine, ref, scorers, run_id))
    return result
