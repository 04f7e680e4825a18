"""Split videos into clips: scenes (PySceneDetect's content detector) or fixed windows.

Scenes follow the DataFlow-MM / data-juicer clip chain: content detector threshold 27,
minimum scene 15 frames; scenes shorter than ``min_s`` are dropped and scenes longer
than ``max_s`` are cut into equal pieces no longer than ``max_s``. Clips are frame
ranges ``[start_frame, end_frame)`` into the probe's frames, with times from the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vidqa.hashing import json_sha256
from vidqa.video.decode import iter_frames
from vidqa.video.probe import VideoProbe

SplitMethod = Literal["none", "scenes", "windows"]
# PySceneDetect downscales to about this width before detecting; so do we, during decode.
ANALYSIS_SIZE = 256
# Timestamps are sums of rational ticks in float: compare durations with this slack.
_EPS = 1e-6


@dataclass(frozen=True)
class ClipSpan:
    kind: str
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class ClipSpec(BaseModel):
    """How to split each video into clips. ``none`` scores whole videos."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: SplitMethod = Field("none", description="none (whole video), scenes, or windows.")
    threshold: float = Field(27.0, gt=0, description="scenes: content detector threshold.")
    min_scene_frames: int = Field(15, ge=1, description="scenes: minimum scene length in frames.")
    min_s: float = Field(2.0, ge=0, description="Drop clips shorter than this (seconds).")
    max_s: float = Field(15.0, gt=0, description="scenes: cut longer scenes into pieces of at most this.")
    window_s: float = Field(10.0, gt=0, description="windows: window length (seconds).")
    stride_s: Optional[float] = Field(None, gt=0, description="windows: step between window starts (default: window length).")

    @model_validator(mode="after")
    def _check(self) -> "ClipSpec":
        if self.method == "scenes" and self.min_s > self.max_s:
            raise ValueError("min_s must not exceed max_s")
        return self

    @property
    def kind(self) -> str:
        return {"scenes": "scene", "windows": "window"}.get(self.method, "video")

    @property
    def split_hash(self) -> str:
        """Identity of the split: clips found by other settings are other clips."""
        if self.method == "none":
            return ""
        relevant = {"scenes": ("threshold", "min_scene_frames", "min_s", "max_s"),
                    "windows": ("window_s", "stride_s", "min_s")}[self.method]
        ident = {"method": self.method, **{k: getattr(self, k) for k in relevant}, "analysis_size": ANALYSIS_SIZE}
        return json_sha256(ident, spaced=True)[:16]


def clip_span(probe: VideoProbe, kind: str, start: int, end: int) -> ClipSpan:
    return ClipSpan(kind, int(start), int(end), float(probe.frame_times[start]), probe.end_time_s(end))


WHOLE_VIDEO = "video"


def whole_video(probe: VideoProbe) -> ClipSpan:
    """The whole video as a clip, timed like every other clip: from the first frame's
    presentation time to the end of the last frame (not from 0.0)."""
    return clip_span(probe, WHOLE_VIDEO, 0, probe.frame_count)


def detect_scenes(
    path: str, probe: VideoProbe, threshold: float = 27.0, min_scene_frames: int = 15
) -> list[tuple[int, int]]:
    """Scenes as frame ranges, by PySceneDetect's ``ContentDetector`` fed with our own
    decode (rotation applied, PTS order), downscaled to about 256 px as PySceneDetect does."""
    from scenedetect import ContentDetector
    from scenedetect.common import FrameTimecode

    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_frames)
    fps = probe.fps_avg or probe.fps_nominal or 25.0
    cuts: list[int] = []
    n = -1
    for n, rgb in enumerate(iter_frames(path, probe, max_size=ANALYSIS_SIZE)):
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # the detector reads OpenCV's BGR order
        cuts.extend(int(c.frame_num) for c in detector.process_frame(FrameTimecode(n, fps), bgr))
    if n >= 0:
        cuts.extend(int(c.frame_num) for c in detector.post_process(FrameTimecode(n, fps)))
    # Frames the probe counts but ffmpeg did not emit (corrupt tail) stay in the last scene.
    total = probe.frame_count
    bounds = [0] + sorted(c for c in set(cuts) if 0 < c < total) + [total]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def cut_scenes(probe: VideoProbe, scenes: list[tuple[int, int]], min_s: float, max_s: float) -> list[ClipSpan]:
    """Drop scenes shorter than ``min_s``; cut longer than ``max_s`` into equal pieces
    (by time, on frame boundaries) of at most ``max_s``."""
    clips = []
    times = probe.frame_times
    for start, end in scenes:
        span = clip_span(probe, "scene", start, end)
        if span.duration_s < min_s - _EPS:
            continue
        pieces = max(1, math.ceil(span.duration_s / max_s - 1e-9))
        edges = [start]
        for k in range(1, pieces):
            t = span.start_s + k * span.duration_s / pieces
            edges.append(int(np.searchsorted(times, t - _EPS, side="left")))
        edges.append(end)
        for a, b in zip(edges, edges[1:]):
            if b > a:
                piece = clip_span(probe, "scene", a, b)
                if piece.duration_s >= min_s - _EPS:
                    clips.append(piece)
    return clips


def fixed_windows(probe: VideoProbe, window_s: float, stride_s: Optional[float], min_s: float) -> list[ClipSpan]:
    """Windows of ``window_s`` every ``stride_s`` seconds from the first frame; a final
    window shorter than ``min_s`` is dropped."""
    stride = stride_s or window_s
    times = probe.frame_times
    t0 = float(times[0])
    t_end = probe.end_time_s(probe.frame_count)
    clips = []
    start_t = t0
    while start_t < t_end - _EPS:
        a = int(np.searchsorted(times, start_t - _EPS, side="left"))
        b = int(np.searchsorted(times, start_t + window_s - _EPS, side="left"))
        if a >= probe.frame_count:
            break
        if b > a:
            span = clip_span(probe, "window", a, b)
            if span.duration_s >= min_s - _EPS:
                clips.append(span)
        if b >= probe.frame_count:
            break
        start_t += stride
    return clips


def split_video(path: str, probe: VideoProbe, spec: ClipSpec) -> list[ClipSpan]:
    """The clips of a video under ``spec`` (the whole video for ``none``)."""
    if spec.method == "none":
        return [whole_video(probe)]
    if spec.method == "windows":
        return fixed_windows(probe, spec.window_s, spec.stride_s, spec.min_s)
    scenes = detect_scenes(path, probe, spec.threshold, spec.min_scene_frames)
    return cut_scenes(probe, scenes, spec.min_s, spec.max_s)
