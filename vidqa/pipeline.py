"""The scoring path for a shard of videos: identify -> fetch -> probe -> split -> sample frames
-> score -> persist.

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

from vidqa.clips import ClipSpan, ClipSpec, split_video
from vidqa.db import repository as repo
from vidqa.errors import VideoError
from vidqa.probe import VideoProbe, probe_video
from vidqa.sampling import SamplingSpec
from vidqa.scorers import ScoreItem, Scorer, build_scorer
from vidqa.storage import Storage, VideoRef

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
    clips: int = 0


@dataclass
class ShardResult:
    outcomes: list[VideoOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"outcomes": [asdict(o) for o in self.outcomes]}


def _identify(engine: Engine, storage: Storage, ref: VideoRef) -> tuple[VideoRef, str]:
    """The ref with the store's metadata, and the content id of its bytes.

    Raises VideoError when the bytes cannot be reached. A local file whose size and mtime
    match the ledger is not hashed again; an object's id is its ETag, so identifying it
    never downloads it.
    """
    ref = storage.resolve(ref)
    if not ref.is_remote:
        with engine.connect() as conn:
            known = repo.known_content_id(conn, ref.uri, ref.size, ref.mtime)
        if known:
            return ref, known
    return ref, storage.content_id(ref)


def _record_failure(engine: Engine, ref: VideoRef, cid: str, exc: VideoError, run_id: Optional[uuid.UUID]) -> None:
    with engine.begin() as conn:
        repo.upsert_video(
            conn, ref.uri, cid, run_id,
            status="failed", failure_stage=exc.stage, failure_reason=exc.reason,
            failure_transient=exc.transient, size_bytes=ref.size, source_mtime=ref.mtime,
        )


def score_video(
    engine: Engine,
    ref: VideoRef,
    scorers: list[Scorer],
    run_id: Optional[uuid.UUID],
    clip_spec: ClipSpec = ClipSpec(),
    storage: Optional[Storage] = None,
) -> VideoOutcome:
    started = time.perf_counter()
    outcome = _score_video(engine, storage or Storage(), ref, scorers, clip_spec, run_id)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _all_finished(conn, clip_rows, scorers: list[Scorer]) -> bool:
    for clip in clip_rows:
        done = repo.finished_scorers(conn, clip.id)
        if any((s.name, s.config_hash) not in done for s in scorers):
            return False
    return True


def _score_video(
    engine: Engine, storage: Storage, ref: VideoRef, scorers: list[Scorer], clip_spec: ClipSpec,
    run_id: Optional[uuid.UUID],
) -> VideoOutcome:
    try:
        ref, cid = _identify(engine, storage, ref)
    except VideoError as exc:
        _record_failure(engine, ref, repo.UNREADABLE, exc, run_id)
        return VideoOutcome(ref.uri, "failed", exc.reason)

    with engine.connect() as conn:
        row = repo.find_video(conn, ref.uri, cid)
        if row is not None and row.status == "failed" and not row.failure_transient:
            return VideoOutcome(ref.uri, "failed", row.failure_reason, from_ledger=True)
        if row is not None and row.status == "ok":
            known_clips = repo.split_clips(conn, row.id, clip_spec.split_hash)
            if known_clips is not None and _all_finished(conn, known_clips, scorers):
                return VideoOutcome(ref.uri, "skipped", "already scored", from_ledger=True)

    # Only now are the bytes needed: fetch (remote), probe, split, decode, score.
    try:
        with storage.local_file(ref) as path:
            return _score_local(engine, ref, cid, path, scorers, clip_spec, run_id)
    except VideoError as exc:
        _record_failure(engine, ref, cid, exc, run_id)
        return VideoOutcome(ref.uri, "failed", exc.reason)


def _clips_for(engine: Engine, video_id: int, path: str, probe: VideoProbe, spec: ClipSpec) -> list[ClipSpan]:
    """The video's clips under ``spec``: from the ledger, or split now and recorded."""
    with engine.connect() as conn:
        known = repo.split_clips(conn, video_id, spec.split_hash)
    if known is not None:
        return [ClipSpan(c.kind, c.start_frame, c.end_frame, c.start_time_s, c.end_time_s) for c in known]
    try:
        spans = split_video(path, probe, spec)
    except VideoError:
        raise
    except Exception as exc:  # a detector crash is this video's failure, not the run's
        raise VideoError(f"splitting into clips failed: {type(exc).__name__}: {exc}", stage="split") from exc
    with engine.begin() as conn:
        repo.record_split(conn, video_id, spec.split_hash, spec.method, spec.model_dump(mode="json"), len(spans))
    return spans


def _score_local(
    engine: Engine, ref: VideoRef, cid: str, path: str, scorers: list[Scorer], clip_spec: ClipSpec,
    run_id: Optional[uuid.UUID],
) -> VideoOutcome:
    probe = probe_video(path)
    with engine.begin() as conn:
        video_id = repo.upsert_video(
            conn, ref.uri, cid, run_id, status="ok", failure_stage=None, failure_reason=None,
            failure_transient=None, size_bytes=ref.size, source_mtime=ref.mtime, **probe.columns(),
        )
        # The whole video is always a clip: it carries whole-video scores and anchors splits.
        repo.ensure_clip(conn, video_id, repo.WHOLE_VIDEO, 0, probe.frame_count, 0.0, probe.duration_s)

    spans = _clips_for(engine, video_id, path, probe, clip_spec)
    whole_video_only = clip_spec.method == "none"
    written = 0
    ran: list[str] = []
    for span in spans:
        with engine.begin() as conn:
            clip_id = repo.ensure_clip(conn, video_id, span.kind, span.start_frame, span.end_frame,
                                       span.start_s, span.end_s, clip_spec.split_hash)
            done = repo.finished_scorers(conn, clip_id)
        pending = [s for s in scorers if (s.name, s.config_hash) not in done]
        by_sampling: dict[SamplingSpec, list[Scorer]] = defaultdict(list)
        for scorer in pending:
            by_sampling[scorer.sampling].append(scorer)
        for spec, group in by_sampling.items():
            try:
                # Decoded once per clip and sampling, shared by the group's scorers.
                frames = spec.sample(path, probe, span.start_frame, span.end_frame)
            except VideoError as exc:
                if whole_video_only and len(by_sampling) == 1:
                    raise  # nothing of the video can be scored: the video failed
                with engine.begin() as conn:
                    for scorer in group:
                        _register(conn, scorer)
                        repo.write_scorer_failure(conn, clip_id, scorer.name, scorer.config_hash, exc.reason, run_id)
                continue
            item = ScoreItem(uri=ref.uri, probe=probe, frames=frames, fields=ref.fields, clip=span)
            frame_info = frames.summary()
            for scorer in group:
                (result,) = scorer.score([item])
                ran.append(scorer.name)
                with engine.begin() as conn:
                    _register(conn, scorer)
                    if isinstance(result, Exception):
                        repo.write_scorer_failure(conn, clip_id, scorer.name, scorer.config_hash, str(result), run_id)
                        continue
                    values = {
                        metric: (m.value, {**frame_info, **(m.details or {})})
                        for metric, m in result.items()
                    }
                    written += repo.write_scores(conn, clip_id, scorer.name, scorer.config_hash, values, run_id)
    return VideoOutcome(ref.uri, "scored", None, written, sorted(set(ran)), clips=len(spans))


def _register(conn, scorer: Scorer) -> None:
    repo.register_scorer_config(conn, scorer.name, scorer.config_hash, scorer.identity())


def score_shard(
    engine: Engine,
    refs: list[VideoRef],
    specs: list[ScorerSpec],
    run_id: Optional[uuid.UUID],
    clip_spec: ClipSpec = ClipSpec(),
    storage: Optional[Storage] = None,
) -> ShardResult:
    """Score every video of a shard; a bad video is recorded and the shard goes on."""
    scorers = [build_scorer(s.name, s.config) for s in specs]
    storage = storage or Storage()
    result = ShardResult()
    for ref in refs:
        result.outcomes.append(score_video(engine, ref, scorers, run_id, clip_spec, storage))
    return result
