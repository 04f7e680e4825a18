"""The scoring path for a shard of videos: identify -> fetch -> probe -> split -> sample frames
-> score -> persist.

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
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from sqlalchemy.engine import Engine

from vidqa.audio import AudioClip, AudioRequest, decode_audio
from vidqa.clips import ClipSpan, ClipSpec, split_video
from vidqa.db import repository as repo
from vidqa.errors import ScorerError, VideoError
from vidqa.probe import VideoProbe, probe_video
from vidqa.sampling import SamplingSpec
from vidqa.scorers import ScoreItem, Scorer, build_scorer
from vidqa.scorers.base import Metric, input_hash, stable_hash
from vidqa.storage import Storage, VideoRef

log = logging.getLogger(__name__)

# Clips handed to each scorer's ``score`` in this process: what "computed nothing" means.
SCORER_CALLS: Counter[str] = Counter()


@dataclass
class ScorerSpec:
    """A scorer by name and configuration: what crosses task boundaries (never the model)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    # Run-level context computed over the whole source (e.g. EMScore's IDF table).
    context: dict[str, Any] = field(default_factory=dict)
    # Identity of the built scorer (configuration, context, model weights), set by
    # prepare_scorers; caches key on it.
    config_hash: Optional[str] = None


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
    # A failure that a later run should try again (network, throttling).
    transient: bool = False


@dataclass
class ShardResult:
    outcomes: list[VideoOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"outcomes": [asdict(o) for o in self.outcomes]}


_KNOWN_IDS: dict[tuple[str, int, float], str] = {}


def identify(engine: Engine, storage: Storage, ref: VideoRef) -> tuple[VideoRef, str]:
    """The ref with the store's metadata, and the content id of its bytes.

    Raises VideoError when the bytes cannot be reached. A local file whose size and mtime
    match the ledger, or an earlier identification in this process, is not hashed again (a
    flow reads the same sets several times); an object's id is its ETag, so identifying it
    never downloads it.
    """
    ref = storage.resolve(ref)
    if not ref.is_remote:
        key = (ref.uri, ref.size, ref.mtime)
        if key in _KNOWN_IDS:
            return ref, _KNOWN_IDS[key]
        with engine.connect() as conn:
            known = repo.known_content_id(conn, ref.uri, ref.size, ref.mtime)
        cid = known or storage.content_id(ref)
        if ref.size is not None and ref.mtime is not None:
            _KNOWN_IDS[key] = cid
        return ref, cid
    return ref, storage.content_id(ref)


def _record_failure(engine: Engine, ref: VideoRef, cid: str, exc: VideoError, run_id: Optional[uuid.UUID]) -> None:
    with engine.begin() as conn:
        repo.upsert_video(
            conn, ref.uri, cid, run_id,
            status="failed", failure_stage=exc.stage, failure_reason=exc.reason,
            failure_transient=exc.transient, size_bytes=ref.size, source_mtime=ref.mtime,
        )


@dataclass
class _Pending:
    """One scorer's work on one video: its text inputs (or why they are missing)."""

    scorer: Scorer
    inputs: dict[str, Any]
    input_hash: str
    missing: Optional[str] = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scorer.name, self.scorer.config_hash, self.input_hash)


def _pending_for(scorers: list[Scorer], fields: dict[str, Any]) -> list[_Pending]:
    out = []
    for scorer in scorers:
        try:
            inputs = scorer.inputs(fields)
            out.append(_Pending(scorer, inputs, input_hash(inputs)))
        except ScorerError as exc:
            out.append(_Pending(scorer, {}, "", missing=str(exc)))
    return out


@dataclass
class _Job:
    outcome: VideoOutcome
    clip_id: int
    item: ScoreItem
    pending: _Pending


class ScoreQueue:
    """Clips waiting for each scorer; scored a batch at a time and written to the ledger."""

    def __init__(self, engine: Engine, run_id: Optional[uuid.UUID]):
        self.engine = engine
        self.run_id = run_id
        self.jobs: dict[tuple[str, str], list[_Job]] = defaultdict(list)
        self.scorers: dict[tuple[str, str], Scorer] = {}

    def submit(self, job: _Job) -> None:
        scorer = job.pending.scorer
        key = (scorer.name, scorer.config_hash)
        self.scorers[key] = scorer
        self.jobs[key].append(job)
        job.outcome.scorers_run.append(scorer.name)
        if len(self.jobs[key]) >= scorer.queue_size:
            self._flush(key)

    def fail(self, clip_id: int, pending: _Pending, reason: str) -> None:
        with self.engine.begin() as conn:
            self._register(conn, pending)
            repo.write_scorer_failure(conn, clip_id, pending.scorer.name, pending.scorer.config_hash, reason,
                                      self.run_id, pending.input_hash)

    def flush(self) -> None:
        for key in list(self.jobs):
            self._flush(key)

    def _flush(self, key: tuple[str, str]) -> None:
        jobs = self.jobs.pop(key, [])
        if not jobs:
            return
        scorer = self.scorers[key]
        SCORER_CALLS[scorer.name] += len(jobs)
        try:
            results = scorer.score([j.item for j in jobs])
        except Exception as exc:
            log.exception("%s failed on a batch of %d", scorer.name, len(jobs))
            # One bad clip must not sink its batch: score each alone to find it.
            results = [exc] if len(jobs) == 1 else [self._score_one(scorer, j.item) for j in jobs]
        for job, result in zip(jobs, results, strict=True):
            self._write(job, result)

    @staticmethod
    def _score_one(scorer: Scorer, item: ScoreItem):
        try:
            (result,) = scorer.score([item])
            return result
        except Exception as exc:
            return exc

    def _register(self, conn, pending: _Pending) -> None:
        s = pending.scorer
        repo.register_scorer_config(conn, s.name, s.config_hash, s.identity())
        repo.register_inputs(conn, pending.input_hash, pending.inputs)

    def _write(self, job: _Job, result: dict[str, Metric] | Exception) -> None:
        p = job.pending
        with self.engine.begin() as conn:
            self._register(conn, p)
            if isinstance(result, Exception):
                reason = str(result) if isinstance(result, ScorerError) else f"{type(result).__name__}: {result}"
                repo.write_scorer_failure(conn, job.clip_id, p.scorer.name, p.scorer.config_hash, reason,
                                          self.run_id, p.input_hash)
                return
            frame_info = job.item.frames.summary()
            values = {metric: (m.value, {**frame_info, **(m.details or {})}) for metric, m in result.items()}
            job.outcome.scores_written += repo.write_scores(
                conn, job.clip_id, p.scorer.name, p.scorer.config_hash, values, self.run_id, p.input_hash
            )


def _all_finished(conn, clip_rows, pending: list[_Pending]) -> bool:
    for clip in clip_rows:
        done = repo.finished_scorers(conn, clip.id)
        if any(p.key not in done for p in pending):
            return False
    return True


def prepare_video(
    engine: Engine, storage: Storage, queue: ScoreQueue, ref: VideoRef, scorers: list[Scorer],
    clip_spec: ClipSpec, run_id: Optional[uuid.UUID],
) -> VideoOutcome:
    """Identify, check the ledger, fetch, probe, split and decode one video, queueing its
    clips for the scorers that have not scored them."""
    started = time.perf_counter()
    outcome = _prepare_video(engine, storage, queue, ref, scorers, clip_spec, run_id)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _prepare_video(
    engine: Engine, storage: Storage, queue: ScoreQueue, ref: VideoRef, scorers: list[Scorer],
    clip_spec: ClipSpec, run_id: Optional[uuid.UUID],
) -> VideoOutcome:
    try:
        ref, cid = identify(engine, storage, ref)
    except VideoError as exc:
        _record_failure(engine, ref, repo.UNREADABLE, exc, run_id)
        return VideoOutcome(ref.uri, "failed", exc.reason, transient=exc.transient)

    pending = _pending_for(scorers, ref.fields)
    known = _ledger_outcome(engine, ref, cid, pending, clip_spec)
    if known is not None:
        return known

    # Only now are the bytes needed: fetch (remote), probe, split, decode.
    try:
        with storage.local_file(ref) as path:
            return _prepare_local(engine, storage, queue, ref, cid, path, pending, clip_spec, run_id)
    except VideoError as exc:
        _record_failure(engine, ref, cid, exc, run_id)
        return VideoOutcome(ref.uri, "failed", exc.reason, transient=exc.transient)


def _ledger_outcome(
    engine: Engine, ref: VideoRef, cid: str, pending: list[_Pending], clip_spec: ClipSpec
) -> Optional[VideoOutcome]:
    """What the ledger already says about this video's bytes under these scorers: failed for
    good, or every clip finished by every scorer; None when there is work left."""
    with engine.connect() as conn:
        row = repo.find_video(conn, ref.uri, cid)
        if row is not None and row.status == "failed" and not row.failure_transient:
            return VideoOutcome(ref.uri, "failed", row.failure_reason, from_ledger=True)
        if row is not None and row.status == "ok":
            known_clips = repo.split_clips(conn, row.id, clip_spec.split_hash)
            if known_clips is not None and _all_finished(conn, known_clips, pending):
                return VideoOutcome(ref.uri, "skipped", "already scored", from_ledger=True)
    return None


def unfinished_videos(
    engine: Engine, refs: list[VideoRef], specs: list[ScorerSpec], clip_spec: ClipSpec = ClipSpec(),
    storage: Optional[Storage] = None,
) -> list[VideoRef]:
    """The refs with work left under these scorers and clips: new or changed bytes, a scorer
    or setting not run yet, or a transient failure. Objects are judged by their listed ETag,
    so nothing is downloaded; a local file is hashed only when its size or mtime changed."""
    scorers = [build_scorer(s.name, s.config, s.context) for s in specs]
    storage = storage or Storage()
    todo = []
    for ref in refs:
        try:
            resolved, cid = identify(engine, storage, ref)
        except VideoError:
            todo.append(ref)  # unreachable: the scoring run records why (or retries)
            continue
        if _ledger_outcome(engine, resolved, cid, _pending_for(scorers, resolved.fields), clip_spec) is None:
            todo.append(resolved)
    return todo


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
    engine: Engine, storage: Storage, queue: ScoreQueue, ref: VideoRef, cid: str, path: str, pending: list[_Pending],
    clip_spec: ClipSpec, run_id: Optional[uuid.UUID],
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
    outcome = VideoOutcome(ref.uri, "scored", clips=len(spans))
    whole_video_only = clip_spec.method == "none"
    for span in spans:
        with engine.begin() as conn:
            clip_id = repo.ensure_clip(conn, video_id, span.kind, span.start_frame, span.end_frame,
                                       span.start_s, span.end_s, clip_spec.split_hash)
            done = repo.finished_scorers(conn, clip_id)
        todo = [p for p in pending if p.key not in done]
        for p in [p for p in todo if p.missing]:
            queue.fail(clip_id, p, p.missing)
        by_sampling: dict[SamplingSpec, list[_Pending]] = defaultdict(list)
        audio: dict[AudioRequest, AudioClip | VideoError] = {}
        for p in todo:
            if not p.missing:
                by_sampling[p.scorer.sampling].append(p)
        for spec, group in by_sampling.items():
            try:
                # Decoded once per clip and sampling, shared by the group's scorers.
                frames = spec.sample(path, probe, span.start_frame, span.end_frame)
            except VideoError as exc:
                if whole_video_only and len(by_sampling) == 1 and len(group) == len(pending):
                    raise  # nothing of the video can be scored: the video failed
                for p in group:
                    queue.fail(clip_id, p, exc.reason)
                continue
            item = ScoreItem(uri=ref.uri, probe=probe, frames=frames, fields=ref.fields, clip=span)
            for p in group:
                req = p.scorer.audio_request(ref.fields)
                if req is None:
                    queue.submit(_Job(outcome, clip_id, item, p))
                    continue
                try:
                    # Decoded once per clip and request, shared like the frames.
                    if req not in audio:
                        audio[req] = _clip_audio(storage, path, probe, span, req)
                except VideoError as exc:
                    audio[req] = exc
                if isinstance(audio[req], VideoError):
                    queue.fail(clip_id, p, audio[req].reason)  # this scorer only; the video goes on
                else:
                    queue.submit(_Job(outcome, clip_id, replace(item, audio=audio[req]), p))
    return outcome


def prepare_scorers(specs: list[ScorerSpec], refs: list[VideoRef]) -> list[ScorerSpec]:
    """Build every scorer once (loading its model: missing weights fail here, before any
    video is read) and add the run-level context each computes over all of ``refs``."""
    rows = [(r.uri, r.fields) for r in refs]
    out = []
    for spec in specs:
        scorer = build_scorer(spec.name, spec.config)
        context = {**scorer.context_for(rows), **spec.context}
        bound = build_scorer(spec.name, spec.config, context)
        out.append(ScorerSpec(spec.name, spec.config, context, bound.config_hash))
    return out


def ref_identity(ref: VideoRef) -> Optional[dict[str, Any]]:
    """What a listed video is, without reading it: URI, the store's ETag and size (objects) or
    size and mtime (local files), and the manifest fields. None when the listing did not say
    (an object named by a manifest has no ETag until it is asked for)."""
    if ref.is_remote:
        content = {"etag": ref.etag, "size": ref.size} if ref.etag else None
    else:
        content = {"size": ref.size, "mtime": ref.mtime} if ref.size is not None and ref.mtime is not None else None
    return None if content is None else {"uri": ref.uri, **content, "fields": ref.fields}


def shard_identity(
    refs: list[VideoRef], specs: list[ScorerSpec], clip_spec: ClipSpec, database: str
) -> Optional[str]:
    """The identity of scoring this shard: every video's identity, every scorer's
    ``config_hash`` (configuration, run context and model weights), the clip split and the
    ledger it writes to. Equal identity means equal results. None when some part cannot be
    named without reading data (then nothing may be reused)."""
    videos = [ref_identity(r) for r in refs]
    if any(v is None for v in videos) or any(s.config_hash is None for s in specs):
        return None
    return stable_hash({
        "videos": videos,
        "scorers": sorted((s.name, s.config_hash) for s in specs),
        "clips": clip_spec.split_hash,
        "database": database,
    })


def score_shard(
    engine: Engine,
    refs: list[VideoRef],
    specs: list[ScorerSpec],
    run_id: Optional[uuid.UUID],
    clip_spec: ClipSpec = ClipSpec(),
    storage: Optional[Storage] = None,
) -> ShardResult:
    """Score every video of a shard; a bad video is recorded and the shard goes on."""
    scorers = [build_scorer(s.name, s.config, s.context) for s in specs]
    storage = storage or Storage()
    queue = ScoreQueue(engine, run_id)
    result = ShardResult()
    for ref in refs:
        result.outcomes.append(prepare_video(engine, storage, queue, ref, scorers, clip_spec, run_id))
    queue.flush()
    for outcome in result.outcomes:
        outcome.scorers_run = sorted(set(outcome.scorers_run))
    return result
