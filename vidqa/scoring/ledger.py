"""The score tables as the ledger: what is already known about a video's bytes under the
run's scorers, read in one pass, so finished work is skipped before anything is fetched,
probed or decoded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy.engine import Engine

from vidqa.db import repository as repo
from vidqa.errors import ScorerError, VideoError
from vidqa.scorers import Scorer
from vidqa.scorers.base import input_hash
from vidqa.storage import Storage, VideoRef
from vidqa.video.clips import ClipSpan, ClipSpec
from vidqa.scoring.outcomes import VideoOutcome

Done = set[tuple[str, str, str]]  # (scorer, config_hash, input_hash) scored, or failed for good


@dataclass
class Pending:
    """One scorer's work on one video: its text inputs (or why they are missing)."""

    scorer: Scorer
    inputs: dict[str, Any]
    input_hash: str
    missing: Optional[str] = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scorer.name, self.scorer.config_hash, self.input_hash)


def pending_for(scorers: list[Scorer], fields: dict[str, Any]) -> list[Pending]:
    out = []
    for scorer in scorers:
        try:
            inputs = scorer.inputs(fields)
            out.append(Pending(scorer, inputs, input_hash(inputs)))
        except ScorerError as exc:
            out.append(Pending(scorer, {}, "", missing=str(exc)))
    return out


@dataclass
class KnownClip:
    id: int
    span: ClipSpan
    done: Done = field(default_factory=set)


@dataclass
class LedgerState:
    """What the ledger holds for one video's bytes at one URI under one clip split."""

    video_id: Optional[int] = None
    failed_for_good: Optional[str] = None  # the recorded reason of a final failure
    clips: Optional[list[KnownClip]] = None  # None: never split so (or never read)
    first_uri: Optional[str] = None  # where these bytes were first seen
    located: bool = True  # whether the URI asked about is a known location of the bytes
    scoring: bool = False  # probed and scored, but its shard stopped before marking it ok

    def outcome(self, uri: str, pending: list[Pending]) -> Optional[VideoOutcome]:
        """Failed for good, or every clip finished by every scorer; None when work is left."""
        same = "" if uri == self.first_uri or self.first_uri is None else f" (the same bytes as {self.first_uri})"
        if self.failed_for_good is not None:
            return VideoOutcome(uri=uri, status="failed", reason=self.failed_for_good + same, from_ledger=True)
        if self.clips is not None and all(p.key in clip.done for clip in self.clips for p in pending):
            return VideoOutcome(uri=uri, status="skipped", reason="already scored" + same, from_ledger=True)
        return None


def read_ledger(engine: Engine, uri: str, content_id: str, clip_spec: ClipSpec) -> LedgerState:
    with engine.connect() as conn:
        row = repo.find_video(conn, uri, content_id)
        if row is None:
            return LedgerState(located=False)
        known = {"video_id": row.id, "first_uri": row.uri, "located": row.located,
                 "scoring": row.status == repo.SCORING}
        if row.status == "failed":
            return LedgerState(**known, failed_for_good=None if row.failure_transient else (row.failure_reason or "failed"))
        rows = repo.split_clips(conn, row.id, clip_spec.split_hash)
        if rows is None:
            return LedgerState(**known)
        done = repo.finished_scorers_of_clips(conn, [c.id for c in rows])
    clips = [KnownClip(c.id, ClipSpan(c.kind, c.start_frame, c.end_frame, c.start_time_s, c.end_time_s),
                       done.get(c.id, set())) for c in rows]
    return LedgerState(**known, clips=clips)


def record_location(engine: Engine, ref: VideoRef, state: LedgerState, run_id: Optional[uuid.UUID]) -> None:
    """Remember that the bytes of a known video are (also) at ``ref.uri``: nothing is decoded."""
    if state.video_id is not None and not state.located:
        with engine.begin() as conn:
            repo.add_location(conn, state.video_id, ref.uri, run_id, ref.size, ref.mtime)


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


def record_failure(engine: Engine, ref: VideoRef, cid: str, exc: VideoError, run_id: Optional[uuid.UUID]) -> None:
    """Record why a video could not be scored. Bytes that were read well before stay so
    (the failure was this run's or this location's: a fetch that timed out, a decode past
    its time limit): their scores stay in the views, and the next run tries again."""
    with engine.begin() as conn:
        known = repo.find_video(conn, ref.uri, cid) if cid != repo.UNREADABLE else None
        if known is not None and known.status == "ok":
            repo.add_location(conn, known.id, ref.uri, run_id, ref.size, ref.mtime)
            return
        repo.upsert_video(
            conn, ref.uri, cid, run_id,
            status="failed", failure_stage=exc.stage, failure_reason=exc.reason,
            failure_transient=exc.transient, size_bytes=ref.size, source_mtime=ref.mtime,
        )


def unfinished_videos(
    engine: Engine, refs: list[VideoRef], scorers: list[Scorer], clip_spec: ClipSpec, storage: Storage,
) -> list[VideoRef]:
    """The refs with work left under these scorers and clips: new or changed bytes, a scorer
    or setting not run yet, or a transient failure. Objects are judged by their listed ETag,
    so nothing is downloaded; a local file is hashed only when its size or mtime changed."""
    todo = []
    for ref in refs:
        try:
            resolved, cid = identify(engine, storage, ref)
        except VideoError:
            todo.append(ref)  # unreachable: the scoring run records why (or retries)
            continue
        state = read_ledger(engine, resolved.uri, cid, clip_spec)
        # A new location of finished bytes, or finished bytes not marked ok yet, is left to
        # the shard, which records it (no decode).
        if not state.located or state.scoring or \
                state.outcome(resolved.uri, pending_for(scorers, resolved.fields)) is None:
            todo.append(resolved)
    return todo
