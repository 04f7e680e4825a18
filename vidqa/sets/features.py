"""Detector features of a video set: sample clips or frames (:mod:`vidqa.sets.sampling`),
decode them with ffmpeg at the metric's size, run the detector in batches, and accumulate
float64 statistics (:class:`vidqa.metrics.distribution.FeatureStats`).

A bad video (unreadable, corrupt, no decodable clip) is recorded with its reason and the
extraction goes on; a video too short for the clip is counted as short.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Literal, Optional

import numpy as np

from vidqa.errors import VideoError
from vidqa.hashing import json_sha256
from vidqa.sets.members import SetMember
from vidqa.video.decode import decode_frames
from vidqa.metrics.distribution import COVARIANCE_DDOF, FeatureStats
from vidqa.models.detectors import Detector, Output
from vidqa.video.probe import VideoProbe, probe_video
from vidqa.sets.sampling import (
    SAMPLING_RULES_VERSION, Offset, choose_frames, clip_frame_indices, member_rng, selection_order,
)
from vidqa.storage import Storage

Unit = Literal["clip", "frame"]
COVARIANCE_CONVENTION = "biased (divided by N), float64"
DECODE_VERSION = 1
"""Bumped when decoding or resizing changes: part of every feature set's identity."""
RESIZE_METHOD = "ffmpeg scale to height x width (area when shrinking, bicubic when enlarging), then the detector's own resize"


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that decides a feature set, besides the videos themselves."""

    detector: str
    detector_sha256: str
    output: Output
    unit: Unit
    n_frames: int
    subsample: int
    offset: Offset
    height: int
    width: int
    max_items: int
    seed: int
    call: str = ""  # the detector's call arguments, as JSON
    rules: int = SAMPLING_RULES_VERSION
    decode: str = f"{DECODE_VERSION}: {RESIZE_METHOD}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def set_key(self, digest: str) -> str:
        """The identity of the features of a set with content ``digest`` under this spec."""
        return json_sha256({"content": digest, "spec": self.to_dict()}, spaced=True)


@dataclass
class Extraction:
    stats: FeatureStats
    sample_uris: list[str]
    sample_frames: list[int]  # first frame (absolute index) of each clip / the frame
    n_short: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    n_considered: int = 0
    seconds: float = 0.0
    detector_calls: int = 0


Progress = Callable[[int, int], None]


def _load(storage: Storage, member: SetMember, fn: Callable[[str, VideoProbe], Any]) -> Any:
    """``fn(path, probe)`` for the member's video, with every failure turned into VideoError."""
    try:
        with storage.local_file(member.video_ref()) as path:
            return fn(path, probe_video(path))
    except VideoError:
        raise
    except OSError as exc:
        raise VideoError(f"cannot read: {exc}", stage="read", transient=True) from None


def _failure(member: SetMember, exc: VideoError) -> dict[str, Any]:
    return {"uri": member.uri, "stage": exc.stage, "reason": exc.reason, "transient": bool(exc.transient)}


def _span(member: SetMember, probe: VideoProbe) -> tuple[int, int]:
    end = probe.frame_count if member.end_frame is None else min(member.end_frame, probe.frame_count)
    return member.start_frame, max(member.start_frame, end)


def _windowed(pool: ThreadPoolExecutor, fn, items, depth: int) -> Iterator[tuple[Any, Future]]:
    """``(item, future)`` in order, keeping at most ``depth`` in flight (the caller may stop
    early without decoding the whole set)."""
    pending: deque = deque()
    it = iter(items)
    for item in it:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= depth:
            break
    while pending:
        item, fut = pending.popleft()
        nxt = next(it, None)
        if nxt is not None:
            pending.append((nxt, pool.submit(fn, nxt)))
        yield item, fut


class _Batcher:
    """Feeds rows to the detector in batches and folds its outputs into the stats."""

    def __init__(self, detector: Detector, output: Output, per_batch: int, stats: FeatureStats):
        self.detector, self.output, self.per_batch, self.stats = detector, output, max(1, per_batch), stats
        self.rows: list[np.ndarray] = []
        self.calls = 0

    def add(self, row: np.ndarray) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.per_batch:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.stats.update(self.detector(np.stack(self.rows), self.output))
            self.calls += 1
            self.rows = []


def _clips(members, spec, detector, storage, progress, workers) -> Extraction:
    stats = FeatureStats(capture_all=True, max_items=spec.max_items)
    out = Extraction(stats, [], [])
    batcher = _Batcher(detector, spec.output, detector.batch_frames // spec.n_frames, stats)
    size = (spec.width, spec.height)

    def load(member: SetMember):
        def clip(path: str, probe: VideoProbe):
            start, end = _span(member, probe)
            rel = clip_frame_indices(end - start, spec.n_frames, spec.subsample, spec.offset,
                                     member_rng(spec.seed, member.key))
            if rel is None:
                return "short", end - start
            indices = start + rel
            frames = decode_frames(path, probe, indices, size=size)
            if len(frames) != len(indices):
                raise VideoError(f"frames {frames.missing_indices} of the clip could not be decoded", stage="decode")
            return "ok", (frames.array, int(indices[0]))
        return _load(storage, member, clip)

    order = [members[i] for i in selection_order(len(members), spec.seed)]
    taken = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for member, fut in _windowed(pool, load, order, depth=2 * workers):
            out.n_considered += 1
            try:
                status, value = fut.result()
            except VideoError as exc:
                out.failures.append(_failure(member, exc))
                continue
            if status == "short":
                out.n_short += 1
                continue
            clip, first = value
            batcher.add(clip)
            out.sample_uris.append(member.uri)
            out.sample_frames.append(first)
            taken += 1
            if progress:
                progress(taken, min(spec.max_items, len(members)))
            if taken >= spec.max_items:
                pool.shutdown(wait=True, cancel_futures=True)  # enough clips: drop queued decodes
                break
    batcher.flush()
    out.detector_calls = batcher.calls
    return out


def _frames(members, spec, detector, storage, progress, workers) -> Extraction:
    stats = FeatureStats(capture_all=True, max_items=spec.max_items)
    out = Extraction(stats, [], [])
    batcher = _Batcher(detector, spec.output, detector.batch_frames, stats)
    size = (spec.width, spec.height)

    def count(member: SetMember) -> int:
        start, end = _load(storage, member, lambda _p, probe: _span(member, probe))
        return end - start

    counts = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for member, fut in _windowed(pool, count, members, depth=2 * workers):
            try:
                counts.append(fut.result())
            except VideoError as exc:
                out.failures.append(_failure(member, exc))
                counts.append(0)
    out.n_considered = len(members)
    picks = choose_frames(counts, spec.max_items, spec.seed)
    # At most a detector batch of frames per decode call: a long video's picks are never all in memory.
    step = detector.batch_frames
    wanted = [(m, p[i:i + step]) for m, p in zip(members, picks) for i in range(0, p.size, step)]
    total = sum(p.size for _, p in wanted)

    def load(item):
        member, rel = item

        def decode(path: str, probe: VideoProbe):
            start, _ = _span(member, probe)
            return decode_frames(path, probe, start + rel, size=size)
        return _load(storage, member, decode)

    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for (member, rel), fut in _windowed(pool, load, wanted, depth=2 * workers):
            try:
                frames = fut.result()
            except VideoError as exc:
                out.failures.append(_failure(member, exc))
                continue
            if frames.missing_indices:
                out.failures.append({"uri": member.uri, "stage": "decode",
                                     "reason": f"{len(frames.missing_indices)} sampled frames could not be decoded"})
            for image, index in zip(frames.array, frames.indices):
                batcher.add(image)
                out.sample_uris.append(member.uri)
                out.sample_frames.append(int(index))
            done += len(frames)
            if progress:
                progress(done, total)
    batcher.flush()
    out.detector_calls = batcher.calls
    return out


def extract_features(
    members: list[SetMember],
    spec: FeatureSpec,
    detector: Detector,
    storage: Optional[Storage] = None,
    progress: Optional[Progress] = None,
    workers: int = 4,
) -> Extraction:
    """Sample ``members`` by ``spec`` and run ``detector`` over the samples."""
    if detector.name != spec.detector or detector.sha256 != spec.detector_sha256:
        raise ValueError(f"spec names detector {spec.detector} ({spec.detector_sha256[:12]}) "
                         f"but {detector.name} ({detector.sha256[:12]}) was given")
    if detector.spec.temporal != (spec.unit == "clip"):
        raise ValueError(f"{detector.name} takes {'clips' if detector.spec.temporal else 'frames'}, "
                         f"the spec samples {spec.unit}s")
    started = time.perf_counter()
    members = sorted(members, key=lambda m: (m.key, m.uri))
    run = _clips if spec.unit == "clip" else _frames
    out = run(members, spec, detector, storage or Storage(), progress, workers)
    out.seconds = time.perf_counter() - started
    return out


__all__ = [
    "COVARIANCE_CONVENTION", "COVARIANCE_DDOF", "Extraction", "FeatureSpec", "RESIZE_METHOD",
    "extract_features",
]
