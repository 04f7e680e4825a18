"""Decode chosen frames of a video with the ffmpeg binary, as displayed, with exact timestamps.

Frames are identified by their presentation timestamp (PTS) from the probe, so variable
frame rate is exact. One ffmpeg process decodes every requested frame of a video in a
single pass; rotation is applied by ffmpeg's autorotate and non-square pixels are
resampled to square ones, so the RGB arrays are what a viewer sees.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from typing import Optional, Sequence

import ffmpeg
import numpy as np

from vidqa.config import get_settings
from vidqa.errors import VideoError
from vidqa.probe import VideoProbe

# Above this many wanted frames a per-PTS select expression costs more than it saves:
# decode the span and keep the wanted frames in Python instead.
_MAX_SELECT_TERMS = 200
_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(\S+)")
_ERROR_LINE = re.compile(r"^(\[[^\]]+\] .*(error|invalid|corrupt|missing)|Error .*)", re.IGNORECASE)


@dataclass
class Frames:
    """RGB uint8 frames ``(N, H, W, 3)`` with their frame indices and timestamps (seconds)."""

    array: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    requested: int
    # Frames that were asked for but could not be decoded (corrupt data).
    missing_indices: list[int] = field(default_factory=list)
    decode_errors: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.indices.size)

    def summary(self) -> dict:
        return {
            "frames": len(self),
            "requested": self.requested,
            "frame_indices": self.indices.tolist(),
            "skipped_corrupt": self.missing_indices,
        }


def output_size(probe: VideoProbe, max_size: Optional[int] = None) -> tuple[int, int]:
    """Displayed size, downscaled so the longer side is at most ``max_size`` (even-free)."""
    w, h = probe.display_width, probe.display_height
    if max_size and max(w, h) > max_size:
        scale = max_size / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    return int(w), int(h)


def _select_expression(pts_values: Sequence[int]) -> str:
    if len(pts_values) <= _MAX_SELECT_TERMS:
        return "+".join(f"eq(pts,{int(p)})" for p in pts_values)
    return f"between(pts,{int(min(pts_values))},{int(max(pts_values))})"


def decode_frames(
    path: str,
    probe: VideoProbe,
    indices: Sequence[int],
    max_size: Optional[int] = None,
) -> Frames:
    """Decode the frames at ``indices`` (positions in ``probe.frame_pts``) in one ffmpeg pass.

    A frame that cannot be decoded is skipped and listed in ``missing_indices``; the
    call fails only when none of the requested frames decodes.
    """
    settings = get_settings()
    wanted = sorted({int(i) for i in indices if 0 <= int(i) < probe.frame_count})
    if not wanted:
        raise VideoError("no frames requested within the video", stage="decode")
    pts_wanted = probe.frame_pts[wanted]
    index_of_pts = {int(p): i for p, i in zip(pts_wanted, wanted)}
    width, height = output_size(probe, max_size)

    stream = (
        ffmpeg.input(path, copyts=None)["v:0"]
        .filter("select", _select_expression(pts_wanted.tolist()))
        .filter("scale", width, height, flags="area" if max_size else "bicubic")
        .filter("setsar", 1)
        .filter("showinfo")
    )
    args = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough").compile(
        cmd=settings.ffmpeg_binary
    )
    args[1:1] = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=settings.decode_timeout_s)
    except subprocess.TimeoutExpired:
        raise VideoError(f"decoding took longer than {settings.decode_timeout_s:.0f} s", stage="decode")
    except FileNotFoundError as exc:
        raise RuntimeError(f"ffmpeg binary {settings.ffmpeg_binary!r} not found; install ffmpeg") from exc

    log = proc.stderr.decode("utf-8", "replace")
    shown = [(int(m.group(2))) for m in _SHOWINFO.finditer(log)]
    frame_bytes = width * height * 3
    n_out = len(proc.stdout) // frame_bytes
    errors = [line.strip() for line in log.splitlines() if _ERROR_LINE.match(line) and "showinfo" not in line]
    if n_out == 0:
        detail = errors[-1] if errors else f"ffmpeg exited with status {proc.returncode}"
        raise VideoError(f"no decodable frames: {detail}", stage="decode")
    # showinfo reports each frame as it passes; the raw pipe carries the same frames in
    # the same order, so the two lists line up.
    n = min(n_out, len(shown))
    array = np.frombuffer(proc.stdout, dtype=np.uint8, count=n * frame_bytes).reshape(n, height, width, 3)
    keep = [k for k in range(n) if shown[k] in index_of_pts]
    got = [index_of_pts[shown[k]] for k in keep]
    if len(keep) != n:
        array = array[keep]
    idx = np.asarray(got, dtype=np.int64)
    return Frames(
        array=array,
        indices=idx,
        timestamps=probe.frame_times[idx] if idx.size else np.zeros(0),
        requested=len(wanted),
        missing_indices=sorted(set(wanted) - set(got)),
        decode_errors=errors[:20],
    )
