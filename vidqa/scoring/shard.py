"""The scoring path for a shard of videos: identify -> ledger -> fetch -> probe -> split ->
sample frames (and audio) -> score -> persist.

The score tables are the ledger: a video whose scorers are all finished for the same
configuration and text inputs is skipped before it is fetched, probed or decoded, and
every write is an upsert, so a rerun after a crash finishes the rest and never duplicates
a row. Clips wait in a queue per scorer and are scored in batches (frames of many videos
in one encoder batch for model scorers).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vidqa.config import get_settings
from vidqa.db import health, repository as repo
from vidqa.errors import VideoError
from vidqa.scorers import ClipNeeds, ScoreItem, Scorer, build_scorer
from vidqa.scoring.claims import ShardClaims
from vidqa.scoring.from_embeddings import refusals, stored_frames
from vidqa.scoring.job import ScorerSpec, ShardJob
from vidqa.scoring.ledger import (
    KnownClip, LedgerState, Pending, identify, pending_for, read_ledger, record_failure, record_location,
)
from vidqa.scoring.outcomes import ShardResult, VideoOutcome
from vidqa.scoring.queue import Job, ScoreQueue
from vidqa.storage import Storage, VideoRef
from vidqa.video.audio import AudioClip, AudioRequest, decode_audio
from vidqa.scoring.shots import split_clips, split_details
from vidqa.video.clips import ClipSpan, ClipSpec, whole_video
from vidqa.video.probe import VideoProbe, probe_video
from vidqa.video.sampling import SamplingSpec

log = logging.getLogger(__name__)


def build_scorers(specs: list[ScorerSpec]) -> list[Scorer]:
    return [build_scorer(s.name, s.config, s.context) for s in specs]


def prepare_scorers(specs: list[ScorerSpec], refs: list[VideoRef], clips: Optional[ClipSpec] = None) -> list[ScorerSpec]:
    """Name every scorer (its config hash: settings, the run-level context each computes over
    all of ``refs``, and its weight files' hashes). No model is loaded; a missing weight file
    (a scorer's, or the shot detector's for ``clips``) fails here, before any video is read."""
    if clips is not None:
        split_details(clips)
    rows = [(r.uri, r.fields) for r in refs]
    out = []
    for spec in specs:
        context = {**build_scorer(spec.name, spec.config).context_for(rows), **spec.context}
        named = build_scorer(spec.name, spec.config, context)
        out.append(ScorerSpec(name=spec.name, config=spec.config, context=context, config_hash=named.config_hash))
    return out


@dataclass
class _Shard:
    """What every video of a shard is scored with."""

    engine: Engine
    storage: Storage
    queue: ScoreQueue
    scorers: list[Scorer]
    clip_spec: ClipSpec
    run_id: Optional[uuid.UUID]
    claims: ShardClaims
    from_embeddings: bool = False  # score from stored frame embeddings; fetch and decode nothing
    prepared: list[int] = field(default_factory=list)  # videos probed and queued for scoring


@dataclass
class Deferred:
    """A video another shard is scoring now: looked at again once its claim is gone."""

    content_id: str
    holder: str


def score_shard(engine: Engine, job: ShardJob, storage: Optional[Storage] = None) -> ShardResult:
    """Score every video of a shard; a bad video is recorded and the shard goes on. Videos
    another run is scoring wait until the rest is written (see :mod:`vidqa.scoring.claims`).
    A database that stops answering raises :class:`~vidqa.errors.DatabaseLost` (see
    :mod:`vidqa.db.health`)."""
    lost = health.lost_error(engine)
    if lost is not None:
        raise lost
    try:
        return _score_shard(engine, job, storage)
    except sa.exc.DBAPIError as exc:
        judged = health.judge(engine, exc)
        if judged is exc:
            raise
        raise judged from exc


def _score_shard(engine: Engine, job: ShardJob, storage: Optional[Storage]) -> ShardResult:
    run_id = uuid.UUID(job.run_id) if job.run_id else None
    outcomes: dict[int, VideoOutcome] = {}
    workers = get_settings().decode_workers
    with ShardClaims(engine, run_id, f"shard {job.shard_index}") as claims, \
            ThreadPoolExecutor(max(1, workers), thread_name_prefix="vidqa-decode") as pool:
        queue = ScoreQueue(engine, run_id, score_on_submit=workers == 0)
        scorers = build_scorers(job.scorers)
        if job.from_embeddings and refusals(scorers):
            raise ValueError("--from-embeddings: " + "; ".join(refusals(scorers)))
        shard = _Shard(engine, storage or Storage(), queue, scorers, job.clips, run_id, claims, job.from_embeddings)
        todo = list(enumerate(job.refs))
        while todo:
            deferred: list[tuple[int, VideoRef, Deferred]] = []
            for i, ref, outcome in _prepared_in_order(shard, todo, pool, workers):
                if isinstance(outcome, Deferred):
                    deferred.append((i, ref, outcome))
                else:
                    outcomes[i] = outcome
            shard.queue.flush()
            with shard.engine.begin() as conn:  # every score of the shard is written: its videos are ok
                repo.mark_scored(conn, shard.prepared)
            shard.prepared.clear()
            claims.release()  # before waiting on others: two shards never wait on each other
            if deferred:
                log.info("%d videos are being scored by another run (%s): waiting for them", len(deferred),
                         deferred[0][2].holder)
                claims.wait_for_any([d.content_id for _, _, d in deferred])
            todo = [(i, ref) for i, ref, _ in deferred]
    for outcome in outcomes.values():
        outcome.scorers_run = sorted(set(outcome.scorers_run))
    return ShardResult(outcomes=[outcomes[i] for i in range(len(job.refs))])


def _prepared_in_order(shard: _Shard, todo: list[tuple[int, VideoRef]], pool: ThreadPoolExecutor, workers: int):
    """``(i, ref, outcome)`` of every video in ``todo``, in order. With ``workers`` > 0 the
    pool's threads fetch, probe and decode up to ``decode_ahead`` videos ahead while this
    thread scores every batch that fills (models run in this thread only)."""
    if workers == 0:
        for i, ref in todo:
            yield i, ref, prepare_video(shard, ref)
        return
    depth = get_settings().decode_ahead
    ahead: deque[tuple[int, VideoRef, Future]] = deque()
    try:
        for i, ref in todo:
            ahead.append((i, ref, pool.submit(prepare_video, shard, ref)))
            while len(ahead) > depth or (ahead and ahead[0][2].done()):
                j, r, future = ahead.popleft()
                yield j, r, future.result()
                shard.queue.score_full()
        while ahead:
            j, r, future = ahead.popleft()
            yield j, r, future.result()
            shard.queue.score_full()
    finally:
        for _, _, future in ahead:  # an error stops the shard: start nothing more
            future.cancel()


def prepare_video(shard: _Shard, ref: VideoRef) -> VideoOutcome | Deferred:
    """Identify, check the ledger, claim, fetch, probe, split and decode one video, queueing
    its clips for the scorers that have not scored them."""
    started = time.perf_counter()
    outcome = _prepare_video(shard, ref)
    if isinstance(outcome, VideoOutcome):
        outcome.seconds = time.perf_counter() - started
    return outcome


def _prepare_video(shard: _Shard, ref: VideoRef) -> VideoOutcome | Deferred:
    try:
        ref, cid = identify(shard.engine, shard.storage, ref)
    except VideoError as exc:
        record_failure(shard.engine, ref, repo.UNREADABLE, exc, shard.run_id)
        return VideoOutcome(uri=ref.uri, status="failed", reason=exc.reason, transient=exc.transient)

    pending = pending_for(shard.scorers, ref.fields)
    state = read_ledger(shard.engine, ref.uri, cid, shard.clip_spec)
    known = state.outcome(ref.uri, pending)
    if known is None:
        holder = shard.claims.take(cid)
        if holder is not None:
            return Deferred(cid, holder)
        # Under the claim, what a run that held it until now has finished.
        state = read_ledger(shard.engine, ref.uri, cid, shard.clip_spec)
        known = state.outcome(ref.uri, pending)
    if known is not None:
        record_location(shard.engine, ref, state, shard.run_id)
        if state.scoring and known.status == "skipped":
            shard.prepared.append(state.video_id)  # scored by a shard that died before marking it
        return known
    if shard.from_embeddings:
        return _score_from_embeddings(shard, ref, pending, state)

    # Only now are the bytes needed: fetch (remote), probe, split, decode.
    try:
        with shard.storage.local_file(ref) as path:
            return _prepare_local(shard, ref, cid, path, pending, state)
    except VideoError as exc:
        record_failure(shard.engine, ref, cid, exc, shard.run_id)
        return VideoOutcome(uri=ref.uri, status="failed", reason=exc.reason, transient=exc.transient)


def _score_from_embeddings(shard: _Shard, ref: VideoRef, pending: list[Pending], state: LedgerState) -> VideoOutcome:
    """Queue the clips' pending scorers with the frame embeddings stored for them. A video
    without them is reported (not recorded as failed: a decoded run may still score it)."""
    if state.video_id is None or state.clips is None:
        return VideoOutcome(uri=ref.uri, status="failed", transient=True, reason=(
            "nothing stored to score from: its clips under this split were never scored (run once without "
            "--from-embeddings)"))
    outcome = VideoOutcome(uri=ref.uri, status="scored", clips=len(state.clips), from_embeddings=True)
    jobs: list[Job] = []
    missing_inputs: list[tuple[int, Pending, str]] = []
    lacking: set[str] = set()
    with shard.engine.connect() as conn:
        for clip in state.clips:
            for p in pending:
                if p.key in clip.done:
                    continue
                if p.missing:
                    missing_inputs.append((clip.id, p, p.missing))
                    continue
                frames = stored_frames(conn, clip.id, p.scorer)
                if frames is None:
                    lacking.add(p.scorer.name)
                    continue
                jobs.append(Job(outcome, clip.id, ScoreItem(uri=ref.uri, probe=None, frames=frames, fields=ref.fields,
                                                            clip=clip.span), p))
    if lacking:
        return VideoOutcome(uri=ref.uri, status="failed", transient=True, reason=(
            f"no frame embeddings stored for {', '.join(sorted(lacking))}'s CLIP and sampling: store them in a "
            "decoded run with VIDQA_STORE_FRAME_EMBEDDINGS=1 and that sampling, or score without --from-embeddings"))
    record_location(shard.engine, ref, state, shard.run_id)
    for clip_id, p, why in missing_inputs:
        shard.queue.fail(clip_id, p, why)
    for job in jobs:
        shard.queue.submit(job)
    return outcome


def _clips_for(shard: _Shard, video_id: int, path: str, probe: VideoProbe, state: LedgerState) -> list[KnownClip]:
    """The video's clips under the shard's split: from the ledger read before, or split now
    and recorded (the clips and the split in one transaction)."""
    if state.clips is not None:
        return state.clips
    spec = shard.clip_spec
    try:
        spans = split_clips(path, probe, spec)
    except VideoError:
        raise
    except Exception as exc:  # a detector crash is this video's failure, not the run's
        raise VideoError(f"splitting into clips failed: {type(exc).__name__}: {exc}", stage="split") from exc
    with shard.engine.begin() as conn:
        ids = [repo.ensure_clip(conn, video_id, s.kind, s.start_frame, s.end_frame, s.start_s, s.end_s,
                                spec.split_hash) for s in spans]
        repo.record_split(conn, video_id, spec.split_hash, spec.method, split_details(spec), len(spans))
        done = repo.finished_scorers_of_clips(conn, ids)
    return [KnownClip(i, s, done[i]) for i, s in zip(ids, spans)]


def _clip_audio(storage: Storage, path: str, probe: VideoProbe, span: ClipSpan, req: AudioRequest) -> AudioClip:
    """The clip's span of audio: of the video's own track, or of a separate file that shares
    the video's timeline."""
    offset = max(0.0, span.start_s - float(probe.frame_times[0]))
    duration = min(span.duration_s, req.max_s)
    if req.source is None:
        if not probe.has_audio:
            raise VideoError("no audio track in the video", stage="audio")
        return decode_audio(path, req.sample_rate, offset, duration, source="video")
    with storage.local_file(VideoRef(req.source)) as audio_path:
        return decode_audio(audio_path, req.sample_rate, offset, duration, source=req.source)


def _prepare_local(
    shard: _Shard, ref: VideoRef, cid: str, path: str, pending: list[Pending], state: LedgerState
) -> VideoOutcome:
    probe = probe_video(path)
    whole = whole_video(probe)
    with shard.engine.begin() as conn:
        video_id = repo.upsert_video(
            conn, ref.uri, cid, shard.run_id, status=repo.SCORING, failure_stage=None, failure_reason=None,
            failure_transient=None, size_bytes=ref.size, source_mtime=ref.mtime, **probe.columns(),
        )
        # The whole video is always a clip: it carries whole-video scores and anchors splits.
        repo.ensure_clip(conn, video_id, whole.kind, whole.start_frame, whole.end_frame, whole.start_s, whole.end_s)
    shard.prepared.append(video_id)

    clips = _clips_for(shard, video_id, path, probe, state)
    outcome = VideoOutcome(uri=ref.uri, status="scored", clips=len(clips))
    whole_video_only = shard.clip_spec.method == "none"
    needs: dict[int, ClipNeeds] = {}  # per pending scorer, asked once per video
    for clip in clips:
        todo = [p for p in pending if p.key not in clip.done]
        by_sampling: dict[SamplingSpec, list[Pending]] = defaultdict(list)
        for p in todo:
            if p.missing:
                shard.queue.fail(clip.id, p, p.missing)
                continue
            if id(p) not in needs:
                needs[id(p)] = p.scorer.needs(ref.fields)
            by_sampling[needs[id(p)].frames].append(p)
        audio: dict[AudioRequest, AudioClip | VideoError] = {}
        for spec, group in by_sampling.items():
            try:
                # Decoded once per clip and sampling, shared by the group's scorers.
                frames = spec.sample(path, probe, clip.span.start_frame, clip.span.end_frame)
            except VideoError as exc:
                if whole_video_only and len(by_sampling) == 1 and len(group) == len(pending):
                    raise  # nothing of the video can be scored: the video failed
                for p in group:
                    shard.queue.fail(clip.id, p, exc.reason)
                continue
            item = ScoreItem(uri=ref.uri, probe=probe, frames=frames, fields=ref.fields, clip=clip.span)
            for p in group:
                req = needs[id(p)].audio
                if req is None:
                    shard.queue.submit(Job(outcome, clip.id, item, p))
                    continue
                if req not in audio:
                    try:
                        # Decoded once per clip and request, shared like the frames.
                        audio[req] = _clip_audio(shard.storage, path, probe, clip.span, req)
                    except VideoError as exc:
                        audio[req] = exc
                heard = audio[req]
                if isinstance(heard, VideoError):
                    shard.queue.fail(clip.id, p, heard.reason)  # this scorer only; the video goes on
                else:
                    shard.queue.submit(Job(outcome, clip.id, replace(item, audio=heard), p))
    return outcome

