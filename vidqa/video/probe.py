"""Probe a video into what sampling and the database need: in the process through the FFmpeg
libraries (vidqa/video/probe_libav.py), or with the ffprobe binary (a subprocess with a time
limit), which also gives the diagnosis of every file the libraries cannot read."""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any, Optional

import numpy as np

from vidqa.config import get_settings
from vidqa.errors import VideoError


def _fraction(text: Optional[str]) -> Optional[Fraction]:
    if not text or text in ("N/A", "0/0"):
        return None
    try:
        value = Fraction(text.replace(":", "/"))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _float(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _rotation(stream: dict) -> int:
    """Display rotation in degrees, normalised to 0/90/180/270 (display-matrix sign convention)."""
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    rotate = (stream.get("tags") or {}).get("rotate")
    if rotate is not None:
        # The legacy tag is clockwise, the display matrix counter-clockwise.
        return (-int(rotate)) % 360
    return 0


@dataclass
class VideoProbe:
    """What ffprobe says about a video, plus the presentation timestamps of its frames."""

    container: str
    duration_s: float
    container_duration_s: Optional[float]
    stream_duration_s: Optional[float]
    start_time_s: float
    fps_avg: Optional[float]
    fps_nominal: Optional[float]
    frame_count_declared: Optional[int]
    width: int
    height: int
    display_width: int
    display_height: int
    rotation: int
    sample_aspect_ratio: Optional[str]
    video_codec: str
    audio_codec: Optional[str]
    has_audio: bool
    bit_rate: Optional[int]
    time_base: Fraction
    # Sorted presentation timestamps (stream time base) of every video packet: frame i is
    # the i-th frame in display order. Timestamps, not index x fps, give time (VFR).
    frame_pts: np.ndarray = field(repr=False)
    # Indices (into frame_pts) of the codec key frames.
    keyframe_indices: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    # Each frame's duration from its packet (stream time base; 0 where the container has none).
    frame_durations: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    # The container's index of the video stream described here (not always the first stream).
    stream_index: int = 0
    raw: dict = field(repr=False, default_factory=dict)

    @cached_property
    def frame_table_json(self) -> str:
        """Every frame's ``pts``, ``duration`` and ``key_frame`` as JSON (ffprobe's
        ``-show_frames`` form, which torchcodec's ``custom_frame_mappings`` reads: its exact
        seeking then uses the frames counted here instead of scanning the file again).
        Built once per probe: every clip of a long video is decoded with it."""
        keys = np.zeros(self.frame_count, dtype=bool)
        keys[self.keyframe_indices] = True
        durations = self.frame_durations
        if durations.size != self.frame_count:
            durations = np.zeros_like(self.frame_pts)
        return json.dumps({"frames": [{"pts": p, "duration": d, "key_frame": int(k)}
                                      for p, d, k in zip(self.frame_pts.tolist(), durations.tolist(), keys.tolist())]})

    @property
    def frame_count(self) -> int:
        return int(self.frame_pts.size)

    def keyframe_at_or_before(self, index: int) -> int:
        """The key frame a decoder must start from to reach frame ``index``."""
        k = np.searchsorted(self.keyframe_indices, index, side="right") - 1
        return int(self.keyframe_indices[k]) if k >= 0 else 0

    @property
    def frame_times(self) -> np.ndarray:
        """Presentation time of every frame in seconds (float64)."""
        return self.frame_pts.astype(np.float64) * float(self.time_base)

    def end_time_s(self, end_frame: int) -> float:
        """When the frame range ending at ``end_frame`` (exclusive) stops: the next frame's
        timestamp, or, for a range running to the last frame, the video's duration."""
        times = self.frame_times
        if end_frame < self.frame_count:
            return float(times[end_frame])
        return max(float(times[0]) + self.duration_s, float(times[-1]))

    def columns(self) -> dict[str, Any]:
        """The probe as ``videos`` table columns."""
        return {
            "container": self.container,
            "duration_s": self.duration_s,
            "container_duration_s": self.container_duration_s,
            "stream_duration_s": self.stream_duration_s,
            "start_time_s": self.start_time_s,
            "fps_avg": self.fps_avg,
            "fps_nominal": self.fps_nominal,
            "frame_count_declared": self.frame_count_declared,
            "frame_count": self.frame_count,
            "width": self.width,
            "height": self.height,
            "display_width": self.display_width,
            "display_height": self.display_height,
            "rotation": self.rotation,
            "sample_aspect_ratio": self.sample_aspect_ratio,
            "video_codec": self.video_codec,
            "audio_codec": self.audio_codec,
            "has_audio": self.has_audio,
            "bit_rate": self.bit_rate,
            "probe": json.loads(json.dumps(self.raw, default=str)),
        }


_OS_ERRORS = {os.strerror(code) for code in errno.errorcode}


def probe_failure(detail: str) -> VideoError:
    """ffprobe's diagnosis as a failure reason. When it is the operating system's refusal
    (EBUSY's "Device or resource busy", EACCES, EIO...), say so: the file could not be read at
    all, which says nothing of its content, and a later run may read it (transient)."""
    if detail in _OS_ERRORS:
        return VideoError(f"cannot read the file: {detail} (the operating system refused to read it, "
                          "so nothing is known of its content; a rerun tries again)", stage="read", transient=True)
    return VideoError(f"not a readable video: {detail}", stage="probe")


def _ffprobe(path: str, **kwargs: Any) -> dict:
    """ffprobe's JSON about ``path`` (``kwargs`` as ``-key value`` options), killed after
    ``probe_timeout_s``: a file that never ends to read must not hold the run."""
    settings = get_settings()
    args = [settings.ffprobe_binary, "-show_format", "-show_streams", "-of", "json"]
    for key, value in kwargs.items():
        args += [f"-{key}"] if value is None else [f"-{key}", str(value)]
    try:
        proc = subprocess.run([*args, path], capture_output=True, timeout=settings.probe_timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise VideoError(f"probing took longer than {settings.probe_timeout_s:g} s", stage="probe") from None
    except FileNotFoundError as exc:
        raise RuntimeError(
            f"ffprobe binary {settings.ffprobe_binary!r} not found; install ffmpeg"
        ) from exc
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else "ffprobe failed"
        # ffprobe prefixes the path; keep only the diagnosis.
        if detail.startswith(path):
            detail = detail[len(path):].lstrip(": ")
        raise probe_failure(detail)
    return json.loads(proc.stdout.decode("utf-8"))


def _probe_info(path: str) -> dict:
    """ffprobe's JSON for ``path``: format, streams and every packet's timestamps."""
    settings = get_settings()
    if settings.prober != "ffprobe":
        from vidqa.video.probe_libav import LibavUnavailable, probe_info_in_process

        try:
            return probe_info_in_process(path, settings.probe_timeout_s)
        except TimeoutError:
            raise VideoError(f"probing took longer than {settings.probe_timeout_s:g} s", stage="probe") from None
        except LibavUnavailable as exc:
            # A file the libraries refuse: the ffprobe binary says why in its own words (the
            # reason every earlier run recorded). A missing library is only a fallback on auto.
            if settings.prober == "libav" and probe_libav_unavailable() is not None:
                raise RuntimeError(f"VIDQA_PROBER=libav, but {exc}; install PyAV and torchcodec "
                                   "(scripts/install.sh) or set VIDQA_PROBER=auto") from None
    # One ffprobe process: the headers and every packet's timestamp (a second process for the
    # packets cost as much again on short clips).
    return _ffprobe(path, show_entries="packet=stream_index,pts,dts,duration,flags")


def probe_libav_unavailable() -> Optional[str]:
    from vidqa.video.probe_libav import available

    return available()


def _video_packets(packets: list[dict], stream_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The video stream's frames from its packets: sorted presentation timestamps, each one's
    duration (0 when the container gives none), the key frames' timestamps, and how many
    packets lack a timestamp. Packets only: nothing is decoded."""
    by_pts: dict[int, int] = {}
    key: list[int] = []
    missing = 0
    for packet in packets:
        if packet.get("stream_index") != stream_index:
            continue
        value = packet.get("pts", packet.get("dts"))
        if value is None or value == "N/A":
            missing += 1
            continue
        pts = int(value)
        duration = packet.get("duration")
        by_pts.setdefault(pts, int(duration) if isinstance(duration, int) and duration > 0 else 0)
        if "K" in packet.get("flags", ""):
            key.append(pts)
    pts = np.asarray(sorted(by_pts), dtype=np.int64)
    durations = np.asarray([by_pts[p] for p in pts.tolist()], dtype=np.int64)
    return pts, durations, np.unique(np.asarray(key, dtype=np.int64)), missing


def probe_video(path: str) -> VideoProbe:
    """Probe ``path``; raise :class:`VideoError` with a readable reason when it is no usable video."""
    settings = get_settings()
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)", stage="probe")
    info = _probe_info(path)
    streams = info.get("streams", [])
    fmt = info.get("format", {})
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        kinds = ", ".join(f"{s.get('codec_type')}:{s.get('codec_name')}" for s in streams) or "none"
        raise VideoError(f"no video stream (streams: {kinds})", stage="probe")

    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise VideoError("video stream has no frame size", stage="probe")
    if width * height > settings.max_pixels:
        raise VideoError(
            f"absurd frame size {width}x{height} (limit {settings.max_pixels} pixels)", stage="probe"
        )

    time_base = _fraction(video.get("time_base")) or Fraction(1, 1000)
    pts, frame_durations, key_pts, missing = _video_packets(info.get("packets", []), int(video.get("index", 0)))
    if pts.size == 0:
        raise VideoError("video stream has no frames", stage="probe")

    fps_avg = _fraction(video.get("avg_frame_rate"))
    fps_nominal = _fraction(video.get("r_frame_rate"))
    stream_duration = _float(video.get("duration"))
    container_duration = _float(fmt.get("duration"))
    start_time = _float(video.get("start_time"))
    if start_time is None:
        start_time = float(pts[0] * time_base)
    duration = stream_duration or container_duration
    if duration is None:
        step = 1.0 / float(fps_avg or fps_nominal or 25)
        duration = float((pts[-1] - pts[0]) * time_base) + step
    if duration > settings.max_duration_s:
        raise VideoError(
            f"absurd duration {duration:.0f} s (limit {settings.max_duration_s:.0f} s)", stage="probe"
        )

    sar = _fraction(video.get("sample_aspect_ratio")) or Fraction(1)
    display_w = max(1, int(round(width * sar)))
    display_h = height
    rotation = _rotation(video)
    if rotation in (90, 270):
        display_w, display_h = display_h, display_w
    # Frames are decoded at their displayed size: a tiny file with a 100:1 pixel aspect ratio
    # is a huge picture.
    if display_w * display_h > settings.max_pixels:
        raise VideoError(
            f"absurd displayed frame size {display_w}x{display_h} (stored {width}x{height}, sample aspect ratio "
            f"{video.get('sample_aspect_ratio')}; limit {settings.max_pixels} pixels)", stage="probe"
        )
    # What the packets say, not only the headers: a file may declare a short duration.
    spanned = float((pts[-1] - pts[0]) * time_base)
    if pts.size > settings.max_frames or spanned > settings.max_duration_s:
        raise VideoError(
            f"absurd length: {pts.size} frames over {spanned:.0f} s (limits {settings.max_frames} frames, "
            f"{settings.max_duration_s:.0f} s)", stage="probe"
        )

    declared = video.get("nb_frames")
    bit_rate = fmt.get("bit_rate")
    return VideoProbe(
        container=fmt.get("format_name", ""),
        duration_s=float(duration),
        container_duration_s=container_duration,
        stream_duration_s=stream_duration,
        start_time_s=float(start_time),
        fps_avg=float(fps_avg) if fps_avg else None,
        fps_nominal=float(fps_nominal) if fps_nominal else None,
        frame_count_declared=int(declared) if declared and str(declared).isdigit() else None,
        width=width,
        height=height,
        display_width=display_w,
        display_height=display_h,
        rotation=rotation,
        sample_aspect_ratio=video.get("sample_aspect_ratio"),
        video_codec=video.get("codec_name", ""),
        audio_codec=audio.get("codec_name") if audio else None,
        has_audio=audio is not None,
        bit_rate=int(bit_rate) if bit_rate and str(bit_rate).isdigit() else None,
        time_base=time_base,
        frame_pts=pts,
        frame_durations=frame_durations,
        stream_index=int(video.get("index", 0)),
        keyframe_indices=np.searchsorted(pts, key_pts),
        raw={"format": fmt, "streams": streams, "packets_without_pts": missing,
             "prober": info.get("prober", "ffprobe")},
    )
