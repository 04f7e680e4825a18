"""Frame samplers: which frames of a video (or of a clip ``[start, end)``) to decode.

Every sampler yields indices into the probe's frames, ordered by presentation time; times
are measured from the first frame (or the clip's start) with the stream's own timestamps,
so variable frame rate is exact. Asking for more frames than exist returns what exists.
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vidqa.errors import VideoError
from vidqa.video.decode import Frames, decode_frames
from vidqa.video.probe import VideoProbe

SamplingMethod = Literal[
    "uniform", "every_n_seconds", "every_n_frames", "keyframes", "fractions", "all", "linspace", "fps_step"
]


def _span(probe: VideoProbe, start: int, end: Optional[int]) -> tuple[int, int, float, float]:
    end = probe.frame_count if end is None else min(end, probe.frame_count)
    start = max(0, start)
    if end <= start:
        raise ValueError(f"empty frame range [{start}, {end})")
    return start, end, float(probe.frame_times[start]), probe.end_time_s(end)


def frame_at_times(probe: VideoProbe, times: np.ndarray, start: int = 0, end: Optional[int] = None) -> np.ndarray:
    """Index of the frame on screen at each time (seconds from the span's start): the last
    frame whose timestamp is at or before it, kept inside ``[start, end)``."""
    start, end, t0, _ = _span(probe, start, end)
    abs_times = t0 + np.asarray(times, dtype=np.float64)
    idx = np.searchsorted(probe.frame_times, abs_times + 1e-9, side="right") - 1
    return np.clip(idx, start, end - 1)


def uniform_indices(probe: VideoProbe, n: int, start: int = 0, end: Optional[int] = None) -> np.ndarray:
    """data-juicer's uniform sampling: ``duration/2`` for one frame, else ``i*duration/(n-1)``."""
    if n <= 0:
        raise ValueError("n must be positive")
    _, _, t0, t1 = _span(probe, start, end)
    duration = t1 - t0
    times = np.array([duration / 2.0]) if n == 1 else np.arange(n, dtype=np.float64) * duration / (n - 1)
    return np.unique(frame_at_times(probe, times, start, end))


def every_n_seconds_indices(probe: VideoProbe, seconds: float, start: int = 0, end: Optional[int] = None) -> np.ndarray:
    """One frame every ``seconds``: the frames on screen at 0, N, 2N, ... before the span ends."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    _, _, t0, t1 = _span(probe, start, end)
    times = np.arange(0.0, t1 - t0 - 1e-9, seconds)
    return np.unique(frame_at_times(probe, times, start, end))


def every_n_frames_indices(probe: VideoProbe, step: int, start: int = 0, end: Optional[int] = None) -> np.ndarray:
    if step <= 0:
        raise ValueError("step must be positive")
    start, end, _, _ = _span(probe, start, end)
    return np.arange(start, end, step, dtype=np.int64)


def fps_step_indices(probe: VideoProbe, rate: float, start: int = 0, end: Optional[int] = None) -> np.ndarray:
    """data-juicer's motion sampling: every ``step``-th frame from the span's first, where
    ``step = round(fps / min(rate, fps))`` (Python's rounding) over the video's average frame
    rate, kept between 1 and ``frames - 1`` so a short span still gives a pair."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    start, end, _, _ = _span(probe, start, end)
    fps = probe.fps_avg or probe.fps_nominal or 25.0
    step = max(min(round(fps / min(rate, fps)), end - start - 1), 1)
    return np.arange(start, end, step, dtype=np.int64)


def keyframe_indices(probe: VideoProbe, start: int = 0, end: Optional[int] = None) -> np.ndarray:
    """The codec's key frames in the span; the span's first frame when it holds none
    (data-juicer's ``all_keyframes`` fallback)."""
    start, end, _, _ = _span(probe, start, end)
    keys = probe.keyframe_indices[(probe.keyframe_indices >= start) & (probe.keyframe_indices < end)]
    return keys.astype(np.int64) if keys.size else np.array([start], dtype=np.int64)


def fraction_indices(
    probe: VideoProbe, fractions: tuple[float, ...], start: int = 0, end: Optional[int] = None
) -> np.ndarray:
    """Frames at the given fractions of the span's duration (Open-Sora: 0.1, 0.5, 0.9)."""
    _, _, t0, t1 = _span(probe, start, end)
    times = np.asarray(fractions, dtype=np.float64) * (t1 - t0)
    return np.unique(frame_at_times(probe, times, start, end))


def _floor_to(x: float, m: int) -> int:
    return int(np.floor(x / m)) * m


def _ceil_to(x: float, m: int) -> int:
    return int(np.ceil(x / m)) * m


def linspace_positions(
    probe: VideoProbe, n: int, start: int = 0, end: Optional[int] = None, *, fps: Optional[float] = None,
    rounding: Literal["floor", "nearest"] = "floor", multiple: int = 1, min_frames: int = 1,
) -> np.ndarray:
    """Frame positions ``linspace(first, last, count)`` over the span's frame indices, with
    repeats when the span holds fewer frames than ``count`` (VideoScore's rule).

    ``count`` is ``n``; or, with ``fps``, the span's duration times ``fps`` (qwen-vl-utils'
    ``smart_nframes``): at least ``min_frames``, at most ``n`` and the span's frame count,
    rounded down to a multiple of ``multiple``, and never below ``multiple`` (a 1-frame
    video gives its frame twice to a model that reads frames in pairs).
    """
    start, end, t0, t1 = _span(probe, start, end)
    total = end - start
    count = n
    if fps is not None:
        lo = _ceil_to(min_frames, multiple)
        hi = _floor_to(min(n, total), multiple)
        count = max(_floor_to(min(max((t1 - t0) * fps, lo), hi, total), multiple), multiple)
    pos = np.linspace(start, end - 1, count)
    pos = np.floor(pos) if rounding == "floor" else np.round(pos)
    return pos.astype(np.int64)


class SamplingSpec(BaseModel):
    """How to choose frames. Scorers with equal specs share one decode of each video."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: SamplingMethod = Field("uniform", description="Frame sampling method.")
    n: int = Field(16, ge=1, le=100_000, description="uniform: number of frames.")
    seconds: Optional[float] = Field(None, gt=0, description="every_n_seconds: interval in seconds.")
    step: Optional[int] = Field(None, ge=1, description="every_n_frames: interval in frames.")
    fractions: tuple[float, ...] = Field((0.1, 0.5, 0.9), description="fractions: positions in [0, 1].")
    max_frames: int = Field(1024, ge=1, description="Cap on frames per video or clip (all, every_n_*).")
    max_size: Optional[int] = Field(
        None, ge=16, description="Downscale during decode so the longer side is at most this."
    )
    fps: Optional[float] = Field(None, gt=0, description="linspace: frames per second of video (n caps it); "
                                 "fps_step: the sampling rate.")
    rounding: Literal["floor", "nearest"] = Field("floor", description="linspace: how positions become indices.")
    multiple: int = Field(1, ge=1, description="linspace with fps: frame count rounded down to a multiple of this.")
    min_frames: int = Field(1, ge=1, description="linspace with fps: fewest frames (when the video has them).")

    @model_validator(mode="after")
    def _check(self) -> "SamplingSpec":
        if self.method == "every_n_seconds" and self.seconds is None:
            raise ValueError("every_n_seconds needs 'seconds'")
        if self.method == "every_n_frames" and self.step is None:
            raise ValueError("every_n_frames needs 'step'")
        if self.method == "fps_step" and self.fps is None:
            raise ValueError("fps_step needs 'fps'")
        if self.method == "fractions" and not all(0.0 <= f <= 1.0 for f in self.fractions):
            raise ValueError("fractions must lie in [0, 1]")
        return self

    def positions(self, probe: VideoProbe, start: int = 0, end: Optional[int] = None) -> np.ndarray:
        """The frames a model sees, in order, repeats included (only ``linspace`` repeats)."""
        if self.method == "linspace":
            return linspace_positions(probe, self.n, start, end, fps=self.fps, rounding=self.rounding,
                                      multiple=self.multiple, min_frames=self.min_frames)
        return self.indices(probe, start, end)

    def indices(self, probe: VideoProbe, start: int = 0, end: Optional[int] = None) -> np.ndarray:
        """The distinct frames to decode, in order (at most ``max_frames``)."""
        return self._chosen(probe, start, end)[: self.max_frames]

    def _chosen(self, probe: VideoProbe, start: int, end: Optional[int]) -> np.ndarray:
        """The frames the method picks, before the ``max_frames`` cap."""
        if self.method == "linspace":
            return np.unique(self.positions(probe, start, end))
        if self.method == "uniform":
            idx = uniform_indices(probe, self.n, start, end)
        elif self.method == "every_n_seconds":
            idx = every_n_seconds_indices(probe, self.seconds, start, end)
        elif self.method == "every_n_frames":
            idx = every_n_frames_indices(probe, self.step, start, end)
        elif self.method == "keyframes":
            idx = keyframe_indices(probe, start, end)
        elif self.method == "fps_step":
            idx = fps_step_indices(probe, self.fps, start, end)
        elif self.method == "fractions":
            idx = fraction_indices(probe, self.fractions, start, end)
        else:
            s, e, _, _ = _span(probe, start, end)
            idx = np.arange(s, e, dtype=np.int64)
        return idx

    def sample(self, path: str, probe: VideoProbe, start: int = 0, end: Optional[int] = None) -> Frames:
        """Decode the chosen frames. The ``max_frames`` cap is never silent: ``all`` over more
        frames than the cap is an error that says how to raise it; another method's cap is
        recorded (``Frames.capped``: frames the cap left out)."""
        chosen = self._chosen(probe, start, end)
        if self.method == "all" and len(chosen) > self.max_frames:
            raise VideoError(f"sampling all: the clip has {len(chosen)} frames, over max_frames {self.max_frames}; "
                             f"raise the cap (--sampling all:{len(chosen)}, or the scorer's sampling.max_frames) "
                             "or sample fewer frames", stage="decode")
        indices = chosen[: self.max_frames]
        # The fallback frame of a span without key frames is not a key frame: decode it fully.
        keyframes_only = self.method == "keyframes" and bool(np.isin(indices, probe.keyframe_indices).all())
        frames = decode_frames(path, probe, indices, max_size=self.max_size, keyframes_only=keyframes_only)
        frames.capped = len(chosen) - len(indices)
        return frames


def sample_frames_uniform(path: str, probe: VideoProbe, n: int, max_size: Optional[int] = None) -> Frames:
    return SamplingSpec(method="uniform", n=n, max_size=max_size).sample(path, probe)
